/**
 * What providers taught us about their token counts. A job's cost is estimated from one token per 4
 * bytes; a provider that counts more tokens than that (its own tokenizer, hidden framing) would cost
 * more than the estimate. Two things are kept, in SQLite:
 * - per provider and model, the observed ratio of its tokens to our estimate: a weighted mean of each
 *   job's ratio, between 1 and 4, that rises fast (half the gap per job) and falls slowly (a tenth), so
 *   later reservations for that model count input (and streamed output) in its tokens;
 * - per agent, provider and model, the overruns: jobs whose provider-reported cost passed their
 *   reservation, and by how much (never charged: a reservation is a hard cap).
 */
import type { Storage } from '../../runtime/storage/index.js';

export const MIN_RATIO = 1;
export const MAX_RATIO = 4;
const RISE = 0.5;
const FALL = 0.1;
/** Ratios are multiples of 1/1024, so tokens × ratio is exact and a cap computed from it never rounds over. */
const QUANTUM = 1024;

export function quantizeRatio(r: number): number {
  const bounded = Math.min(MAX_RATIO, Math.max(MIN_RATIO, Number.isFinite(r) ? r : MIN_RATIO));
  return Math.ceil(bounded * QUANTUM) / QUANTUM;
}

/** The next ratio after a job whose provider counted `actual` tokens where we estimated `estimated`. */
export function nextRatio(current: number, estimated: number, actual: number): number {
  if (estimated <= 0) return current;
  const observed = actual / estimated;
  return quantizeRatio(current + (observed - current) * (observed > current ? RISE : FALL));
}

export interface Overrun {
  /** Jobs whose provider-reported cost passed their reservation. */
  jobs: number;
  /** What those jobs cost beyond their reservations, micro-USD (not charged). */
  micro_usd: number;
}

export interface ProviderModel {
  provider: string;
  model: string;
}

export class ProviderStats {
  // No cache: a point query per job is cheap, and a rolled-back job leaves no stale ratio behind.
  private readonly q;

  constructor(storage: Storage) {
    const db = storage.db;
    this.q = {
      ratio: db.prepare('SELECT ratio FROM compute_token_ratios WHERE provider = ? AND model = ?').pluck(),
      setRatio: db.prepare(`INSERT INTO compute_token_ratios (provider, model, ratio, samples, updated_at) VALUES (?, ?, ?, 1, ?)
        ON CONFLICT (provider, model) DO UPDATE SET ratio = excluded.ratio, samples = samples + 1, updated_at = excluded.updated_at`),
      allRatios: db.prepare('SELECT provider, model, ratio FROM compute_token_ratios ORDER BY provider, model'),
      addOverrun: db.prepare(`INSERT INTO compute_overruns (agent_id, provider, model, jobs, micro_usd) VALUES (?, ?, ?, 1, ?)
        ON CONFLICT (agent_id, provider, model) DO UPDATE SET jobs = jobs + 1, micro_usd = micro_usd + excluded.micro_usd`),
      overrunsOf: db.prepare('SELECT provider, model, jobs, micro_usd FROM compute_overruns WHERE agent_id = ? ORDER BY provider, model'),
      overrunTotals: db.prepare(`SELECT provider, model, sum(jobs) AS jobs, sum(micro_usd) AS micro_usd FROM compute_overruns
        GROUP BY provider, model ORDER BY provider, model`),
      forget: db.prepare('DELETE FROM compute_overruns WHERE agent_id = ?'),
    };
  }

  private static key(provider: string, model: string): string {
    return `${provider}/${model}`;
  }

  /** The provider's tokens per estimated token for a model (1 until a job reported otherwise). */
  ratio(provider: string, model: string): number {
    return (this.q.ratio.get(provider, model) as number | undefined) ?? MIN_RATIO;
  }

  /** Learns from a job's provider-reported token count; returns the job's own ratio. Inside the job's transaction. */
  observe(provider: string, model: string, estimated: number, actual: number, now: number): number {
    const current = this.ratio(provider, model);
    const next = nextRatio(current, estimated, actual);
    if (next !== current) this.q.setRatio.run(provider, model, next, now);
    return estimated > 0 ? actual / estimated : 1;
  }

  recordOverrun(agentId: string, provider: string, model: string, microUsd: number): void {
    this.q.addOverrun.run(agentId, provider, model, microUsd);
  }

  /** An agent's overruns, by `provider/model`, each with that model's current ratio. */
  overruns(agentId: string): Record<string, Overrun & { token_ratio: number }> {
    const rows = this.q.overrunsOf.all(agentId) as (ProviderModel & Overrun)[];
    return Object.fromEntries(
      rows.map((r) => [ProviderStats.key(r.provider, r.model), { jobs: r.jobs, micro_usd: r.micro_usd, token_ratio: this.ratio(r.provider, r.model) }]),
    );
  }

  /** Overruns of every agent, by provider and model (for metrics). */
  overrunTotals(): (ProviderModel & Overrun)[] {
    return this.q.overrunTotals.all() as (ProviderModel & Overrun)[];
  }

  /** Every learned ratio (for metrics). */
  allRatios(): (ProviderModel & { ratio: number })[] {
    return this.q.allRatios.all() as (ProviderModel & { ratio: number })[];
  }

  /** Drops a deleted agent's overruns (the ratios are the provider's, not the agent's). */
  forget(agentId: string): void {
    this.q.forget.run(agentId);
  }
}
