/**
 * What agents' clients do most, as tools, each through the agent's files as agentctl does it:
 * - send_message: one message to the agent's inbox (a write to `inbox`, as `agentctl send`); with
 *   `wait_reply_ms` it then waits for the agent's answer in its outbox (`metadata.in_reply_to`).
 * - run_model_job: a job on the agent's /compute, followed to its end (compute-client.ts, as
 *   `agentctl compute run`); progress notifications carry the text as it streams.
 * - run_in_container: an ephemeral session on the agent's /containers that runs one command, answered
 *   with its result (`"wait": true` on `containers/new`).
 * In an agent-scoped session the agent is the session's own (its files are at `/`); in the global
 * view `agent` names it.
 */
import { z } from 'zod';
import { utf8 } from '../fs/bytes.js';
import { FsError } from '../fs/errors.js';
import { callFile, readAll, writeAll } from '../fs/ops.js';
import { joinPath } from '../fs/paths.js';
import type { Cx, FsEvent } from '../fs/types.js';
import { runPrompt, type RunOptions } from './compute-client.js';
import { receiving } from './file-tools.js';
import { jsonResult } from './results.js';
import { agentBase, type McpScope } from './session.js';
import { tool, type ToolDef } from './tool-table.js';

const agent = z
  .string()
  .min(1)
  .optional()
  .describe("the agent (its id); leave it out in an agent's own session, where the agent is the session's");

const sendMessage = tool({
  name: 'send_message',
  title: 'Send a message to an agent',
  description:
    "Put one message in an agent's inbox: `text` (sent as it is) or `envelope` (a JSON object with `payload`, and optionally `id` and `metadata`). " +
    "Answers the envelope's id and status (queued, duplicate, deadlettered). With `wait_reply_ms` it also waits that long for the agent's reply " +
    '(an outbox envelope whose metadata.in_reply_to is this envelope) and returns it.',
  schema: z.strictObject({
    agent,
    text: z.string().optional().describe('the message as text'),
    envelope: z.record(z.string(), z.unknown()).optional().describe('the message as an envelope: {payload, id?, metadata?}'),
    wait_reply_ms: z.number().int().min(0).max(600_000).optional().describe('wait this long for the reply'),
  }),
  async run(args, { scope, cx }) {
    const base = agentBase(scope, args.agent);
    const inbox = joinPath(base || '/', 'inbox');
    if ((args.text === undefined) === (args.envelope === undefined)) throw new FsError('EINVAL', inbox, "give 'text' or 'envelope' (one of them)");
    const body = args.text ?? JSON.stringify(args.envelope);
    if (body.length === 0) throw new FsError('EINVAL', inbox, 'nothing to send: the message is empty');
    // The outbox is watched from before the send, so a reply that comes at once is not missed.
    const from = args.wait_reply_ms ? scope.cursor?.() : undefined;
    const answering = receiving(cx);
    await writeAll(scope.view, inbox, body, answering.cx, { append: true });
    const receipt = answering.receipt()?.value ?? {};
    const answer: Record<string, unknown> = { path: inbox, ...receipt };
    const envelopeId = receipt['envelope_id'];
    if (args.wait_reply_ms && typeof envelopeId === 'string') {
      const reply = await waitReply(scope, joinPath(base || '/', 'outbox'), envelopeId, from, args.wait_reply_ms, cx);
      answer['reply'] = reply ?? null;
    }
    return jsonResult(answer);
  },
});

/** The first outbox envelope in reply to `envelopeId`, created after cursor `from`; undefined at the deadline. */
async function waitReply(scope: McpScope, outbox: string, envelopeId: string, from: number | undefined, ms: number, cx: Cx): Promise<unknown> {
  const view = scope.view;
  if (!view.watch) throw new FsError('ENOSYS', outbox, 'this namespace cannot be watched');
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  cx.signal?.addEventListener('abort', () => abort.abort(), { once: true });
  const watchCx = { ...cx, signal: abort.signal };
  try {
    for await (const ev of view.watch(outbox, from, watchCx) as AsyncIterable<FsEvent>) {
      if (ev.type !== 'created' || !ev.path.endsWith('.json')) continue;
      const envelope = JSON.parse(utf8(await readAll(view, ev.path, cx))) as { metadata?: { in_reply_to?: unknown } };
      if (envelope.metadata?.in_reply_to === envelopeId) return envelope;
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return undefined;
}

const runModelJob = tool({
  name: 'run_model_job',
  title: 'Run a model job',
  description:
    "Submit a prompt to the agent's /compute (charged to its budget) and return the model's answer once the job completes, with the job id, usage and cost. " +
    'Model "echo" of the local-echo provider answers the prompt itself (for trying things out).',
  schema: z.strictObject({
    agent,
    prompt: z.string().min(1).describe('the user message'),
    model: z.string().min(1).optional().describe("the model (default: the policy's default_model)"),
    system: z.string().optional().describe('a system message before the prompt'),
    max_tokens: z.number().int().min(1).optional(),
    temperature: z.number().min(0).max(2).optional(),
    max_cost: z.number().int().min(1).optional().describe('the most the job may cost, in micro-USD'),
    provider: z.string().min(1).optional(),
    idempotency_key: z.string().min(1).max(512).optional().describe('a repeat with the same key returns the same job'),
    timeout_ms: z.number().int().min(1).optional(),
  }),
  async run(args, { scope, cx, progress }) {
    const base = joinPath(agentBase(scope, args.agent) || '/', 'compute');
    const o: RunOptions = { prompt: args.prompt };
    if (args.model !== undefined) o.model = args.model;
    if (args.system !== undefined) o.system = args.system;
    if (args.max_tokens !== undefined) o.maxTokens = args.max_tokens;
    if (args.temperature !== undefined) o.temperature = args.temperature;
    if (args.max_cost !== undefined) o.maxCost = args.max_cost;
    if (args.provider !== undefined) o.provider = args.provider;
    if (args.idempotency_key !== undefined) o.idempotencyKey = args.idempotency_key;
    if (args.timeout_ms !== undefined) o.timeoutMs = args.timeout_ms;
    let text = '';
    let chunks = 0;
    const outcome = await runPrompt(scope.view, base, o, cx, (chunk) => {
      text += chunk.delta.text;
      void progress(++chunks, chunk.delta.text);
    });
    return jsonResult({ job_id: outcome.jobId, text, result: outcome.result }, text);
  },
});

const runInContainer = tool({
  name: 'run_in_container',
  title: 'Run code in a container',
  description:
    "Run one command in a fresh sandboxed container of the agent's /containers (no network unless asked and allowed; charged to its budget) " +
    'and return its exit code, stdout and stderr once it ended. A string command runs with /bin/sh -c; an array is argv.',
  schema: z.strictObject({
    agent,
    command: z.union([z.string().min(1), z.array(z.string()).min(1)]).describe('a shell line, or argv'),
    image: z.string().min(1).optional().describe("the image (default: the policy's default_image, agent9/busybox:latest)"),
    timeout_secs: z.number().int().min(1).optional().describe('lifetime of the session'),
    env: z.record(z.string(), z.string()).optional(),
    workdir: z.string().optional().describe('absolute, default /workspace'),
    network: z.boolean().optional().describe('turn the network on (if the policy allows it)'),
    max_cost: z.number().int().min(1).optional().describe('the most the session may cost, in micro-USD'),
    idempotency_key: z.string().min(1).max(512).optional(),
  }),
  async run(args, { scope, cx }) {
    const base = joinPath(agentBase(scope, args.agent) || '/', 'containers');
    const limits: Record<string, unknown> = {};
    if (args.timeout_secs !== undefined) limits['max_time_secs'] = args.timeout_secs;
    if (args.network) limits['allow_network'] = true;
    const request: Record<string, unknown> = {
      commands: [args.command],
      kind: 'ephemeral',
      wait: true,
      ...(args.image !== undefined ? { image: args.image } : {}),
      ...(Object.keys(limits).length ? { limits } : {}),
      ...(args.env !== undefined ? { env: args.env } : {}),
      ...(args.workdir !== undefined ? { workdir: args.workdir } : {}),
      ...(args.max_cost !== undefined ? { max_cost: args.max_cost } : {}),
      ...(args.idempotency_key !== undefined ? { idempotency_key: args.idempotency_key } : {}),
    };
    const result = JSON.parse(utf8(await callFile(scope.view, joinPath(base, 'new'), JSON.stringify(request), cx))) as Record<string, unknown>;
    const lines = [`exit code ${String(result['exit_code'])} (${String(result['status'])})`];
    if (typeof result['stdout'] === 'string' && result['stdout']) lines.push(`stdout:\n${result['stdout']}`);
    if (typeof result['stderr'] === 'string' && result['stderr']) lines.push(`stderr:\n${result['stderr']}`);
    return jsonResult(result, lines.join('\n'));
  },
});

export const AGENT_TOOLS: readonly ToolDef[] = [sendMessage, runModelJob, runInContainer];
