/**
 * local-echo: a deterministic, offline provider that is NOT a language model. Its one model, `echo`,
 * answers with the text of the last user message, unchanged (cut to max_tokens × 4 bytes, finish
 * reason `length`, when max_tokens is smaller). It exists so that /compute works without a network:
 * demos, the quick start, tests and benchmarks.
 *
 * Streaming: the answer comes in up to 4 chunks split at word boundaries (one chunk when the request
 * does not stream). `options.chunk_delay_ms` (0-10000) waits before each chunk, to watch a job run.
 * Cost: 1 micro-USD per token, input and output, with tokens counted as one per 4 bytes of UTF-8
 * (rounded up) plus 4 per message; so echoing "hello world" (11 bytes) costs 3+4 + 3 = 10 micro-USD.
 * Without a max_cost the reservation is that exact cost (the answer cannot be longer than the input).
 */
import { FsError } from '../../../fs/errors.js';
import { estimateInputTokens, estimateTokens, usageOf } from '../pricing.js';
import type { ComputeProvider, ComputeRequest, ProviderHealth, ProviderInfo, ProviderResult, ProviderRun, Pricing } from '../types.js';

export const LOCAL_ECHO_PRICING: Pricing = { input_per_mtok: 1_000_000, output_per_mtok: 1_000_000 };
export const ECHO_MODEL = 'echo';
const MAX_CHUNKS = 4;
const MAX_DELAY_MS = 10_000;

/** Splits text at word boundaries into at most `n` pieces of similar word counts. */
export function splitChunks(text: string, n = MAX_CHUNKS): string[] {
  const words = text.match(/\S+\s*|\s+/g) ?? [];
  if (words.length <= 1) return text.length ? [text] : [];
  const count = Math.min(n, words.length);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const from = Math.floor((i * words.length) / count);
    const to = Math.floor(((i + 1) * words.length) / count);
    out.push(words.slice(from, to).join(''));
  }
  return out;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export class LocalEchoProvider implements ComputeProvider {
  readonly id: string;

  constructor(id = 'local-echo') {
    this.id = id;
  }

  info(): ProviderInfo {
    return {
      id: this.id,
      type: 'local-echo',
      name: 'local echo (not a model)',
      description:
        'Deterministic offline provider for demos and tests: model "echo" answers with the last user message, unchanged. It is not a language model.',
      streaming: true,
      models: [{ id: ECHO_MODEL, context_length: 1_000_000, pricing: LOCAL_ECHO_PRICING, quality: 0 }],
      pricing: LOCAL_ECHO_PRICING,
      latency: { ttft_ms: 0, measured: false },
    };
  }

  supports(model: string): boolean {
    return model === ECHO_MODEL;
  }

  async health(): Promise<ProviderHealth> {
    return { status: 'available', checked_at: Date.now(), latency_ms: 0 };
  }

  /** Its answer is the last user message, so it is never longer than that. */
  maxOutputTokens(request: ComputeRequest): number {
    return estimateTokens(lastUserText(request));
  }

  validate(request: ComputeRequest, path: string): void {
    for (const key of Object.keys(request.options ?? {})) {
      if (key !== 'chunk_delay_ms') throw new FsError('EINVAL', path, `unknown option '${key}' for local-echo (it has chunk_delay_ms)`);
    }
    const delay = request.options?.['chunk_delay_ms'] ?? 0;
    if (typeof delay !== 'number' || !Number.isInteger(delay) || delay < 0 || delay > MAX_DELAY_MS) {
      throw new FsError('EINVAL', path, `options.chunk_delay_ms must be an integer from 0 to ${MAX_DELAY_MS}`);
    }
  }

  async run(request: ComputeRequest, io: ProviderRun): Promise<ProviderResult> {
    const delay = (request.options?.['chunk_delay_ms'] as number | undefined) ?? 0;
    let text = lastUserText(request);
    let finish = 'stop';
    if (request.max_tokens !== undefined && estimateTokens(text) > request.max_tokens) {
      text = cutToBytes(text, request.max_tokens * 4);
      finish = 'length';
    }
    const pieces = request.stream ? splitChunks(text) : [];
    for (const piece of pieces) {
      if (delay > 0) await sleep(delay, io.signal);
      if (io.signal.aborted) throw io.signal.reason;
      io.chunk(piece);
    }
    if (!request.stream && delay > 0) await sleep(delay, io.signal);
    return {
      output: { text, finish_reason: finish },
      usage: usageOf(estimateInputTokens(request), estimateTokens(text)),
    };
  }
}

function lastUserText(request: ComputeRequest): string {
  const lastUser = [...request.messages].reverse().find((m) => m.role === 'user') ?? request.messages.at(-1);
  return lastUser?.content ?? '';
}

/** The longest prefix of `text` within `max` UTF-8 bytes, never splitting a character. */
function cutToBytes(text: string, max: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= max) return text;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}
