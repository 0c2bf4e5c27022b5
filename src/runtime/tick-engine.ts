/**
 * The tick engine. At most one tick per agent runs at a time. A tick takes a batch of inbox envelopes
 * (oldest first, so FIFO per sender) as Message triggers, plus the trigger of its cause (manual, ctl,
 * alarm, schedule; `init` on an agent's first tick), runs the agent's program, and commits in ONE
 * transaction: state, kv, seen cache, acks of consumed envelopes, outbox envelopes, counters, schedule
 * and trace events. A failed tick commits nothing of the program's: its envelopes stay queued with one
 * more attempt, and after `max_attempts` go to the deadletter with the error.
 */
import { ensureWorkDir } from './agent-workdir.js';
import { performance } from 'node:perf_hooks';
import { FsError, toFsError } from '../fs/errors.js';
import type { Storage } from './storage/index.js';
import type { QueuedRow, RuntimeStore } from './agent-store/index.js';
import { configOf, parseAgent, type AgentRecord } from './agents.js';
import { newId } from './envelope.js';
import { errorText, type TraceData, type Tracer } from './trace.js';
import { normalizeResult, type NormalizedResult, type ProgramRegistry } from './programs/index.js';
import type { Queues } from './queues.js';
import { GroupCommit } from './storage/group-commit.js';
import type { OutboxRoutes } from './outbox-routes.js';
import type { Envelope, LifecycleState, TickCause, Trigger } from './spec.js';

/** Serialises work per key: each run starts after the previous one for the same key has finished. */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  busy(key: string): boolean {
    return this.tails.has(key);
  }

  get size(): number {
    return this.tails.size;
  }

  run<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Resolves when every run started so far has finished. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}

/** The budget ledger as the runtime uses it (BudgetLedger in src/runtime/budget-ledger.ts). */
export interface BudgetView {
  usage(agentId: string): unknown;
  /** Starts the agent's new tick window; called at the start of every tick. */
  resetTick(agentId: string): unknown;
}

export interface TickReport {
  agent: string;
  /** The tick's number (successful and failed ticks share one sequence); 0 when nothing ran. */
  tick: number;
  ok: boolean;
  cause: TickCause['type'];
  /** Nothing to do (a message tick that found the inbox empty). */
  skipped?: boolean;
  duration_ms: number;
  delivered: string[];
  duplicates: string[];
  outbox: string[];
  deadlettered: string[];
  state?: LifecycleState;
  error?: { code: string; message: string };
}

export interface EngineOptions {
  home: string;
  execEnv: (agentId: string) => Promise<Record<string, string>>;
  budgets?: BudgetView | undefined;
  /** Where addressed outbox envelopes go (taken in the tick's transaction). */
  routes?: OutboxRoutes | undefined;
}

const MAX_BACKOFF_MS = 60_000;

export class TickEngine {
  readonly locks = new KeyedLock();
  readonly commits: GroupCommit;
  private closing = false;
  /** Called after every tick (the scheduler re-evaluates the agent). */
  onTick: (report: TickReport) => void = () => undefined;

  constructor(
    private readonly storage: Storage,
    private readonly store: RuntimeStore,
    private readonly tracer: Tracer,
    private readonly programs: ProgramRegistry,
    private readonly queues: Queues,
    private readonly options: EngineOptions,
  ) {
    this.commits = new GroupCommit(storage);
  }

  setBudgets(budgets: BudgetView | undefined): void {
    this.options.budgets = budgets;
  }

  get budgets(): BudgetView | undefined {
    return this.options.budgets;
  }

  busy(agentId: string): boolean {
    return this.locks.busy(agentId);
  }

  /** Runs one tick of an agent, after any tick of it already running. */
  tick(agentId: string, cause: TickCause, path = '/ctl'): Promise<TickReport> {
    if (this.closing) return Promise.reject(new FsError('EAGAIN', path, 'server is shutting down'));
    return this.locks.run(agentId, () => this.runTick(agentId, cause, path));
  }

  /** Stops accepting ticks and waits for running ones. */
  async close(): Promise<void> {
    this.closing = true;
    await this.locks.idle();
  }

  private causeTrigger(cause: TickCause, now: number): Trigger | undefined {
    switch (cause.type) {
      case 'message':
      case 'init':
        return undefined;
      case 'manual':
      case 'ctl':
        return cause.reason === undefined
          ? { type: cause.type, invoked_by: cause.invoked_by }
          : { type: cause.type, invoked_by: cause.invoked_by, reason: cause.reason };
      case 'alarm':
        return { type: 'alarm', scheduled_at: cause.scheduled_at, fired_at: now };
      case 'schedule':
        return { type: 'schedule', interval_ms: cause.interval_ms, scheduled_at: cause.scheduled_at, fired_at: now };
    }
  }

  private async runTick(agentId: string, cause: TickCause, path: string): Promise<TickReport> {
    const row = this.store.getAgent(agentId);
    if (!row) throw new FsError('ENOENT', path, `no agent '${agentId}'`);
    if (row.state === 'terminated') throw new FsError('EPERM', path, `agent '${agentId}' is stopped; write 'start' to its ctl first`);
    const agent = parseAgent(row);
    const now = Date.now();
    const tick = row.tick_count + row.ticks_failed + 1;
    const report: TickReport = { agent: agentId, tick, ok: true, cause: cause.type, duration_ms: 0, delivered: [], duplicates: [], outbox: [], deadlettered: [] };

    const batch = this.store.inboxHead(agentId, row.consecutive_failures > 0 ? 1 : agent.limits.batch_size);
    const triggers: Trigger[] = [];
    if (row.state === 'creating') triggers.push({ type: 'init' });
    const own = this.causeTrigger(cause, now);
    if (own) triggers.push(own);
    const fresh: { row: QueuedRow; env: Envelope }[] = [];
    const dups: QueuedRow[] = [];
    for (const q of batch) {
      if (this.store.seen(agentId, q.env_id)) {
        dups.push(q);
        continue;
      }
      const env = JSON.parse(q.body) as Envelope;
      fresh.push({ row: q, env });
      triggers.push({ type: 'message', envelope_id: env.id, from: env.from, source: env.source, attempt: q.attempts + 1, envelope: env });
    }
    if (triggers.length === 0) {
      if (dups.length) this.commitDuplicatesOnly(agent, dups, now);
      report.tick = 0;
      report.skipped = true;
      report.duplicates = dups.map((d) => d.env_id);
      return report;
    }

    const program = this.programs.get(agent.program.type);
    const startTrace: TraceData[] = [
      { type: 'tick_start', tick, cause: cause.type, triggers: triggers.length },
      ...triggers.map((t) => ({ type: 'trigger', tick, trigger: summarize(t) })),
    ];
    // The tick's budget window starts now (what the program reserves counts in it). Live programs get
    // their start events committed before they run, so watchers see the tick begin.
    const budgets = this.options.budgets;
    if (budgets || program?.live) {
      const live = !!program?.live;
      await this.commits.run(
        () => {
          budgets?.resetTick(agentId);
          if (live) this.traceAll(agentId, startTrace);
        },
        { savepoint: false },
      );
      if (live) startTrace.length = 0;
    }
    const saved = this.store.getState(agentId);
    const started = performance.now();
    const abort = new AbortController();
    try {
      if (!program) throw new FsError('EINVAL', '/config', `unknown program type '${agent.program.type}'`);
      const raw = await program.run({
        agentId,
        tick,
        cause,
        triggers,
        state: saved ? JSON.parse(saved.data) : undefined,
        config: configOf(agent),
        deadline: now + agent.limits.tick_timeout_ms,
        signal: abort.signal,
        execEnv: () => this.options.execEnv(agentId),
        workDir: () => ensureWorkDir(this.options.home, agentId),
      });
      const result = normalizeResult(raw, Date.now(), 'program');
      report.duration_ms = Math.round(performance.now() - started);
      await this.commitSuccess(agent, { tick, cause, triggers, fresh, dups, result, startTrace, report, now });
    } catch (err) {
      report.duration_ms = Math.round(performance.now() - started);
      this.commitFailure(agent, { tick, fresh, startTrace, report, err });
    }
    this.onTick(report);
    return report;
  }

  private traceAll(agentId: string, entries: readonly TraceData[]): void {
    for (const e of entries) this.tracer.emit(agentId, e);
  }

  private commitDuplicatesOnly(agent: AgentRecord, dups: QueuedRow[], now: number): void {
    this.storage.tx(() => {
      const removed = this.store.inboxRemove(agent.id, dups.map((d) => d.seq));
      const version = this.store.inboxChanged(agent.id, removed, now);
      this.store.addCounters(agent.id, { duplicates: removed });
      this.storage.events.emit(agent.id, '/inbox', 'modified', { version });
      for (const d of dups) this.tracer.emit(agent.id, { type: 'duplicate', envelope_id: d.env_id });
    });
  }

  private async commitSuccess(
    agent: AgentRecord,
    t: {
      tick: number;
      cause: TickCause;
      triggers: Trigger[];
      fresh: { row: QueuedRow; env: Envelope }[];
      dups: QueuedRow[];
      result: NormalizedResult;
      startTrace: TraceData[];
      report: TickReport;
      now: number;
    },
  ): Promise<void> {
    const { result, report } = t;
    const id = agent.id;
    const stateJson = result.state === undefined ? undefined : JSON.stringify(result.state);
    if (stateJson !== undefined && stateJson.length > agent.limits.state_max_bytes) {
      throw new FsError('EFBIG', 'program', `state of ${stateJson.length} bytes is over limits.state_max_bytes (${agent.limits.state_max_bytes})`);
    }
    const finished = Date.now();
    const envelopes: Envelope[] = [];
    const outbox: { id: string; body: string; created_at: number }[] = (result.outbox ?? []).map((d) => {
      const env: Envelope = { id: d.id ?? newId(finished), source: 'agent', from: id, created_at: finished, payload: d.payload ?? null };
      if (d.to !== undefined) env.to = d.to;
      if (d.metadata) env.metadata = d.metadata;
      envelopes.push(env);
      return { id: env.id, body: JSON.stringify(env), created_at: finished };
    });
    let routed: (() => void) | undefined;
    // Ticks of different agents finishing together share one transaction (each in its own savepoint).
    // Its only expected failure (the agent is gone) comes before any write: no savepoint needed.
    await this.commits.run(() => {
      const current = this.store.tickMeta(id);
      if (!current) throw new FsError('ENOENT', '/ctl', `agent '${id}' was deleted during its tick`);
      this.traceAll(id, t.startTrace);
      if (stateJson !== undefined) this.store.putState(id, stateJson);
      for (const [k, v] of Object.entries(result.kv?.set ?? {})) this.store.kvSet(id, k, JSON.stringify(v));
      for (const k of result.kv?.delete ?? []) this.store.kvDelete(id, k);

      const consumed = [...t.fresh.map((f) => f.row), ...t.dups];
      if (consumed.length) {
        this.store.markSeen(id, consumed.map((q) => q.env_id), agent.limits.seen_max);
        const removed = this.store.inboxRemove(id, consumed.map((q) => q.seq));
        const version = this.store.inboxChanged(id, removed, t.now);
        this.storage.events.emit(id, '/inbox', 'modified', { version });
      }
      for (const d of t.dups) this.tracer.emit(id, { type: 'duplicate', tick: t.tick, envelope_id: d.env_id });

      if (outbox.length) {
        this.store.outboxAppend(id, outbox, agent.limits.outbox_max);
        for (const o of outbox) this.storage.events.emit(id, `/outbox/${o.id}.json`, 'created', { version: 1 });
        routed = this.options.routes?.dispatch(id, envelopes);
      }

      let state: LifecycleState = current.state;
      if (state === 'creating' || state === 'failed') state = 'active';
      if (result.hibernate && state === 'active') state = 'dormant';
      let nextAlarm: number | null = current.next_alarm;
      if (result.next_alarm !== undefined) nextAlarm = result.next_alarm;
      else if (t.cause.type === 'alarm' && current.next_alarm === t.cause.scheduled_at) nextAlarm = null;

      this.store.updateAgent(
        id,
        {
          state,
          last_tick_at: finished,
          last_tick_cause: t.cause.type,
          last_tick_ms: report.duration_ms,
          last_error: null,
          consecutive_failures: 0,
          retry_at: null,
          next_alarm: nextAlarm,
          updated_at: state !== current.state ? finished : current.updated_at,
        },
        { tick_count: 1, tick_ms_total: report.duration_ms, delivered: t.fresh.length, duplicates: t.dups.length },
      );
      if (state !== current.state) {
        this.storage.events.emit(id, '/status', 'modified');
        this.tracer.emit(id, { type: 'state_change', tick: t.tick, from: current.state, to: state, reason: result.hibernate ? 'hibernate' : 'tick' });
      }
      for (const extra of result.trace ?? []) this.tracer.emit(id, programTrace(extra, t.tick));
      const end: TraceData = {
        type: 'tick_end',
        tick: t.tick,
        duration_ms: report.duration_ms,
        delivered: t.fresh.length,
        duplicates: t.dups.length,
        outbox: outbox.length,
      };
      if (nextAlarm !== null) end['next_alarm'] = nextAlarm;
      this.tracer.emit(id, end);
      report.state = state;
    }, { savepoint: false });
    routed?.();
    report.delivered = t.fresh.map((f) => f.env.id);
    report.duplicates = t.dups.map((d) => d.env_id);
    report.outbox = outbox.map((o) => o.id);
  }

  private commitFailure(
    agent: AgentRecord,
    t: { tick: number; fresh: { row: QueuedRow; env: Envelope }[]; startTrace: TraceData[]; report: TickReport; err: unknown },
  ): void {
    const id = agent.id;
    const fsErr = toFsError(t.err, 'program');
    const message = errorText(fsErr);
    const { report } = t;
    report.ok = false;
    report.error = { code: fsErr.code, message };
    this.storage.tx(() => {
      const current = this.store.tickMeta(id);
      if (!current) return;
      const now = Date.now();
      this.traceAll(id, t.startTrace);
      const policy = agent.inboxPolicy;
      const dead: QueuedRow[] = [];
      for (const f of t.fresh) {
        const attempts = this.store.inboxFail(id, f.row.seq, message);
        if (attempts >= agent.limits.max_attempts) dead.push({ ...f.row, attempts });
      }
      if (dead.length) {
        const removed = this.store.inboxRemove(id, dead.map((d) => d.seq));
        const version = this.store.inboxChanged(id, removed, now);
        this.storage.events.emit(id, '/inbox', 'modified', { version });
        for (const d of dead) this.queues.deadletter(id, d.env_id, d.body, 'failed', message, d.attempts, policy, now);
      }
      const failures = current.consecutive_failures + 1;
      let state: LifecycleState = current.state;
      if (failures >= agent.limits.max_failures && (state === 'active' || state === 'creating' || state === 'dormant')) state = 'failed';
      const backoff = Math.min(MAX_BACKOFF_MS, agent.limits.retry_backoff_ms * 2 ** Math.min(20, failures - 1));
      const retryAt = now + backoff;
      // An alarm or interval run that is due waits for the retry time too (it is retried then).
      const fields: Parameters<RuntimeStore['updateAgent']>[1] = {
        state,
        last_tick_at: now,
        last_tick_cause: report.cause,
        last_tick_ms: report.duration_ms,
        last_error: message,
        retry_at: retryAt,
      };
      if (current.next_alarm !== null && current.next_alarm < retryAt) fields.next_alarm = retryAt;
      if (current.next_run !== null && current.next_run < retryAt) fields.next_run = retryAt;
      this.store.updateAgent(id, fields, { ticks_failed: 1, consecutive_failures: 1, tick_ms_total: report.duration_ms });
      this.tracer.emit(id, {
        type: 'error',
        tick: t.tick,
        code: fsErr.code,
        error: message,
        envelopes: t.fresh.map((f) => f.env.id),
        deadlettered: dead.map((d) => d.env_id),
        retry_in_ms: backoff,
      });
      if (state !== current.state) {
        this.storage.events.emit(id, '/status', 'modified');
        this.tracer.emit(id, { type: 'state_change', tick: t.tick, from: current.state, to: state, reason: `${failures} consecutive failed ticks` });
      }
      report.state = state;
      report.deadlettered = dead.map((d) => d.env_id);
    });
  }
}

/** A trigger as traced: message triggers without their payload. */
function summarize(t: Trigger): Record<string, unknown> {
  if (t.type !== 'message') return t as unknown as Record<string, unknown>;
  return { type: 'message', envelope_id: t.envelope_id, from: t.from, source: t.source, attempt: t.attempt };
}

function programTrace(extra: unknown, tick: number): TraceData {
  if (extra && typeof extra === 'object' && !Array.isArray(extra)) {
    const obj = extra as Record<string, unknown>;
    return { ...obj, type: typeof obj['type'] === 'string' ? obj['type'] : 'program', tick };
  }
  return { type: 'program', tick, data: extra };
}
