/**
 * Cost arithmetic, all in integer micro-USD. Prices are micro-USD per million tokens; a job's cost is
 * rounded up to the next micro-USD. Token counts that a provider does not report are estimated as one
 * token per 4 bytes of UTF-8 (rounded up), plus 4 per chat message for its framing.
 */
import type { ComputeRequest, Pricing, TokenUsage } from './types.js';

const encoder = new TextEncoder();

export function estimateTokens(text: string): number {
  return Math.ceil(encoder.encode(text).length / 4);
}

export function estimateInputTokens(request: ComputeRequest): number {
  let n = 0;
  for (const m of request.messages) n += estimateTokens(m.content) + 4;
  return n;
}

export function usageOf(inputTokens: number, outputTokens: number): TokenUsage {
  return { input_tokens: inputTokens, output_tokens: outputTokens, total_tokens: inputTokens + outputTokens };
}

/** ceil((input × input price + output × output price) / 1e6). */
export function costOf(usage: TokenUsage, pricing: Pricing): number {
  return Math.ceil((usage.input_tokens * pricing.input_per_mtok + usage.output_tokens * pricing.output_per_mtok) / 1e6);
}

/** The most a request can cost: its input plus `max_tokens` (or the default, or what the provider knows) of output. */
export function maxCostOf(request: ComputeRequest, pricing: Pricing, defaultMaxTokens: number, providerMaxOutput?: number): number {
  const output = Math.min(request.max_tokens ?? defaultMaxTokens, providerMaxOutput ?? Infinity);
  return costOf(usageOf(estimateInputTokens(request), output), pricing);
}
