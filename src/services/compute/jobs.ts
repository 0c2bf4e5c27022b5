/** Durable job records: one row per job, with its request, state, cost and result (SQLite). */
import { randomBytes } from 'node:crypto';
import { FsError } from '../../fs/errors.js';
import type { Storage } from '../../runtime/storage/index.js';
import type { ComputeRequest, ComputeResponse, JobStatus } from './types.js';

const RESULT_RETRY_AFTER_MS = 500;

export interface Job {
  id: string;
  agentId: string;
  status: JobStatus;
  provider: string;
  model: string;
  request: ComputeRequest;
  reservationId: number | null;
  reserved: number;
  cost: number | null;
  idempotencyKey: string | null;
  result: ComputeResponse | null;
  error: { code: string; message: string } | null;
  /** The event id before the job's first stream event: a stream read replays from here. */
  streamFrom: number;
  chunks: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
  version: number;
}

interface Row {
  id: string;
  agent_id: string;
  status: JobStatus;
  provider: string;
  model: string;
  request: string;
  reservation_id: number | null;
  reserved: number;
  cost: number | null;
  idempotency_key: string | null;
  result: string | null;
  error_code: string | null;
  error_message: string | null;
  stream_from: number;
  chunks: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
  version: number;
}

function fromRow(r: Row): Job {
  return {
    id: r.id,
    agentId: r.agent_id,
    status: r.status,
    provider: r.provider,
    model: r.model,
    request: JSON.parse(r.request) as ComputeRequest,
    reservationId: r.reservation_id,
    reserved: r.reserved,
    cost: r.cost,
    idempotencyKey: r.idempotency_key,
    result: r.result === null ? null : (JSON.parse(r.result) as ComputeResponse),
    error: r.error_code === null ? null : { code: r.error_code, message: r.error_message ?? '' },
    streamFrom: r.stream_from,
    chunks: r.chunks,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    updatedAt: r.updated_at,
    version: r.version,
  };
}

let lastStamp = '';
let seq = 0;

/** Ids sort by creation time: base-36 milliseconds, a per-millisecond counter and random bits. */
export function newJobId(now = Date.now()): string {
  const stamp = now.toString(36).padStart(9, '0');
  seq = stamp === lastStamp ? seq + 1 : 0;
  lastStamp = stamp;
  return `${stamp}${seq.toString(36).padStart(2, '0')}-${randomBytes(3).toString('hex')}`;
}

export interface NewJob {
  id: string;
  agentId: string;
  provider: string;
  model: string;
  request: ComputeRequest;
  reservationId: number;
  reserved: number;
  streamFrom: number;
  createdAt: number;
}

export class JobStore {
  private readonly q;

  constructor(storage: Storage) {
    const db = storage.db;
    this.q = {
      insert: db.prepare(`INSERT INTO compute_jobs (id, agent_id, status, provider, model, request, reservation_id, reserved,
          idempotency_key, stream_from, created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      get: db.prepare('SELECT * FROM compute_jobs WHERE id = ?'),
      status: db.prepare('SELECT status FROM compute_jobs WHERE id = ?').pluck(),
      stamp: db.prepare('SELECT updated_at AS updatedAt, version FROM compute_jobs WHERE id = ? AND agent_id = ?'),
      ids: db.prepare('SELECT id FROM compute_jobs WHERE agent_id = ? ORDER BY id').pluck(),
      counts: db.prepare('SELECT status, count(*) AS n FROM compute_jobs WHERE agent_id = ? GROUP BY status'),
      active: db.prepare("SELECT * FROM compute_jobs WHERE status IN ('pending', 'running', 'streaming') ORDER BY id"),
      start: db.prepare(`UPDATE compute_jobs SET status = 'running', started_at = ?, updated_at = ?, version = version + 1
          WHERE id = ? AND status = 'pending' RETURNING version`).pluck(),
      streaming: db.prepare(`UPDATE compute_jobs SET status = 'streaming', updated_at = ?, version = version + 1
          WHERE id = ? AND status = 'running' RETURNING version`).pluck(),
      chunks: db.prepare('UPDATE compute_jobs SET chunks = ? WHERE id = ?'),
      provider: db.prepare('UPDATE compute_jobs SET provider = ?, updated_at = ? WHERE id = ?'),
      complete: db.prepare(`UPDATE compute_jobs SET status = 'complete', result = ?, cost = ?, chunks = ?, finished_at = ?,
          updated_at = ?, version = version + 1 WHERE id = ? AND status IN ('pending', 'running', 'streaming') RETURNING version`).pluck(),
      fail: db.prepare(`UPDATE compute_jobs SET status = ?, error_code = ?, error_message = ?, cost = 0, chunks = ?, finished_at = ?,
          updated_at = ?, version = version + 1 WHERE id = ? AND status IN ('pending', 'running', 'streaming') RETURNING version`).pluck(),
      pruneBefore: db.prepare('DELETE FROM compute_jobs WHERE finished_at IS NOT NULL AND finished_at < ?'),
      forget: db.prepare('DELETE FROM compute_jobs WHERE agent_id = ?'),
    };
  }

  insert(job: NewJob, idempotencyKey: string | undefined): void {
    this.q.insert.run(
      job.id,
      job.agentId,
      job.provider,
      job.model,
      JSON.stringify(job.request),
      job.reservationId,
      job.reserved,
      idempotencyKey ?? null,
      job.streamFrom,
      job.createdAt,
      job.createdAt,
    );
  }

  get(id: string): Job | undefined {
    const row = this.q.get.get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** When the agent's job last changed and its version; undefined when it has no such job (no JSON parsing). */
  stamp(agentId: string, id: string): { updatedAt: number; version: number } | undefined {
    return this.q.stamp.get(id, agentId) as { updatedAt: number; version: number } | undefined;
  }

  status(id: string): JobStatus | undefined {
    return this.q.status.get(id) as JobStatus | undefined;
  }

  /** The job if it belongs to the agent (another agent's job does not exist for it). */
  getFor(agentId: string, id: string): Job | undefined {
    const job = this.get(id);
    return job && job.agentId === agentId ? job : undefined;
  }

  ids(agentId: string): string[] {
    return this.q.ids.all(agentId) as string[];
  }

  counts(agentId: string): Record<JobStatus, number> {
    const out: Record<JobStatus, number> = { pending: 0, running: 0, streaming: 0, complete: 0, failed: 0, cancelled: 0 };
    for (const r of this.q.counts.all(agentId) as { status: JobStatus; n: number }[]) out[r.status] = r.n;
    return out;
  }

  /** Jobs not finished (after a restart: the ones that were in flight). */
  active(): Job[] {
    return (this.q.active.all() as Row[]).map(fromRow);
  }

  /** pending -> running; the new version, or undefined when it was no longer pending. */
  start(id: string, now: number): number | undefined {
    return this.q.start.get(now, now, id) as number | undefined;
  }

  streaming(id: string, now: number): number | undefined {
    return this.q.streaming.get(now, id) as number | undefined;
  }

  setChunks(id: string, chunks: number): void {
    this.q.chunks.run(chunks, id);
  }

  setProvider(id: string, provider: string, now: number): void {
    this.q.provider.run(provider, now, id);
  }

  complete(id: string, result: ComputeResponse, chunks: number, now: number): number | undefined {
    return this.q.complete.get(JSON.stringify(result), result.cost, chunks, now, now, id) as number | undefined;
  }

  fail(id: string, status: 'failed' | 'cancelled', code: string, message: string, chunks: number, now: number): number | undefined {
    return this.q.fail.get(status, code, message, chunks, now, now, id) as number | undefined;
  }

  /** Drops every job of an agent (the agent was deleted). */
  forget(agentId: string): number {
    return this.q.forget.run(agentId).changes;
  }

  /** Drops finished jobs older than `before`; returns how many. */
  prune(before: number): number {
    return this.q.pruneBefore.run(before).changes;
  }
}

/** The status file's content. */
export function jobStatus(job: Job): Record<string, unknown> {
  return {
    job_id: job.id,
    status: job.status,
    provider: job.provider,
    model: job.model,
    stream: job.request.stream,
    reserved: job.reserved,
    cost: job.cost,
    chunks: job.chunks,
    created_at: job.createdAt,
    started_at: job.startedAt,
    finished_at: job.finishedAt,
    ...(job.idempotencyKey ? { idempotency_key: job.idempotencyKey } : {}),
    ...(job.request.budget_scope ? { budget_scope: job.request.budget_scope } : {}),
    ...(job.error ? { error: job.error } : {}),
  };
}

/** The result file: the response, or the job's failure as its error, or EAGAIN while it runs. */
export function jobResult(job: Job, path: string): ComputeResponse {
  switch (job.status) {
    case 'complete':
      // Results recorded before overruns were kept have none.
      return { ...job.result!, overrun: job.result!.overrun ?? 0 };
    case 'failed':
    case 'cancelled': {
      const code = job.error?.code ?? 'EIO';
      throw new FsError(code as 'EIO', path, `job ${job.status}: ${job.error?.message ?? 'unknown error'}`);
    }
    default:
      throw new FsError('EAGAIN', path, `not ready: job ${job.id} is ${job.status}`, { retryAfterMs: RESULT_RETRY_AFTER_MS });
  }
}
