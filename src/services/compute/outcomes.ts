/**
 * How a job ends, recorded inside the transaction of its end: the job row, the budget settlement, what
 * its provider taught us (token ratio, overrun), the stream's last chunk and `end`, and the trace event.
 * A completed job is charged the cost of its usage, at most its reservation (a hard cap); a failed or
 * cancelled one releases its reservation.
 */
import type { EventChannel } from '../../fs/events.js';
import type { BudgetLedger } from '../../runtime/budget-ledger.js';
import { chargeOf } from './cap.js';
import type { JobStore, Job } from './jobs.js';
import type { ProviderStats } from './overruns.js';
import { estimateInputTokens, estimateTokens } from './pricing.js';
import type { ComputeChunk, ComputeResponse, Pricing, ProviderResult } from './types.js';

import type { TraceSink } from '../kit/trace-sink.js';

export interface OutcomeDeps {
  jobs: JobStore;
  ledger: BudgetLedger;
  stats: ProviderStats;
  trace: TraceSink;
  channel(agentId: string): EventChannel;
  now(): number;
}

export interface Completion {
  provider: string;
  pricing: Pricing;
  result: ProviderResult;
  /** Chunks already streamed. */
  chunks: number;
  started: number;
  /** The provider's token ratio the job ran with (its output was metered with it). */
  ratio: number;
}

/**
 * Records a completion. A provider's own token count teaches its ratio; what it counted past the
 * reservation is its overrun, recorded and not charged.
 */
export function completeJobTx(d: OutcomeDeps, job: Job, c: Completion): void {
  const now = d.now();
  const text = c.result.output.text;
  const charge = chargeOf(job.request, text, c.result.usage, c.pricing, job.reserved, c.ratio);
  const response: ComputeResponse = {
    job_id: job.id,
    provider: c.provider,
    model: job.model,
    output: c.result.output,
    usage: charge.usage,
    cost: charge.cost,
    reserved: job.reserved,
    overrun: charge.overrun,
    latency_ms: now - c.started,
    created_at: job.createdAt,
    finished_at: now,
  };
  const version = d.jobs.complete(job.id, response, c.chunks + 1, now);
  if (version === undefined) return; // finished meanwhile (cancelled, or failed by a restarted server)
  const settlement = job.reservationId === null ? undefined : d.ledger.reconcile(job.reservationId, charge.actual);
  const reported = c.result.usage;
  const tokenRatio = reported
    ? d.stats.observe(c.provider, job.model, estimateInputTokens(job.request) + estimateTokens(text), reported.total_tokens, now)
    : undefined;
  if (charge.overrun > 0) d.stats.recordOverrun(job.agentId, c.provider, job.model, charge.overrun);
  // The last chunk carries the finish reason and usage; a provider that did not stream gives all its output here.
  const last: ComputeChunk = { delta: { text: c.chunks === 0 ? text : '' }, finish_reason: c.result.output.finish_reason, usage: charge.usage };
  const ch = d.channel(job.agentId);
  ch.emit(`/jobs/${job.id}/stream`, 'data', { data: last });
  ch.emit(`/jobs/${job.id}/stream`, 'end', { data: { status: 'complete' } });
  ch.emit(`/jobs/${job.id}/status`, 'modified', { version });
  ch.emit(`/jobs/${job.id}/result`, 'created', { version: 1 });
  d.trace(job.agentId, {
    type: 'compute_complete',
    job_id: job.id,
    provider: c.provider,
    model: job.model,
    reserved: job.reserved,
    cost: charge.cost,
    refunded: settlement?.refunded ?? job.reserved - charge.cost,
    ...(charge.overrun > 0 ? { overrun: charge.overrun } : {}),
    ...(tokenRatio !== undefined ? { token_ratio: Math.round(tokenRatio * 1000) / 1000 } : {}),
    usage: charge.usage,
    finish_reason: c.result.output.finish_reason,
    latency_ms: response.latency_ms,
  });
}

/** Records a failure or cancel: releases the reservation, ends the stream. */
export function failJobTx(d: OutcomeDeps, job: Job, status: 'failed' | 'cancelled', code: string, message: string, chunks: number): void {
  const version = d.jobs.fail(job.id, status, code, message, chunks + 1, d.now());
  if (version === undefined) return; // already finished
  if (job.reservationId !== null) d.ledger.release(job.reservationId);
  const last: ComputeChunk = { delta: { text: '' }, finish_reason: status === 'cancelled' ? 'cancelled' : 'error', usage: null, error: { code, message } };
  const ch = d.channel(job.agentId);
  ch.emit(`/jobs/${job.id}/stream`, 'data', { data: last });
  ch.emit(`/jobs/${job.id}/stream`, 'end', { data: { status } });
  ch.emit(`/jobs/${job.id}/status`, 'modified', { version });
  d.trace(job.agentId, {
    type: status === 'cancelled' ? 'compute_cancelled' : 'compute_failed',
    job_id: job.id,
    provider: job.provider,
    model: job.model,
    code,
    error: message,
    released: job.reserved,
  });
}
