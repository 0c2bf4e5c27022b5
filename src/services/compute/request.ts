/**
 * Parsing and validating what is written to /compute/new. Every problem is an FsError naming the file
 * and the field: EINVAL for malformed JSON, unknown or bad fields and a missing model or input; EFBIG
 * for input over the policy's max_input_bytes.
 */
import { z } from 'zod';
import { FsError } from '../../fs/errors.js';
import { providerField, submitFields } from '../kit/request-fields.js';
import { parseJsonObject, validate } from '../kit/validation.js';
import type { ChatMessage, ComputeRequest } from './types.js';
import type { ComputePolicy } from './policy.js';


const message = z.strictObject({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string(),
  name: z.string().optional(),
});

const knobs = {
  max_tokens: z.number().int().positive().max(1_000_000).optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().min(0).max(1).optional(),
  stop: z.union([z.string(), z.array(z.string()).max(16)]).optional(),
};

const inputObject = z.strictObject({
  prompt: z.string().optional(),
  messages: z.array(message).min(1).optional(),
  ...knobs,
});

export const requestSchema = z.strictObject({
  model: z.string().min(1).max(256).optional(),
  kind: z.enum(['chat', 'complete']).optional(),
  input: z.union([z.string(), inputObject]).optional(),
  prompt: z.string().optional(),
  messages: z.array(message).min(1).optional(),
  ...knobs,
  stream: z.boolean().optional(),
  timeout_ms: z.number().int().positive().optional(),
  ...submitFields,
  provider: providerField,
  options: z.record(z.string(), z.unknown()).optional(),
});

/** What a request looks like, for the message of a body that is not a JSON object. */
export const REQUEST_EXAMPLE = '{"model":"echo","prompt":"hi"}';

export type RawRequest = z.infer<typeof requestSchema>;

function pick<T>(...values: (T | undefined)[]): T | undefined {
  return values.find((v) => v !== undefined);
}

/** The request as providers see it, with the policy's defaults applied. */
export function parseRequest(data: Uint8Array, policy: ComputePolicy, path: string): ComputeRequest {
  return parseRequestValue(parseJsonObject(data, path, `the request must be a JSON object, e.g. ${REQUEST_EXAMPLE}`), policy, path);
}

export function parseRequestValue(json: Record<string, unknown>, policy: ComputePolicy, path: string): ComputeRequest {
  const raw = validate(requestSchema, json, path);

  const model = raw.model ?? policy.default_model ?? undefined;
  if (!model) throw new FsError('EINVAL', path, "missing field 'model' (and /compute/policy sets no default_model)");

  const obj = typeof raw.input === 'object' ? raw.input : undefined;
  const prompt = pick(raw.prompt, typeof raw.input === 'string' ? raw.input : undefined, obj?.prompt);
  const messages = pick(raw.messages, obj?.messages);
  if (prompt !== undefined && messages !== undefined) {
    throw new FsError('EINVAL', path, "give either a prompt or messages, not both");
  }
  if (prompt === undefined && messages === undefined) {
    throw new FsError('EINVAL', path, "missing the input: give 'prompt' (text) or 'messages' ([{role, content}])");
  }
  const chat: ChatMessage[] = messages
    ? messages.map((m) => ({ role: m.role, content: m.content }))
    : [{ role: 'user', content: prompt! }];
  const inputBytes = chat.reduce((n, m) => n + new TextEncoder().encode(m.content).length, 0);
  if (inputBytes > policy.max_input_bytes) {
    throw new FsError('EFBIG', path, `input is ${inputBytes} bytes, over the policy's max_input_bytes (${policy.max_input_bytes})`);
  }

  if (raw.max_cost !== undefined && raw.max_cost_usd !== undefined) {
    throw new FsError('EINVAL', path, "give either max_cost (micro-USD) or max_cost_usd (dollars), not both");
  }
  const maxCost = raw.max_cost ?? (raw.max_cost_usd !== undefined ? Math.ceil(raw.max_cost_usd * 1e6) : undefined);
  if (maxCost !== undefined && !Number.isSafeInteger(maxCost)) throw new FsError('EINVAL', path, 'max_cost is too large');

  const timeout = raw.timeout_ms ?? policy.default_timeout_ms;
  if (timeout > policy.max_timeout_ms) {
    throw new FsError('EINVAL', path, `timeout_ms ${timeout} is over the policy's max_timeout_ms (${policy.max_timeout_ms})`);
  }

  const req: ComputeRequest = {
    model,
    kind: raw.kind ?? (messages ? 'chat' : 'complete'),
    messages: chat,
    stream: raw.stream ?? true,
    timeout_ms: timeout,
  };
  const maxTokens = pick(raw.max_tokens, obj?.max_tokens);
  if (maxTokens !== undefined) req.max_tokens = maxTokens;
  const temperature = pick(raw.temperature, obj?.temperature);
  if (temperature !== undefined) req.temperature = temperature;
  const topP = pick(raw.top_p, obj?.top_p);
  if (topP !== undefined) req.top_p = topP;
  const stop = pick(raw.stop, obj?.stop);
  if (stop !== undefined) req.stop = typeof stop === 'string' ? [stop] : stop;
  if (raw.idempotency_key !== undefined) req.idempotency_key = raw.idempotency_key;
  if (maxCost !== undefined) req.max_cost = maxCost;
  if (raw.budget_scope) {
    const scope: NonNullable<ComputeRequest['budget_scope']> = {};
    for (const k of ['org', 'repo', 'issue'] as const) {
      const v = raw.budget_scope[k];
      if (v) scope[k] = v;
    }
    if (Object.keys(scope).length) req.budget_scope = scope;
  }
  if (raw.provider !== undefined) req.provider = raw.provider;
  if (raw.options !== undefined) req.options = raw.options;
  return req;
}
