/**
 * The compute engine: one per server, shared by every agent's /compute. It submits jobs (policy,
 * routing, idempotency, budget reservation and the job record in one transaction), runs them on their
 * providers, streams their output into the event log, settles their budget and records the outcome.
 * Jobs in flight when the server stopped are failed at start ("server restarted") and their
 * reservations released; finished results are never lost.
 */
import { FsError, toFsError } from '../../fs/errors.js';
import type { BudgetLedger, BudgetScope } from '../../runtime/budget-ledger.js';
import type { IdempotencyJournal } from '../../runtime/idempotency-journal.js';
import { GroupCommit } from '../../runtime/storage/group-commit.js';
import type { Storage } from '../../runtime/storage/index.js';
import { JobStore, newJobId, type Job } from './jobs.js';
import { CapabilityCore, type CapabilityOptions, type CapabilitySpec } from '../kit/core.js';
import type { TraceSink } from '../kit/trace-sink.js';
import { parseJsonObject } from '../kit/validation.js';
import { computePolicyCodec, route, type ComputePolicy, type ComputePolicyStore, type PolicyInput } from './policy.js';
import { budgetOf, cappedRequest, OutputMeter, planCost } from './cap.js';
import { completeJobTx, failJobTx, type OutcomeDeps } from './outcomes.js';
import { ProviderStats } from './overruns.js';
import { ProviderRegistry } from './providers/index.js';
import { REQUEST_EXAMPLE, parseRequestValue } from './request.js';
import type { ComputeChunk, ComputeProvider, ComputeRequest, JobStatus, Pricing, ProviderResult } from './types.js';

export type { TraceEvent, TraceSink } from '../kit/trace-sink.js';

export const COMPUTE_SERVICE = 'compute';
export const DEFAULT_JOB_RETENTION_MS = 7 * 24 * 3600 * 1000;
/** The abort reason of a job stopped because its output reached its reservation (it completes, `length`). */
const CAP_REACHED = new FsError('EDQUOT', '/', 'the job reached its reservation');

/** What /compute is to the kit. */
const COMPUTE: CapabilitySpec<ComputePolicy> = {
  service: COMPUTE_SERVICE, policyTable: 'compute_policies', codec: computePolicyCodec, defaultsWhere: 'config.json compute.policy', mountPath: '/compute',
  submits: { idField: 'job_id', noun: 'job' },
};

export interface ComputeEngineOptions extends CapabilityOptions {
  storage: Storage;
  ledger?: BudgetLedger;
  journal?: IdempotencyJournal;
  providers: ProviderRegistry;
  /** The server's default policy (config.json compute.policy). */
  policy?: PolicyInput;
  trace?: TraceSink;
  /** Finished jobs are kept this long (default 7 days). */
  jobRetentionMs?: number;
  /** Failures to record a job's progress (storage errors); default: a process warning. */
  onError?: (err: unknown, job: Job) => void;
  now?: () => number;
}

export interface SubmitAnswer {
  job_id: string;
  status: JobStatus;
  /** True when the idempotency key matched an earlier request: this is that request's job. */
  replayed?: true;
  paths: { status: string; result: string; stream: string; ctl: string };
}

interface Running {
  controller: AbortController;
  done: Promise<void>;
}

interface AgentSlots {
  running: number;
  waiting: Job[];
}

/** Policies, caps, the idempotent submit path, traces and channels come from the kit (CapabilityCore). */
export class ComputeEngine extends CapabilityCore<ComputePolicy> {
  declare readonly policies: ComputePolicyStore;
  readonly providers: ProviderRegistry;
  readonly jobs: JobStore;
  /** Providers' token ratios and the overruns of each agent. */
  readonly stats: ProviderStats;
  private readonly retentionMs: number;
  private readonly running = new Map<string, Running>();
  private readonly slots = new Map<string, AgentSlots>();
  private readonly idle = new Set<() => void>();
  private finishedSincePrune = 0;
  private closed = false;
  private readonly commits: GroupCommit;
  private readonly onError: (err: unknown, job: Job) => void;
  private readonly outcomes: OutcomeDeps;

  constructor(options: ComputeEngineOptions) {
    super(options, COMPUTE);
    this.providers = options.providers;
    this.jobs = new JobStore(options.storage);
    this.stats = new ProviderStats(options.storage);
    this.retentionMs = options.jobRetentionMs ?? DEFAULT_JOB_RETENTION_MS;
    this.commits = new GroupCommit(this.storage);
    this.onError =
      options.onError ??
      ((err, job) => process.emitWarning(`compute job ${job.id} of ${job.agentId}: ${(err as Error)?.message ?? String(err)}`, 'ComputeWarning'));
    this.outcomes = { jobs: this.jobs, ledger: this.ledger, stats: this.stats, trace: this.trace, channel: (id) => this.channel(id), now: this.now };
    this.recover();
    this.jobs.prune(this.now() - this.retentionMs);
  }

  paths(id: string): SubmitAnswer['paths'] {
    const base = `${this.mountPath}/jobs/${id}`;
    return { status: `${base}/status`, result: `${base}/result`, stream: `${base}/stream`, ctl: `${base}/ctl` };
  }

  /**
   * Submits a request written to /compute/new. Everything that can be refused is refused here, before
   * anything is reserved: bad JSON or fields (EINVAL), oversize input (EFBIG), policy (EACCES),
   * budget (EDQUOT). A repeated idempotency key returns the first job and reserves nothing.
   */
  async submit(agentId: string, data: Uint8Array, path = '/new'): Promise<SubmitAnswer> {
    if (this.closed) throw new FsError('EAGAIN', path, 'the server is shutting down', { retryAfterMs: 1000 });
    const raw = parseJsonObject(data, path, `the request must be a JSON object, e.g. ${REQUEST_EXAMPLE}`);
    const submission = this.submits.begin(agentId, raw);
    // A repeated key answers with its job first, whatever changed since (policy, budget, providers).
    const earlier = this.submits.earlier(submission, path);
    if (earlier !== undefined) return this.replay(earlier);
    const policy = this.policy(agentId);
    const req = parseRequestValue(raw, policy, path);
    if (policy.require_idempotency && req.idempotency_key === undefined) {
      throw new FsError('EINVAL', path, "missing field 'idempotency_key' (required by /compute/policy)");
    }
    const { provider } = route(req, policy, this.providers.list(), (id) => this.providers.cachedHealth(id), path);
    provider.validate?.(req, path);
    const maxCost = req.max_cost ?? policy.default_max_cost ?? undefined;
    if (maxCost === undefined && policy.require_max_cost) {
      throw new FsError('EINVAL', path, "missing field 'max_cost' (required by /compute/policy)");
    }
    // The reservation is the job's cap: max_cost, or the whole estimate (input + max_tokens of output)
    // on its provider or, when dearer, on the fallback it may run on.
    const planOn = (p: ComputeProvider) =>
      planCost({
        request: req,
        pricing: this.pricingOf(p, req.model),
        ratio: this.stats.ratio(p.id, req.model),
        maxCost,
        defaultMaxTokens: policy.default_max_tokens,
        providerMaxOutput: p.maxOutputTokens?.(req),
        path,
      }).reserve;
    const fallback = maxCost === undefined ? this.fallbackProvider(policy, req.model, provider.id) : undefined;
    const reserve = Math.max(planOn(provider), fallback ? planOn(fallback) : 0);
    if (policy.max_cost_per_job !== null && reserve > policy.max_cost_per_job) {
      throw new FsError('EDQUOT', path, `max cost ${reserve} micro-USD is over the policy's max_cost_per_job (${policy.max_cost_per_job})`);
    }
    this.applyCaps(agentId, policy);

    let fresh: Job | undefined;
    const create = (): string => {
      const now = this.now();
      const id = newJobId(now);
      const scope: BudgetScope = { service: COMPUTE_SERVICE, ...req.budget_scope };
      const reservation = this.ledger.reserve(agentId, reserve, scope, `compute job ${id}`, path);
      const streamFrom = this.storage.eventStore.lastId();
      this.jobs.insert(
        { id, agentId, provider: provider.id, model: req.model, request: req, reservationId: reservation.id, reserved: reserve, streamFrom, createdAt: now },
        req.idempotency_key,
      );
      fresh = {
        id,
        agentId,
        status: 'pending',
        provider: provider.id,
        model: req.model,
        request: req,
        reservationId: reservation.id,
        reserved: reserve,
        cost: null,
        idempotencyKey: req.idempotency_key ?? null,
        result: null,
        error: null,
        streamFrom,
        chunks: 0,
        createdAt: now,
        startedAt: null,
        finishedAt: null,
        updatedAt: now,
        version: 1,
      };
      this.channel(agentId).emit(`/jobs/${id}`, 'created', { version: 1 });
      this.trace(agentId, {
        type: 'compute_submit',
        job_id: id,
        provider: provider.id,
        model: req.model,
        reserved: reserve,
        ...(req.budget_scope ? { budget_scope: req.budget_scope } : {}),
        ...(req.idempotency_key ? { idempotency_key: req.idempotency_key } : {}),
      });
      return id;
    };

    // The reservation and the record commit with other submits of this turn (group commit): one commit
    // for many jobs. Each runs in its own savepoint, so a refused reservation refuses only its job.
    const committed = await this.commits.run(() => this.submits.commit(submission, path, create));
    // The same key arrived in the same turn: the first of them made the job.
    if (committed.replayed) return this.replay(committed.id);
    const job = fresh!;
    this.schedule(job);
    return { job_id: job.id, status: 'pending', paths: this.paths(job.id) };
  }

  /** The answer to a repeated idempotency key: the first job, as it is now. */
  private replay(jobId: string): SubmitAnswer {
    return { job_id: jobId, status: this.jobs.status(jobId) ?? 'complete', replayed: true, paths: this.paths(jobId) };
  }

  // --- running jobs ---

  private schedule(job: Job): void {
    let s = this.slots.get(job.agentId);
    if (!s) {
      s = { running: 0, waiting: [] };
      this.slots.set(job.agentId, s);
    }
    if (s.running < this.policy(job.agentId).max_concurrent_jobs) {
      s.running++;
      this.start(job);
    } else {
      s.waiting.push(job);
    }
  }

  private release(agentId: string): void {
    const s = this.slots.get(agentId);
    if (!s) return;
    s.running--;
    while (s.waiting.length > 0 && s.running < this.policy(agentId).max_concurrent_jobs) {
      const next = s.waiting.shift()!;
      if (this.jobs.status(next.id) !== 'pending') continue; // cancelled while waiting
      s.running++;
      this.start(next);
    }
    if (s.running === 0 && s.waiting.length === 0) this.slots.delete(agentId);
    if (this.running.size === 0) for (const wake of this.idle) wake();
  }

  private start(job: Job): void {
    const controller = new AbortController();
    const entry: Running = { controller, done: Promise.resolve() };
    this.running.set(job.id, entry);
    entry.done = this.run(job, controller)
      .catch((err: unknown) => this.onError(err, job))
      .finally(() => {
        this.running.delete(job.id);
        this.release(job.agentId);
      });
  }

  /**
   * Runs a job on its provider. Its writes (start, chunks, outcome) go through the group commit, so
   * concurrent jobs share commits; the outcome is durable before this resolves.
   */
  private async run(job: Job, controller: AbortController): Promise<void> {
    const ch = this.channel(job.agentId);
    const jobId = job.id;
    const started = this.now();
    void this.commits
      .run(() => {
        const version = this.jobs.start(jobId, started);
        if (version !== undefined) ch.emit(`/jobs/${jobId}/status`, 'modified', { version });
      })
      .catch((err: unknown) => this.onError(err, job));
    const timeout = setTimeout(
      () => controller.abort(new FsError('ETIMEDOUT', `/jobs/${jobId}`, `job did not finish within timeout_ms (${job.request.timeout_ms} ms)`)),
      job.request.timeout_ms,
    );
    let chunks = 0;
    let meter = new OutputMeter(Infinity, 1);
    let ratio = 1;
    const io = {
      signal: controller.signal,
      chunk: (text: string) => {
        if (controller.signal.aborted || text.length === 0) return;
        const kept = meter.admit(text);
        if (kept.length > 0) this.emitChunk(job, kept, ++chunks === 1);
        // Output past the reservation is not paid for: the job stops here and completes with `length`.
        if (meter.exhausted) controller.abort(CAP_REACHED);
      },
    };
    // Each attempt asks for at most the output tokens the reservation buys on that provider.
    const runOn = (p: ComputeProvider) => {
      const budget = this.outputBudget(job, p);
      ratio = budget.ratio;
      // A provider needs max_tokens >= 1; a ratio that rose since submit may leave less (the charge stays capped).
      const capped = Math.max(1, budget.tokens);
      meter = new OutputMeter(capped, ratio);
      return this.attempt(p, cappedRequest(job.request, capped), io, controller.signal);
    };
    let provider: ComputeProvider | undefined;
    try {
      if (controller.signal.aborted) throw controller.signal.reason;
      provider = this.providerOf(job);
      let result: ProviderResult;
      try {
        result = await runOn(provider);
      } catch (err) {
        const fallback = this.fallbackFor(job, err, chunks, controller.signal);
        if (!fallback) throw err;
        const from = provider.id;
        await this.commits.run(() => {
          this.jobs.setProvider(jobId, fallback.id, this.now());
          this.trace(job.agentId, { type: 'compute_fallback', job_id: jobId, from, to: fallback.id, reason: toFsError(err, `/jobs/${jobId}`).message });
        });
        provider = fallback;
        job.provider = fallback.id;
        result = await runOn(provider);
      }
      this.providers.observe(provider.id, 'available');
      const done = provider;
      await this.commits.run(() => this.completeTx(job, done, result, { chunks, started, ratio }));
    } catch (err) {
      const reason = controller.signal.aborted ? controller.signal.reason : err;
      if (reason === CAP_REACHED && provider) {
        // Stopped at its reservation: it completes with what it streamed, charged at most the reservation.
        const done = provider;
        const result: ProviderResult = { output: { text: meter.text, finish_reason: 'length' }, usage: null };
        await this.commits.run(() => this.completeTx(job, done, result, { chunks, started, ratio }));
      } else {
        const e = toFsError(reason, `/jobs/${jobId}`);
        if (e.code === 'EREMOTEIO') this.providers.observe(job.provider, 'degraded', e.detail);
        const status = e.code === 'ECANCELED' ? 'cancelled' : 'failed';
        await this.commits.run(() => this.failTx(job, status, e.code, e.detail, chunks));
      }
    } finally {
      clearTimeout(timeout);
    }
    this.afterFinish();
  }

  /** A piece of streamed output: the stream's next chunk (the first one marks the job streaming). */
  private emitChunk(job: Job, text: string, first: boolean): void {
    const ch = this.channel(job.agentId);
    const chunk: ComputeChunk = { delta: { text }, finish_reason: null, usage: null };
    void this.commits
      .run(() => {
        if (first) {
          const v = this.jobs.streaming(job.id, this.now());
          if (v !== undefined) ch.emit(`/jobs/${job.id}/status`, 'modified', { version: v });
        }
        ch.emit(`/jobs/${job.id}/stream`, 'data', { data: chunk });
      })
      .catch((err: unknown) => this.onError(err, job));
  }

  /** The output tokens a job's reservation buys on a provider, after its input at the provider's token ratio. */
  private outputBudget(job: Job, provider: ComputeProvider): { ratio: number; tokens: number } {
    const ratio = this.stats.ratio(provider.id, job.model);
    return { ratio, tokens: budgetOf(job.request, this.pricingOf(provider, job.model), ratio, job.reserved).outputTokens };
  }

  private providerOf(job: Job): ComputeProvider {
    const p = this.providers.get(job.provider);
    if (!p) throw new FsError('EREMOTEIO', `/jobs/${job.id}`, `provider '${job.provider}' is no longer configured`);
    return p;
  }

  /** Runs on a provider, rejecting as soon as the job is aborted even if the provider does not notice. */
  private attempt(provider: ComputeProvider, req: ComputeRequest, io: { signal: AbortSignal; chunk(t: string): void }, signal: AbortSignal) {
    return new Promise<ProviderResult>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      provider.run(req, io).then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private fallbackFor(job: Job, err: unknown, chunks: number, signal: AbortSignal): ComputeProvider | undefined {
    if (signal.aborted || chunks > 0) return undefined;
    const code = (err as { code?: string }).code;
    if (code !== 'EREMOTEIO' && code !== 'ETIMEDOUT') return undefined;
    const p = this.fallbackProvider(this.policy(job.agentId), job.request.model, job.provider);
    // A fallback whose prices leave the reservation no room for output would only overrun it.
    return p && this.outputBudget(job, p).tokens >= 1 ? p : undefined;
  }

  /** The policy's fallback for a job on provider `from`, when it may serve the model. */
  private fallbackProvider(policy: ComputePolicy, model: string, from: string): ComputeProvider | undefined {
    const id = policy.fallback_provider;
    if (!id || id === from) return undefined;
    if (policy.allowed_providers.length > 0 && !policy.allowed_providers.includes(id)) return undefined;
    const p = this.providers.get(id);
    return p && p.supports(model) ? p : undefined;
  }

  private pricingOf(provider: ComputeProvider, model: string): Pricing {
    const info = provider.info();
    return info.models.find((m) => m.id === model)?.pricing ?? info.pricing;
  }

  private completeTx(job: Job, provider: ComputeProvider, result: ProviderResult, run: { chunks: number; started: number; ratio: number }): void {
    completeJobTx(this.outcomes, job, { provider: provider.id, pricing: this.pricingOf(provider, job.model), result, ...run });
  }

  private failTx(job: Job, status: 'failed' | 'cancelled', code: string, message: string, chunks: number): void {
    failJobTx(this.outcomes, job, status, code, message, chunks);
  }

  private afterFinish(): void {
    if (++this.finishedSincePrune >= 1000) {
      this.finishedSincePrune = 0;
      this.jobs.prune(this.now() - this.retentionMs);
    }
  }

  /** Cancels a job: a pending one at once, a running one as soon as its provider stops. */
  async cancel(agentId: string, jobId: string, path = `/jobs/${jobId}/ctl`): Promise<Job> {
    const job = this.jobs.getFor(agentId, jobId);
    if (!job) throw new FsError('ENOENT', path, `no job ${jobId}`);
    if (job.status === 'cancelled') return job;
    if (job.status === 'complete' || job.status === 'failed') {
      throw new FsError('EINVAL', path, `job ${jobId} already finished (${job.status})`);
    }
    const running = this.running.get(jobId);
    if (running) {
      running.controller.abort(new FsError('ECANCELED', `/jobs/${jobId}`, 'job was cancelled'));
      await running.done;
    } else {
      this.storage.tx(() => this.failTx(job, 'cancelled', 'ECANCELED', 'job was cancelled', job.chunks));
    }
    return this.jobs.get(jobId)!;
  }

  // --- reading jobs ---

  job(agentId: string, jobId: string): Job | undefined {
    return this.jobs.getFor(agentId, jobId);
  }

  /** The usage file: the agent's budget, what /compute itself may and did spend, scopes, job counts and providers' overruns. */
  usage(agentId: string): Record<string, unknown> {
    return {
      ...this.budgetUsage(agentId),
      jobs: this.jobs.counts(agentId),
      overruns: this.stats.overruns(agentId),
    };
  }

  // --- lifecycle ---

  /**
   * Drops everything /compute holds for a deleted agent: its running and waiting jobs stop, its jobs,
   * policy and idempotency keys go (a new agent with the same name starts clean).
   */
  async forget(agentId: string): Promise<void> {
    const s = this.slots.get(agentId);
    if (s) s.waiting = [];
    const mine = [...this.running.entries()].filter(([id]) => this.jobs.getFor(agentId, id));
    for (const [id, r] of mine) r.controller.abort(new FsError('ECANCELED', `/jobs/${id}`, 'the agent was deleted'));
    await Promise.all(mine.map(([, r]) => r.done));
    this.storage.tx(() => {
      this.jobs.forget(agentId);
      this.stats.forget(agentId);
      this.forgetRecords(agentId);
    });
    this.forgetCached(agentId);
  }

  /** Fails the jobs a previous run left in flight and releases their reservations. */
  recover(): number {
    const stale = this.jobs.active().filter((j) => !this.running.has(j.id));
    this.storage.tx(() => {
      for (const job of stale) {
        this.failTx(job, 'failed', 'EIO', `server restarted while the job was ${job.status}`, job.chunks);
      }
    });
    return stale.length;
  }

  /** Resolves when no job is running (tests, benchmarks, shutdown). */
  async drain(): Promise<void> {
    while (this.running.size > 0) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.idle.delete(wake);
          resolve();
        };
        this.idle.add(wake);
      });
    }
  }

  /** Stops taking jobs and cancels the running ones (their reservations are released). */
  async close(): Promise<void> {
    this.closed = true;
    for (const [id, r] of this.running) {
      r.controller.abort(new FsError('EIO', `/jobs/${id}`, 'server shutting down'));
    }
    await Promise.all([...this.running.values()].map((r) => r.done));
  }
}
