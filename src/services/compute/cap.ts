/**
 * A job's reservation is a hard cap on what it may cost. This is the arithmetic: how many input tokens
 * the request is estimated at (one per 4 bytes, scaled by the provider's observed token ratio), how many
 * output tokens the rest of the reservation buys at the model's prices (sent to the provider as
 * `max_tokens`), and a meter that cuts streamed output where it would pass the reservation.
 * Money is integer micro-USD; prices are micro-USD per million tokens, so tokens × price is exact in
 * pico-USD and a cost never rounds past the cap.
 */
import { FsError } from '../../fs/errors.js';
import { costOf, estimateInputTokens, estimateTokens, usageOf } from './pricing.js';
import type { ComputeRequest, Pricing, TokenUsage } from './types.js';

export interface CostPlan {
  /** Micro-USD reserved: the job's cap. */
  reserve: number;
  /** The estimated input tokens, in the provider's tokens (our estimate × its observed ratio). */
  inputTokens: number;
  /** Output tokens the reservation buys after the input (Infinity when output is free). */
  outputTokens: number;
}

/** Tokens as the provider counts them: our estimate × the observed ratio (never below our estimate). */
export function scaled(tokens: number, ratio: number): number {
  return Math.ceil(tokens * Math.max(1, ratio));
}

/** The output tokens `reserve` buys after `inputTokens` of input; -1 when the input alone costs more. */
export function outputTokensWithin(reserve: number, inputTokens: number, pricing: Pricing): number {
  const left = reserve * 1_000_000 - inputTokens * pricing.input_per_mtok;
  if (left < 0) return -1;
  return pricing.output_per_mtok === 0 ? Infinity : Math.floor(left / pricing.output_per_mtok);
}

export interface PlanInput {
  request: ComputeRequest;
  pricing: Pricing;
  /** The provider's observed ratio of its tokens to our estimate (1 when nothing was observed). */
  ratio: number;
  /** What the caller (or the policy's default_max_cost) set as the cap; undefined: the whole estimate. */
  maxCost: number | undefined;
  /** Output tokens assumed for a request without max_tokens (policy default_max_tokens). */
  defaultMaxTokens: number;
  /** The most output the provider can give for this request, when it knows (local-echo does). */
  providerMaxOutput: number | undefined;
  path: string;
}

/** A request's input tokens and the output tokens `reserve` buys after them (-1: the input alone costs more). */
export function budgetOf(request: ComputeRequest, pricing: Pricing, ratio: number, reserve: number): { inputTokens: number; outputTokens: number } {
  const inputTokens = scaled(estimateInputTokens(request), ratio);
  const affordable = outputTokensWithin(reserve, inputTokens, pricing);
  return { inputTokens, outputTokens: affordable < 0 ? -1 : Math.min(affordable, request.max_tokens ?? Infinity) };
}

/**
 * The reservation of a job and what it buys. A given cap that does not cover the estimated input and
 * one token of output is EDQUOT naming both numbers: such a job could only fail or say nothing.
 */
export function planCost(p: PlanInput): CostPlan {
  const inputTokens = scaled(estimateInputTokens(p.request), p.ratio);
  const wanted = Math.min(p.request.max_tokens ?? p.defaultMaxTokens, p.providerMaxOutput ?? Infinity);
  const reserve = p.maxCost ?? costOf(usageOf(inputTokens, wanted), p.pricing);
  const { outputTokens } = budgetOf(p.request, p.pricing, p.ratio, reserve);
  if (p.maxCost !== undefined && outputTokens < 1) {
    const inputCost = costOf(usageOf(inputTokens, 0), p.pricing);
    throw new FsError(
      'EDQUOT',
      p.path,
      outputTokens < 0
        ? `the input alone is estimated at ${inputCost} micro-USD (${inputTokens} tokens), over max_cost ${p.maxCost} micro-USD`
        : `max_cost ${p.maxCost} micro-USD covers the estimated input (${inputCost} micro-USD, ${inputTokens} tokens) but not one token of output`,
    );
  }
  return { reserve, inputTokens, outputTokens: Math.max(0, outputTokens) };
}

/** The request a provider gets: max_tokens at most what the reservation buys. */
export function cappedRequest(request: ComputeRequest, outputTokens: number): ComputeRequest {
  if (!Number.isFinite(outputTokens) || outputTokens < 1) return request;
  return { ...request, max_tokens: Math.min(request.max_tokens ?? Infinity, outputTokens) };
}

/** The usage we estimate for a text (when the provider reports none, or the job was stopped at its cap). */
export function estimatedUsage(request: ComputeRequest, output: string, ratio: number): TokenUsage {
  return usageOf(scaled(estimateInputTokens(request), ratio), scaled(estimateTokens(output), ratio));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Counts a job's streamed output against what its reservation buys. Output is counted as the cost
 * estimate counts it (one token per 4 bytes, × the ratio), so the text it lets through never costs
 * more than the reservation; the first piece that would pass it is cut, and the job is then stopped.
 */
export class OutputMeter {
  /** Bytes of output the reservation pays for. */
  private readonly maxBytes: number;
  private bytes = 0;
  text = '';
  /** True once output had to be cut: the job reached its cap. */
  exhausted = false;

  constructor(outputTokens: number, ratio: number) {
    this.maxBytes = Number.isFinite(outputTokens) ? 4 * Math.floor(outputTokens / Math.max(1, ratio)) : Infinity;
  }

  /** The part of `piece` the reservation still pays for (all of it, until the cap is reached). */
  admit(piece: string): string {
    if (this.exhausted) return '';
    const raw = encoder.encode(piece);
    if (this.bytes + raw.length <= this.maxBytes) {
      this.bytes += raw.length;
      this.text += piece;
      return piece;
    }
    this.exhausted = true;
    let end = this.maxBytes - this.bytes;
    // Never split a UTF-8 character.
    while (end > 0 && (raw[end]! & 0xc0) === 0x80) end--;
    const kept = decoder.decode(raw.subarray(0, end));
    this.bytes += end;
    this.text += kept;
    return kept;
  }
}

export interface JobCharge {
  /** The provider's own token counts, or our estimate when it reported none. */
  usage: TokenUsage;
  /** What the usage costs at the model's prices. */
  actual: number;
  /** What the budget is charged: the actual cost, at most the reservation. */
  cost: number;
  /** What the provider counted beyond the reservation (recorded as its overrun, never charged). */
  overrun: number;
}

/** What a finished job is charged for its output (reported usage, or an estimate at the provider's ratio). */
export function chargeOf(request: ComputeRequest, output: string, reported: TokenUsage | null, pricing: Pricing, reserved: number, ratio: number): JobCharge {
  const usage = reported ?? estimatedUsage(request, output, ratio);
  const actual = costOf(usage, pricing);
  const cost = Math.min(actual, reserved);
  return { usage, actual, cost, overrun: actual - cost };
}
