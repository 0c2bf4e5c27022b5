/**
 * The container engine: one per server, shared by every agent's /containers. It submits sessions
 * (policy, idempotency, budget reservation and the session record in one transaction), provisions their
 * containers, runs their commands and execs with time limits that kill whole process trees, streams
 * their output into the event log (stdout and stderr apart, capped), settles their budget when they end,
 * and records every outcome durably.
 *
 * A restart finds what a previous run left: interactive sessions whose container still runs are adopted
 * (their running execs, whose output can no longer be followed, are killed and marked failed); every
 * other unfinished session is marked failed and its container removed; containers of this server
 * without a live session (a crash between create and record) are removed.
 */
import { randomBytes } from 'node:crypto';
import { FsError, toFsError } from '../../fs/errors.js';
import type { EventChannel } from '../../fs/events.js';
import { BudgetLedger, type BudgetScope } from '../../runtime/budget-ledger.js';
import { IdempotencyJournal } from '../../runtime/idempotency-journal.js';
import type { Storage } from '../../runtime/storage/index.js';
import { emitTrace } from '../../runtime/trace.js';
import { createHash } from 'node:crypto';
import { PolicyStore, imageRefusal, type ContainerPolicy, type PolicyInput } from './policy.js';
import { DockerProvider, normalizeImage } from './providers/docker.js';
import type { CgroupUsage, ContainerProvider, ProviderHealth, RunningExec, SessionSpec } from './providers/types.js';
import { argvOf, commandLine, parseExecRequest, parseSessionRequest, type ExecRequest, type SessionRequest } from './request.js';
import { SessionStore, newSessionId } from './store.js';
import {
  EXEC_TERMINAL,
  SESSION_TERMINAL,
  type ErrorInfo,
  type ExecRecord,
  type ExecResult,
  type ExecStatus,
  type OutputChunk,
  type SessionRecord,
  type SessionResult,
  type SessionStatus,
  type SessionUsage,
} from './types.js';

export const CONTAINERS_SERVICE = 'containers';
/** The budget level of /containers' own caps (policy max_cost_per_tick/day). */
const SERVICE_LEVEL = `service:${CONTAINERS_SERVICE}`;
export const DEFAULT_SESSION_RETENTION_MS = 7 * 24 * 3600 * 1000;
const RESULT_RETRY_AFTER_MS = 500;
/** Output is coalesced into one event per stream run for this long (fewer events for chatty commands). */
const OUTPUT_FLUSH_MS = 10;
const OUTPUT_FLUSH_BYTES = 64 * 1024;
/** How long a helper call (usage, signals) may take before we stop waiting for it. */
const HELPER_TIMEOUT_MS = 5000;

export interface TraceEvent {
  type: string;
  [field: string]: unknown;
}
export type TraceSink = (agentId: string, event: TraceEvent) => void;

/** The default sink: a data event at /logs/trace in the agent's scope (what the logs service streams). */
export function eventLogTrace(storage: Storage): TraceSink {
  return (agentId, event) => {
    emitTrace(storage.events, agentId, { ...event, source: CONTAINERS_SERVICE, agent_id: agentId, at: Date.now() });
  };
}

export interface ContainerEngineOptions {
  storage: Storage;
  ledger?: BudgetLedger;
  journal?: IdempotencyJournal;
  /** Default: one DockerProvider on the local engine. */
  providers?: ContainerProvider[];
  /** The server's default policy. */
  policy?: PolicyInput;
  trace?: TraceSink;
  /** Where /containers is mounted in an agent's namespace (its events are recorded there). */
  mountPath?: string;
  /** Finished sessions are kept this long (default 7 days). */
  retentionMs?: number;
  now?: () => number;
}

export interface SubmitAnswer {
  session_id: string;
  status: SessionStatus;
  kind: SessionRequest['kind'];
  image: string;
  provider: string;
  /** True when the idempotency key matched an earlier request: this is that request's session. */
  replayed?: true;
  paths: { status: string; result: string; output: string; usage: string; ctl: string; exec: string; files: string };
}

export interface ExecAnswer {
  exec_id: string;
  session_id: string;
  status: ExecStatus;
  paths: { status: string; result: string; output: string; stdout: string; stderr: string; stdin: string; ctl: string };
}

export interface RecoveryReport {
  adopted: string[];
  failed: string[];
  orphansRemoved: number;
}

/** Bytes of one stream of one exec: what is kept (up to the cap) and how much came. */
class Capture {
  private readonly parts: Uint8Array[] = [];
  kept = 0;
  total = 0;
  readonly decoder = new TextDecoder('utf-8');

  constructor(readonly cap: number) {}

  get truncated(): boolean {
    return this.total > this.kept;
  }

  /** The part of `chunk` within the cap (empty once the cap is reached). */
  take(chunk: Uint8Array): Uint8Array {
    this.total += chunk.length;
    const room = Math.max(0, this.cap - this.kept);
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    if (part.length > 0) {
      this.parts.push(part.slice());
      this.kept += part.length;
    }
    return part;
  }

  text(): string {
    return new TextDecoder('utf-8').decode(Buffer.concat(this.parts));
  }
}

interface Segment {
  stream: 'stdout' | 'stderr';
  text: string;
  truncated?: true;
}

interface LiveExec {
  id: string;
  timeoutSecs: number;
  stdout: Capture;
  stderr: Capture;
  pending: Segment[];
  pendingBytes: number;
  flushTimer: NodeJS.Timeout | undefined;
  running: RunningExec | undefined;
  started: Promise<RunningExec | undefined>;
  resolveStarted: (r: RunningExec | undefined) => void;
  timer: NodeJS.Timeout | undefined;
  killedBy: 'ctl' | 'timeout' | undefined;
  /** Why its tree could not be killed at its time limit (its container was killed instead). */
  killFailed: string | undefined;
  closed: boolean;
  done: Promise<ExecRecord>;
}

interface LiveSession {
  id: string;
  agentId: string;
  provider: ContainerProvider;
  abort: AbortController;
  containerId: string | undefined;
  /** The container id once it runs; undefined when it never will. */
  ready: Promise<string | undefined>;
  resolveReady: (id: string | undefined) => void;
  execs: Map<string, LiveExec>;
  lifetimeTimer: NodeJS.Timeout | undefined;
  ending: Promise<void> | undefined;
  endingStatus: SessionStatus | undefined;
  knownOomKills: number;
  /** Settles when the request's commands have run (or will never run). */
  commandsDone: Promise<void>;
  resolveCommandsDone: () => void;
  done: Promise<void>;
  resolveDone: () => void;
  /** The server shut down and left it running: nothing more is recorded for it. */
  detached: boolean;
}

interface Outcome {
  status: SessionStatus;
  error?: ErrorInfo | null;
  stopReason?: 'stop' | 'kill';
  exitCode?: number | null;
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new FsError('ETIMEDOUT', '/', `${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function errorInfo(err: unknown): ErrorInfo {
  const e = toFsError(err, '/');
  return { code: e.code, message: e.detail };
}

function hashRequest(req: SessionRequest): string {
  const { idempotency_key: _k, wait: _w, ...rest } = req;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 32);
}

export class ContainerEngine {
  readonly storage: Storage;
  readonly ledger: BudgetLedger;
  readonly journal: IdempotencyJournal;
  readonly policies: PolicyStore;
  readonly sessions: SessionStore;
  readonly mountPath: string;
  /** Labels this server's containers with it, so another server on the same engine never touches them. */
  readonly instanceId: string;
  private readonly providerList: ContainerProvider[];
  private readonly trace: TraceSink;
  private readonly now: () => number;
  private readonly retentionMs: number;
  private readonly live = new Map<string, LiveSession>();
  private readonly channels = new Map<string, EventChannel>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly execListeners = new Set<(sid: string) => void>();
  private readonly capsApplied = new Map<string, ContainerPolicy>();
  private readonly immediate: <T>(fn: () => T) => T;
  private starting: Promise<RecoveryReport> | undefined;
  private orphanSweepPending = false;
  private finishedSincePrune = 0;
  private closed = false;

  constructor(options: ContainerEngineOptions) {
    this.storage = options.storage;
    this.ledger = options.ledger ?? new BudgetLedger(options.storage);
    this.journal = options.journal ?? new IdempotencyJournal(options.storage);
    this.policies = new PolicyStore(options.storage, options.policy);
    this.sessions = new SessionStore(options.storage);
    this.providerList = options.providers ?? [new DockerProvider()];
    this.trace = options.trace ?? eventLogTrace(options.storage);
    this.mountPath = options.mountPath ?? '/containers';
    this.retentionMs = options.retentionMs ?? DEFAULT_SESSION_RETENTION_MS;
    this.now = options.now ?? (() => Date.now());
    const db = this.storage.db;
    const runner = db.transaction((fn: () => unknown) => fn());
    this.immediate = <T>(fn: () => T): T =>
      db.inTransaction ? (runner(fn) as T) : (this.storage.events.batch(() => runner.immediate(fn)) as T);
    let instance = this.storage.metaGet('containers.instance');
    if (!instance) {
      instance = randomBytes(8).toString('hex');
      this.storage.metaSet('containers.instance', instance);
    }
    this.instanceId = instance;
  }

  // --- lookups ---

  channel(agentId: string): EventChannel {
    let ch = this.channels.get(agentId);
    if (!ch) {
      ch = this.storage.events.channel(agentId, this.mountPath);
      this.channels.set(agentId, ch);
    }
    return ch;
  }

  providers(): readonly ContainerProvider[] {
    return this.providerList;
  }

  provider(id: string): ContainerProvider | undefined {
    return this.providerList.find((p) => p.id === id);
  }

  policy(agentId: string): ContainerPolicy {
    return this.policies.get(agentId).policy;
  }

  /** Makes the ledger's service:containers limits match the policy caps (once per policy). */
  applyCaps(agentId: string, policy = this.policy(agentId)): void {
    if (this.capsApplied.get(agentId) === policy) return;
    this.capsApplied.set(agentId, policy);
    const current = this.ledger.limits(agentId, SERVICE_LEVEL);
    if (current.tick !== policy.max_cost_per_tick || current.day !== policy.max_cost_per_day) {
      this.ledger.setLimits(agentId, { tick: policy.max_cost_per_tick, day: policy.max_cost_per_day }, SERVICE_LEVEL);
    }
  }

  setPolicy(agentId: string, value: unknown, path = '/policy'): ContainerPolicy {
    return this.immediate(() => {
      const policy = this.policies.set(agentId, value, path, this.now());
      this.applyCaps(agentId, policy);
      this.channel(agentId).emit('/policy', 'modified', { version: this.policies.get(agentId).version });
      return policy;
    });
  }

  /** A session of this agent, or undefined (another agent's sessions do not exist for it). */
  session(agentId: string, sid: string): SessionRecord | undefined {
    const rec = this.sessions.get(sid);
    return rec && rec.agentId === agentId ? rec : undefined;
  }

  needSession(agentId: string, sid: string, path: string): SessionRecord {
    const rec = this.session(agentId, sid);
    if (!rec) throw new FsError('ENOENT', path, `no container session ${sid}`);
    return rec;
  }

  exec(agentId: string, sid: string, eid: string): ExecRecord | undefined {
    return this.session(agentId, sid) ? this.sessions.getExec(sid, eid) : undefined;
  }

  needExec(agentId: string, sid: string, eid: string, path: string): ExecRecord {
    const rec = this.exec(agentId, sid, eid);
    if (!rec) throw new FsError('ENOENT', path, `no exec ${eid} in container session ${sid}`);
    return rec;
  }

  /** The running container of a session, waiting while it is provisioned; ENOENT once it has ended. */
  async containerOf(agentId: string, sid: string, path: string): Promise<{ containerId: string; provider: ContainerProvider; record: SessionRecord }> {
    await this.start();
    const record = this.needSession(agentId, sid, path);
    const live = this.live.get(sid);
    const containerId = live ? await live.ready : undefined;
    if (!live || !containerId || live.endingStatus) {
      throw new FsError('ENOENT', path, `container session ${sid} is ${live?.endingStatus ?? record.status}: its files went with its container`);
    }
    return { containerId, provider: live.provider, record };
  }

  /** Called when a command starts or ends in a session (its files may have changed). */
  onExecActivity(listener: (sid: string) => void): () => void {
    this.execListeners.add(listener);
    return () => this.execListeners.delete(listener);
  }

  private execActivity(sid: string): void {
    for (const l of this.execListeners) l(sid);
  }

  paths(sid: string): SubmitAnswer['paths'] {
    const base = `${this.mountPath}/sessions/${sid}`;
    return {
      status: `${base}/status`,
      result: `${base}/result`,
      output: `${base}/output`,
      usage: `${base}/usage`,
      ctl: `${base}/ctl`,
      exec: `${base}/exec`,
      files: `${base}/files`,
    };
  }

  execPaths(sid: string, eid: string): ExecAnswer['paths'] {
    const base = `${this.mountPath}/sessions/${sid}/exec/${eid}`;
    return {
      status: `${base}/status`,
      result: `${base}/result`,
      output: `${base}/output`,
      stdout: `${base}/stdout`,
      stderr: `${base}/stderr`,
      stdin: `${base}/stdin`,
      ctl: `${base}/ctl`,
    };
  }

  // --- submit ---

  /**
   * Submits a session. Everything that can be refused is refused before anything is reserved: bad JSON
   * or fields and limits over policy (EINVAL), refused images (EACCES), an unavailable engine
   * (EREMOTEIO), too many sessions (EAGAIN), no budget (EDQUOT).
   */
  async submit(agentId: string, data: Uint8Array, path = '/new'): Promise<SubmitAnswer | SessionResult> {
    if (this.closed) throw new FsError('EAGAIN', path, 'the server is shutting down', { retryAfterMs: 1000 });
    await this.start();
    const policy = this.policy(agentId);
    const req = parseSessionRequest(data, policy, path);
    const provider = this.pickProvider(req.provider, path);
    const hash = hashRequest(req);
    const journalKey = req.idempotency_key === undefined ? undefined : `${agentId}:${CONTAINERS_SERVICE}:${req.idempotency_key}`;
    // A repeat answers with its session even when the engine is down or the agent is at its limits.
    const earlier = journalKey === undefined ? undefined : this.journal.get(journalKey);
    if (earlier !== undefined) return this.replay(req, JSON.parse(earlier) as { session_id: string; hash: string }, hash, path);
    const refusal = imageRefusal(policy, req.image, normalizeImage(req.image));
    if (refusal) throw new FsError('EACCES', path, `${refusal} (see ${this.mountPath}/policy)`);
    await this.requireAvailable(provider, path);
    if (!(await provider.hasImage(req.image))) {
      const images = await provider.images().catch(() => []);
      throw new FsError(
        'EINVAL',
        path,
        `field 'image': ${req.image} is not in the engine (agent9 never pulls from a registry); present: ${images.join(', ') || 'none'}`,
      );
    }

    const rate = Math.ceil(policy.price_per_cpu_second * req.limits.cpu_cores);
    const cap = req.max_cost ?? policy.default_max_cost ?? undefined;
    let lifetime = req.limits.time_secs;
    let reserve = rate * lifetime;
    if (cap !== undefined) {
      reserve = cap;
      if (rate > 0) {
        const affordable = Math.floor(cap / rate);
        if (affordable < 1) {
          throw new FsError('EINVAL', path, `a max cost of ${cap} micro-USD buys less than one second at ${rate} micro-USD per second`);
        }
        lifetime = Math.min(lifetime, affordable);
      }
    }
    if (policy.max_cost_per_session !== null && reserve > policy.max_cost_per_session) {
      throw new FsError(
        'EDQUOT',
        path,
        `this session would reserve ${reserve} micro-USD, over the policy's max_cost_per_session (${policy.max_cost_per_session}); ask for less time or cores, or set max_cost`,
      );
    }
    this.applyCaps(agentId, policy);
    const request: SessionRequest = { ...req, limits: { ...req.limits, time_secs: lifetime, exec_timeout_secs: Math.min(req.limits.exec_timeout_secs, lifetime) } };

    const create = (): string => {
      if (this.sessions.activeCount(agentId) >= policy.max_concurrent) {
        throw new FsError('EAGAIN', path, `${policy.max_concurrent} sessions are already running (policy max_concurrent); stop one or wait`, {
          retryAfterMs: 1000,
        });
      }
      const now = this.now();
      const id = newSessionId();
      const scope: BudgetScope = { service: CONTAINERS_SERVICE, ...req.budget_scope };
      const reservation = this.ledger.reserve(agentId, reserve, scope, `containers session ${id}`, path);
      const rec: SessionRecord = {
        id,
        agentId,
        provider: provider.id,
        request,
        status: 'provisioning',
        error: null,
        stopReason: null,
        containerId: null,
        exitCode: null,
        createdAt: now,
        startedAt: null,
        finishedAt: null,
        deadlineAt: null,
        reservationId: reservation.id,
        reserved: reserve,
        rate,
        cost: null,
        usage: null,
        streamFrom: this.storage.eventStore.lastId(),
        nextExec: 1,
        version: 1,
        updatedAt: now,
      };
      this.sessions.insert(rec);
      this.channel(agentId).emit(`/sessions/${id}`, 'created', { version: 1 });
      this.trace(agentId, {
        type: 'containers_session_start',
        session_id: id,
        image: request.image,
        kind: request.kind,
        reserved: reserve,
        ...(req.budget_scope ? { budget_scope: req.budget_scope } : {}),
      });
      return JSON.stringify({ session_id: id, hash });
    };

    if (journalKey !== undefined) {
      // Two racing requests with one key: the journal lets exactly one of them create.
      const entry = this.journal.remember(journalKey, create);
      const recorded = JSON.parse(entry.value) as { session_id: string; hash: string };
      if (!entry.created) return this.replay(req, recorded, hash, path);
      this.launch(this.sessions.get(recorded.session_id)!);
      return this.answer(recorded.session_id, req.wait, false, path);
    }
    const sid = (JSON.parse(this.immediate(create)) as { session_id: string }).session_id;
    this.launch(this.sessions.get(sid)!);
    return this.answer(sid, req.wait, false, path);
  }

  private replay(req: SessionRequest, recorded: { session_id: string; hash: string }, hash: string, path: string): Promise<SubmitAnswer | SessionResult> {
    if (recorded.hash !== hash) {
      throw new FsError('EEXIST', path, `idempotency key '${req.idempotency_key}' was used for a different request (session ${recorded.session_id})`);
    }
    return this.answer(recorded.session_id, req.wait, true, path);
  }

  /** What `new` answers: the session and its paths, or with `wait` its result once its commands ran. */
  private async answer(sid: string, wait: boolean, replayed: boolean, path: string): Promise<SubmitAnswer | SessionResult> {
    if (wait) {
      // Ephemeral: until it ends, then its result. Interactive: until its commands ran, then its status.
      const live = this.live.get(sid);
      await (this.sessions.get(sid)?.request.kind === 'ephemeral' ? live?.done : live?.commandsDone);
      const rec = this.sessions.get(sid);
      if (rec && SESSION_TERMINAL.has(rec.status)) return this.resultOf(rec, path);
    }
    const rec = this.sessions.get(sid);
    if (!rec) throw new FsError('ENOENT', path, `session ${sid} is no longer kept`);
    return {
      session_id: sid,
      status: rec.status,
      kind: rec.request.kind,
      image: rec.request.image,
      provider: rec.provider,
      ...(replayed ? { replayed: true as const } : {}),
      paths: this.paths(sid),
    };
  }

  private pickProvider(id: string | undefined, path: string): ContainerProvider {
    if (id !== undefined) {
      const p = this.provider(id);
      if (!p) throw new FsError('EINVAL', path, `unknown provider '${id}' (providers: ${this.providerList.map((x) => x.id).join(', ')})`);
      return p;
    }
    const first = this.providerList[0];
    if (!first) throw new FsError('EREMOTEIO', path, 'no container provider is configured');
    return first;
  }

  private async requireAvailable(provider: ContainerProvider, path: string): Promise<ProviderHealth> {
    const health = await provider.health();
    if (health.status === 'unavailable') {
      throw new FsError('EREMOTEIO', path, `provider ${provider.id} is unavailable: ${health.reason ?? 'unknown reason'}`);
    }
    if (this.orphanSweepPending) {
      this.orphanSweepPending = false;
      await this.sweepOrphans().catch(() => (this.orphanSweepPending = true));
    }
    return health;
  }

  /** The health of a provider (for providers/<id>/health); an engine coming back gets its orphans swept. */
  async health(provider: ContainerProvider): Promise<ProviderHealth> {
    const h = await provider.health();
    if (h.status === 'available' && this.orphanSweepPending) {
      this.orphanSweepPending = false;
      await this.sweepOrphans().catch(() => (this.orphanSweepPending = true));
    }
    return h;
  }

  // --- session lifecycle ---

  private makeLive(rec: SessionRecord, provider: ContainerProvider): LiveSession {
    const ready = deferred<string | undefined>();
    const done = deferred<void>();
    const commandsDone = deferred<void>();
    const live: LiveSession = {
      id: rec.id,
      agentId: rec.agentId,
      provider,
      abort: new AbortController(),
      containerId: rec.containerId ?? undefined,
      ready: ready.promise,
      resolveReady: ready.resolve,
      execs: new Map(),
      lifetimeTimer: undefined,
      ending: undefined,
      endingStatus: undefined,
      knownOomKills: 0,
      commandsDone: commandsDone.promise,
      resolveCommandsDone: commandsDone.resolve,
      done: done.promise,
      resolveDone: done.resolve,
      detached: false,
    };
    void done.promise.then(() => commandsDone.resolve());
    this.live.set(rec.id, live);
    return live;
  }

  private launch(rec: SessionRecord): void {
    const live = this.makeLive(rec, this.provider(rec.provider)!);
    const task = this.runSession(live, rec).catch((err: unknown) => this.finish(live, { status: 'failed', error: errorInfo(err) }));
    this.track(task);
  }

  private specOf(rec: SessionRecord): SessionSpec {
    const r = rec.request;
    return {
      sessionId: rec.id,
      image: r.image,
      env: { ...r.env, AGENT9_SESSION: rec.id },
      workdir: r.workdir,
      ...(r.user !== undefined ? { user: r.user } : {}),
      memoryMb: r.limits.memory_mb,
      cpuCores: r.limits.cpu_cores,
      pids: r.limits.pids,
      diskMb: r.limits.disk_mb,
      network: r.limits.network,
      networkMode: this.policy(rec.agentId).network_mode,
      labels: {
        'agent9.instance': this.instanceId,
        'agent9.session': rec.id,
        'agent9.agent': rec.agentId,
      },
    };
  }

  private async runSession(live: LiveSession, rec: SessionRecord): Promise<void> {
    let containerId: string;
    try {
      ({ containerId } = await live.provider.createSession(this.specOf(rec), live.abort.signal));
    } catch (err) {
      live.resolveReady(undefined);
      if (!live.ending) await this.finish(live, { status: 'failed', error: errorInfo(err) });
      return;
    }
    if (live.ending || live.abort.signal.aborted) {
      // Stopped while provisioning: finish() found no container to remove.
      live.resolveReady(undefined);
      this.track(live.provider.remove(containerId));
      return;
    }
    live.containerId = containerId;
    const now = this.now();
    const lifetimeMs = rec.request.limits.time_secs * 1000;
    this.immediate(() => {
      const next = this.sessions.update(live.id, { status: 'running', containerId, startedAt: now, deadlineAt: now + lifetimeMs }, now);
      this.channel(live.agentId).emit(`/sessions/${live.id}/status`, 'modified', { version: next.version });
    });
    this.armLifetime(live, lifetimeMs);
    live.resolveReady(containerId);

    let last: ExecRecord | undefined;
    for (const command of rec.request.commands) {
      if (live.ending) return;
      const lx = this.startExec(live, {
        command,
        stdin: false,
        timeout_secs: rec.request.limits.exec_timeout_secs,
        env: {},
        workdir: undefined,
        user: undefined,
        wait: false,
      }, 'command');
      last = await lx.done;
      if (live.ending) return;
      if (last.status !== 'complete' || last.exitCode !== 0) break;
    }
    live.resolveCommandsDone();
    if (rec.request.kind !== 'ephemeral') return;
    if (last?.status === 'failed') {
      await this.finish(live, { status: 'failed', error: { code: 'EIO', message: `command ${last.id} could not run: ${last.error ?? 'unknown error'}` } });
      return;
    }
    const error: ErrorInfo | null =
      last && last.status !== 'complete'
        ? { code: last.status === 'timeout' ? 'ETIMEDOUT' : 'EIO', message: `command ${last.id} ${last.status}: ${last.error ?? ''}`.trim() }
        : last?.oomKilled
          ? { code: 'EIO', message: `command ${last.id} ${last.error ?? 'ran out of memory'}` }
          : null;
    await this.finish(live, { status: 'complete', exitCode: last?.exitCode ?? null, error });
  }

  private armLifetime(live: LiveSession, ms: number): void {
    const rec = this.sessions.get(live.id)!;
    live.lifetimeTimer = setTimeout(() => {
      void this.finish(live, {
        status: 'expired',
        error: { code: 'ETIMEDOUT', message: `the session's lifetime of ${rec.request.limits.time_secs} s ran out` },
        stopReason: 'kill',
      });
    }, Math.max(0, ms));
    live.lifetimeTimer.unref();
  }

  /**
   * Ends a session once: reads its resource use, ends its container (and so every exec), settles its
   * budget (the time it ran, at most what was reserved; nothing when it never started) and records the
   * outcome with its events; then removes the container.
   */
  private finish(live: LiveSession, outcome: Outcome): Promise<void> {
    if (live.ending) return live.ending;
    live.endingStatus = outcome.status;
    live.ending = (async () => {
      clearTimeout(live.lifetimeTimer);
      live.abort.abort();
      const cid = live.containerId;
      let usage: CgroupUsage | null = null;
      if (cid) {
        // A container that must go (a failure, a kill) is not waited on for long: its usage is a nicety.
        const usageWait = outcome.status === 'complete' || outcome.stopReason === 'stop' ? HELPER_TIMEOUT_MS : 1000;
        usage = await withTimeout(live.provider.usage(cid), usageWait, 'reading usage').catch(() => null);
        if (outcome.status !== 'complete' || live.execs.size > 0) {
          const grace = this.policy(live.agentId).stop_grace_secs;
          const end = outcome.stopReason === 'stop' ? live.provider.stop(cid, grace) : live.provider.kill(cid);
          await end.catch(() => undefined);
        }
        const pending = [...live.execs.values()].map((lx) => lx.done);
        await withTimeout(Promise.allSettled(pending), HELPER_TIMEOUT_MS, 'ending execs').catch(() => undefined);
      }
      live.resolveReady(undefined);
      try {
        this.settle(live, outcome, usage);
      } finally {
        // Whatever happened to the record, the session is over for everyone waiting on it.
        this.live.delete(live.id);
        live.resolveDone();
        if (cid) this.track(live.provider.remove(cid));
      }
      if (++this.finishedSincePrune >= 100) {
        this.finishedSincePrune = 0;
        this.prune();
      }
    })();
    return live.ending;
  }

  /** Records a session's end: its unfinished execs, its cost, its status and the end of its output. */
  private settle(live: LiveSession, outcome: Outcome, usage: CgroupUsage | null): void {
    const now = this.now();
    this.immediate(() => {
      const rec = this.sessions.get(live.id)!;
      for (const lx of live.execs.values()) {
        this.closeExec(live, lx, { status: 'killed', killed: true, error: `the session ${outcome.status}` });
      }
      for (const ex of this.sessions.activeExecs(live.id)) {
        const next = this.sessions.updateExec(live.id, ex.id, { status: 'failed', error: `the session ${outcome.status} before it finished`, finishedAt: now }, now);
        this.emitExecEnd(live.agentId, next);
      }
      const ran = rec.startedAt !== null ? now - rec.startedAt : 0;
      const cost = rec.startedAt !== null ? Math.min(rec.reserved, Math.ceil((ran * rec.rate) / 1000)) : 0;
      if (rec.reservationId !== null) {
        if (rec.startedAt !== null) this.ledger.reconcile(rec.reservationId, cost);
        else this.ledger.release(rec.reservationId);
      }
      const sessionUsage: SessionUsage = {
        cpu_time_ms: usage?.cpu_time_ms ?? null,
        peak_memory_bytes: usage?.peak_memory_bytes ?? null,
        oom_kills: usage?.oom_kills ?? null,
        duration_ms: ran,
      };
      const next = this.sessions.update(
        live.id,
        {
          status: outcome.status,
          error: outcome.error ?? null,
          stopReason: outcome.stopReason && (outcome.status === 'stopped') ? outcome.stopReason : null,
          exitCode: outcome.exitCode ?? null,
          finishedAt: now,
          cost,
          usage: sessionUsage,
        },
        now,
      );
      const ch = this.channel(live.agentId);
      ch.emit(`/sessions/${live.id}/status`, 'modified', { version: next.version });
      ch.emit(`/sessions/${live.id}/output`, 'end', { data: { status: next.status, exit_code: next.exitCode } });
      this.trace(live.agentId, {
        type: 'containers_session_end',
        session_id: live.id,
        status: next.status,
        exit_code: next.exitCode,
        cost,
        ...(next.error ? { error: next.error } : {}),
      });
    });
  }

  // --- execs ---

  /** exec/new: starts a command in a running (or provisioning) session. */
  async execNew(agentId: string, sid: string, data: Uint8Array, path: string): Promise<ExecAnswer | ExecResult> {
    await this.start();
    const rec = this.needSession(agentId, sid, path);
    const req = parseExecRequest(data, path);
    const live = this.live.get(sid);
    if (!live || live.endingStatus || SESSION_TERMINAL.has(rec.status)) {
      throw new FsError('EINVAL', path, `container session ${sid} is ${live?.endingStatus ?? rec.status}: no more commands`);
    }
    const lx = this.startExec(live, req, 'exec');
    if (req.wait) return this.execResultOf(await lx.done);
    const ex = this.sessions.getExec(sid, lx.id)!;
    return { exec_id: lx.id, session_id: sid, status: ex.status, paths: this.execPaths(sid, lx.id) };
  }

  private startExec(live: LiveSession, req: ExecRequest, origin: ExecRecord['origin']): LiveExec {
    const policy = this.policy(live.agentId);
    const now = this.now();
    const rec = this.sessions.get(live.id)!;
    const timeoutSecs = Math.min(req.timeout_secs ?? rec.request.limits.exec_timeout_secs, rec.request.limits.time_secs);
    const eid = this.immediate(() => {
      const current = this.sessions.get(live.id)!;
      const id = String(current.nextExec);
      this.sessions.update(live.id, { nextExec: current.nextExec + 1 }, now);
      const ex: ExecRecord = {
        sessionId: live.id,
        id,
        origin,
        command: req.command,
        status: 'pending',
        error: null,
        exitCode: null,
        timedOut: false,
        killed: false,
        oomKilled: false,
        stdout: '',
        stderr: '',
        stdoutBytes: 0,
        stderrBytes: 0,
        stdoutTruncated: false,
        stderrTruncated: false,
        stdin: req.stdin === true ? 'open' : typeof req.stdin === 'string' ? 'text' : 'none',
        timeoutSecs,
        createdAt: now,
        startedAt: null,
        finishedAt: null,
        streamFrom: this.storage.eventStore.lastId(),
        version: 1,
        updatedAt: now,
      };
      this.sessions.insertExec(ex);
      this.channel(live.agentId).emit(`/sessions/${live.id}/exec/${id}`, 'created', { version: 1 });
      return id;
    });
    const started = deferred<RunningExec | undefined>();
    const lx: LiveExec = {
      id: eid,
      timeoutSecs,
      stdout: new Capture(policy.max_output_bytes),
      stderr: new Capture(policy.max_output_bytes),
      pending: [],
      pendingBytes: 0,
      flushTimer: undefined,
      running: undefined,
      started: started.promise,
      resolveStarted: started.resolve,
      timer: undefined,
      killedBy: undefined,
      killFailed: undefined,
      closed: false,
      done: undefined as unknown as Promise<ExecRecord>,
    };
    live.execs.set(eid, lx);
    lx.done = this.runExec(live, lx, req).finally(() => {
      live.execs.delete(eid);
      lx.resolveStarted(undefined);
    });
    // Seen by whoever awaits it; never an unhandled rejection when nobody does.
    lx.done.catch(() => undefined);
    return lx;
  }

  private async runExec(live: LiveSession, lx: LiveExec, req: ExecRequest): Promise<ExecRecord> {
    try {
      const containerId = await live.ready;
      if (!containerId || live.endingStatus) {
        return this.closeExec(live, lx, { status: 'failed', error: `the session ${live.endingStatus ?? 'ended'} before the command started` });
      }
      const rec = this.sessions.get(live.id)!;
      const workdir = req.workdir === undefined ? undefined : req.workdir.startsWith('/') ? req.workdir : `${rec.request.workdir}/${req.workdir}`;
      const running = await live.provider.exec(
        containerId,
        {
          marker: `${live.id}.${lx.id}`,
          argv: argvOf(req.command),
          env: req.env,
          stdin: req.stdin !== false,
          ...(workdir !== undefined ? { workdir } : {}),
          ...(req.user !== undefined ? { user: req.user } : {}),
        },
        { stdout: (b) => this.onOutput(live, lx, 'stdout', b), stderr: (b) => this.onOutput(live, lx, 'stderr', b) },
      );
      lx.running = running;
      this.execActivity(live.id);
      const now = this.now();
      this.immediate(() => {
        const next = this.sessions.updateExec(live.id, lx.id, { status: 'running', startedAt: now }, now);
        this.channel(live.agentId).emit(`/sessions/${live.id}/exec/${lx.id}/status`, 'modified', { version: next.version });
      });
      // A limit reaching past the session's lifetime is left to the lifetime: the session expires instead.
      const deadlineAt = this.sessions.get(live.id)!.deadlineAt;
      if (deadlineAt === null || now + lx.timeoutSecs * 1000 < deadlineAt) {
        lx.timer = setTimeout(() => void this.timeoutExec(live, lx), lx.timeoutSecs * 1000);
        lx.timer.unref();
      }
      lx.resolveStarted(running);
      if (typeof req.stdin === 'string') {
        if (req.stdin.length > 0) await running.writeStdin(new TextEncoder().encode(req.stdin)).catch(() => undefined);
        running.closeStdin();
      }
      const { exitCode } = await running.done;
      clearTimeout(lx.timer);
      return await this.classify(live, lx, exitCode);
    } catch (err) {
      clearTimeout(lx.timer);
      if (live.detached) throw err;
      return this.closeExec(live, lx, { status: 'failed', error: toFsError(err, '/').detail });
    }
  }

  /** What an exited process's end means: timeout, killed, out of memory, or just its exit code. */
  private async classify(live: LiveSession, lx: LiveExec, exitCode: number | null): Promise<ExecRecord> {
    if (lx.killedBy === 'timeout') {
      return this.closeExec(live, lx, {
        status: 'timeout',
        timedOut: true,
        exitCode,
        error:
          lx.killFailed === undefined
            ? `timed out after ${lx.timeoutSecs} s; its process tree was killed`
            : `timed out after ${lx.timeoutSecs} s; its process tree could not be killed (${lx.killFailed}), so the container was killed`,
      });
    }
    if (lx.killedBy === 'ctl') return this.closeExec(live, lx, { status: 'killed', killed: true, exitCode, error: 'killed through its ctl' });
    if (live.endingStatus && (exitCode === null || exitCode === 137 || exitCode === 143)) {
      return this.closeExec(live, lx, { status: 'killed', killed: true, exitCode, error: `the session ${live.endingStatus}` });
    }
    if (exitCode === null) return this.closeExec(live, lx, { status: 'failed', error: 'the engine did not report an exit status' });
    if (exitCode === 137 && live.containerId && !live.endingStatus) {
      const usage = await withTimeout(live.provider.usage(live.containerId), HELPER_TIMEOUT_MS, 'reading usage').catch(() => null);
      if (usage?.oom_kills !== null && usage?.oom_kills !== undefined && usage.oom_kills > live.knownOomKills) {
        live.knownOomKills = usage.oom_kills;
        const mb = this.sessions.get(live.id)!.request.limits.memory_mb;
        return this.closeExec(live, lx, {
          status: 'complete',
          exitCode,
          oomKilled: true,
          error: `killed by the kernel: out of memory (the session's limit is ${mb} MB)`,
        });
      }
    }
    return this.closeExec(live, lx, { status: 'complete', exitCode });
  }

  /** Kills an exec's whole tree at its time limit; a tree that cannot be killed takes its container with it. */
  private async timeoutExec(live: LiveSession, lx: LiveExec): Promise<void> {
    if (lx.closed || !live.containerId) return;
    lx.killedBy = 'timeout';
    try {
      await this.signalTree(live, lx, 'KILL');
    } catch (err) {
      lx.killFailed = toFsError(err, '/').detail;
      await this.finish(live, {
        status: 'failed',
        stopReason: 'kill',
        error: {
          code: 'ETIMEDOUT',
          message: `exec ${lx.id} timed out and its process tree could not be killed (${lx.killFailed}); the container was killed`,
        },
      });
    }
  }

  private onOutput(live: LiveSession, lx: LiveExec, stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    if (lx.closed || live.detached) return;
    const capture = stream === 'stdout' ? lx.stdout : lx.stderr;
    const wasTruncated = capture.truncated;
    const part = capture.take(chunk);
    if (part.length > 0) {
      const text = capture.decoder.decode(part, { stream: true });
      if (text.length > 0) this.queue(lx, { stream, text });
    }
    if (!wasTruncated && capture.truncated) this.queue(lx, { stream, text: '', truncated: true });
    if (lx.pendingBytes >= OUTPUT_FLUSH_BYTES) this.flush(live, lx);
    else if (!lx.flushTimer && lx.pending.length > 0) {
      lx.flushTimer = setTimeout(() => this.flush(live, lx), OUTPUT_FLUSH_MS);
    }
  }

  private queue(lx: LiveExec, seg: Segment): void {
    const last = lx.pending.at(-1);
    if (last && !last.truncated && !seg.truncated && last.stream === seg.stream) last.text += seg.text;
    else lx.pending.push(seg);
    lx.pendingBytes += seg.text.length;
  }

  /** Records queued output as data events at the session's and the exec's output. */
  private flush(live: LiveSession, lx: LiveExec): void {
    clearTimeout(lx.flushTimer);
    lx.flushTimer = undefined;
    if (lx.pending.length === 0) return;
    const segments = lx.pending;
    lx.pending = [];
    lx.pendingBytes = 0;
    const ch = this.channel(live.agentId);
    this.immediate(() => {
      for (const seg of segments) {
        const chunk: OutputChunk = { session_id: live.id, exec_id: lx.id, stream: seg.stream, data: seg.text, ...(seg.truncated ? { truncated: true as const } : {}) };
        ch.emit(`/sessions/${live.id}/output`, 'data', { data: chunk });
        ch.emit(`/sessions/${live.id}/exec/${lx.id}/output`, 'data', { data: chunk });
      }
    });
  }

  /** Records an exec's end once: remaining output, the outcome, and the end of its output stream. */
  private closeExec(live: LiveSession, lx: LiveExec, patch: Partial<ExecRecord>): ExecRecord {
    if (live.detached) throw new FsError('EIO', '/', 'the server shut down; the exec is no longer followed');
    if (lx.closed) return this.sessions.getExec(live.id, lx.id)!;
    lx.closed = true;
    clearTimeout(lx.timer);
    this.execActivity(live.id);
    for (const [stream, capture] of [['stdout', lx.stdout], ['stderr', lx.stderr]] as const) {
      const tail = capture.decoder.decode();
      if (tail.length > 0) this.queue(lx, { stream, text: tail });
    }
    const now = this.now();
    return this.immediate(() => {
      this.flush(live, lx);
      const next = this.sessions.updateExec(
        live.id,
        lx.id,
        {
          ...patch,
          stdout: lx.stdout.text(),
          stderr: lx.stderr.text(),
          stdoutBytes: lx.stdout.total,
          stderrBytes: lx.stderr.total,
          stdoutTruncated: lx.stdout.truncated,
          stderrTruncated: lx.stderr.truncated,
          finishedAt: now,
        },
        now,
      );
      this.emitExecEnd(live.agentId, next);
      return next;
    });
  }

  private emitExecEnd(agentId: string, ex: ExecRecord): void {
    const ch = this.channel(agentId);
    ch.emit(`/sessions/${ex.sessionId}/exec/${ex.id}/status`, 'modified', { version: ex.version });
    ch.emit(`/sessions/${ex.sessionId}/exec/${ex.id}/output`, 'end', { data: { status: ex.status, exit_code: ex.exitCode } });
  }

  // --- control ---

  /** sessions/<sid>/ctl: `stop` (SIGTERM, then SIGKILL after the grace) or `kill` (SIGKILL now). */
  async ctl(agentId: string, sid: string, command: string, path: string): Promise<void> {
    await this.start();
    const rec = this.needSession(agentId, sid, path);
    const verb = command.trim();
    if (verb !== 'stop' && verb !== 'kill') {
      throw new FsError('EINVAL', path, `unknown command '${verb.slice(0, 40)}' (commands: stop, kill)`);
    }
    const live = this.live.get(sid);
    if (!live || SESSION_TERMINAL.has(rec.status)) return; // already ended: nothing to stop
    await this.finish(live, { status: 'stopped', stopReason: verb, error: null });
  }

  /** exec/<eid>/ctl: `kill` (SIGKILL to the whole tree), `signal NAME` (to the whole tree), `eof` (close stdin). */
  async execCtl(agentId: string, sid: string, eid: string, command: string, path: string): Promise<void> {
    const ex = this.needExec(agentId, sid, eid, path);
    const [verb, arg] = command.trim().split(/\s+/, 2);
    const live = this.live.get(sid);
    const lx = live?.execs.get(eid);
    if (verb === 'eof') {
      if (ex.stdin !== 'open') throw new FsError('EINVAL', path, `exec ${eid} was not started with stdin open`);
      (await lx?.started)?.closeStdin();
      return;
    }
    let signal: string;
    if (verb === 'kill') signal = 'KILL';
    else if (verb === 'signal' && arg && /^(SIG)?[A-Z0-9]{1,10}$/.test(arg.toUpperCase())) signal = arg.toUpperCase().replace(/^SIG/, '');
    else throw new FsError('EINVAL', path, `unknown command '${command.trim().slice(0, 40)}' (commands: kill, signal NAME, eof)`);
    if (!live || !lx || EXEC_TERMINAL.has(ex.status)) return; // already ended
    const running = await lx.started;
    if (!running || lx.closed || !live.containerId) return;
    if (signal === 'KILL') lx.killedBy = 'ctl';
    await this.signalTree(live, lx, signal);
  }

  /**
   * Signals an exec's tree. The engine answers an exec's start before its process exists: while none is
   * found and the exec has not ended, look again for a little while.
   */
  private async signalTree(live: LiveSession, lx: LiveExec, signal: string): Promise<number> {
    const deadline = Date.now() + HELPER_TIMEOUT_MS;
    for (;;) {
      const n = await withTimeout(live.provider.signalExec(live.containerId!, `${live.id}.${lx.id}`, signal), HELPER_TIMEOUT_MS, 'signalling the process tree');
      if (n > 0 || lx.closed || Date.now() > deadline) return n;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** exec/<eid>/stdin: each message goes to the command's stdin (it must have been started with stdin open). */
  async execStdin(agentId: string, sid: string, eid: string, data: Uint8Array, path: string): Promise<void> {
    const ex = this.needExec(agentId, sid, eid, path);
    if (ex.stdin !== 'open') throw new FsError('EINVAL', path, `exec ${eid} was not started with stdin open ({"stdin": true})`);
    const lx = this.live.get(sid)?.execs.get(eid);
    const running = lx ? await lx.started : undefined;
    if (!lx || !running || lx.closed) throw new FsError('EINVAL', path, `exec ${eid} has finished`);
    await running.writeStdin(data).catch((err: unknown) => {
      throw new FsError('EINVAL', path, `stdin of exec ${eid} is closed`, { cause: err });
    });
  }

  // --- answers ---

  statusOf(rec: SessionRecord): Record<string, unknown> {
    const execs = this.sessions.execIds(rec.id).length;
    const running = this.live.get(rec.id)?.execs.size ?? 0;
    return {
      session_id: rec.id,
      status: rec.status,
      kind: rec.request.kind,
      provider: rec.provider,
      image: rec.request.image,
      workdir: rec.request.workdir,
      limits: rec.request.limits,
      exit_code: rec.exitCode,
      error: rec.error,
      stop_reason: rec.stopReason,
      execs: { total: execs, running },
      created_at: rec.createdAt,
      started_at: rec.startedAt,
      finished_at: rec.finishedAt,
      deadline_at: rec.deadlineAt,
      reserved: rec.reserved,
      cost: rec.cost,
      ...(rec.request.budget_scope ? { budget_scope: rec.request.budget_scope } : {}),
      ...(rec.request.idempotency_key ? { idempotency_key: rec.request.idempotency_key } : {}),
    };
  }

  /** The result file: the outcome once the session ended; EAGAIN "not ready" before. */
  resultOf(rec: SessionRecord, path: string): SessionResult {
    if (!SESSION_TERMINAL.has(rec.status)) {
      throw new FsError('EAGAIN', path, `not ready: session ${rec.id} is ${rec.status}`, { retryAfterMs: RESULT_RETRY_AFTER_MS });
    }
    const execs = this.sessions.execs(rec.id);
    const commands = execs.filter((e) => e.origin === 'command');
    return {
      session_id: rec.id,
      status: rec.status,
      provider_id: rec.provider,
      image: rec.request.image,
      exit_code: rec.exitCode,
      error: rec.error,
      stop_reason: rec.stopReason,
      stdout: commands.map((e) => e.stdout).join(''),
      stderr: commands.map((e) => e.stderr).join(''),
      command_results: commands.map((e) => this.execResultOf(e)),
      execs: execs.length,
      usage: rec.usage,
      cost: rec.cost ?? 0,
      cost_usd: (rec.cost ?? 0) / 1e6,
      reserved: rec.reserved,
      duration_ms: rec.usage?.duration_ms ?? null,
      created_at: rec.createdAt,
      started_at: rec.startedAt,
      finished_at: rec.finishedAt,
      ...(rec.request.budget_scope ? { budget_scope: rec.request.budget_scope } : {}),
    };
  }

  /** The usage file of a session: resource use, duration and cost (live while it runs). */
  async sessionUsage(rec: SessionRecord): Promise<Record<string, unknown>> {
    let usage: SessionUsage | null = rec.usage;
    let cost = rec.cost ?? 0;
    const live = this.live.get(rec.id);
    if (!SESSION_TERMINAL.has(rec.status) && live?.containerId && rec.startedAt !== null) {
      const ran = this.now() - rec.startedAt;
      const cg = await withTimeout(live.provider.usage(live.containerId), HELPER_TIMEOUT_MS, 'reading usage').catch(() => null);
      usage = { cpu_time_ms: cg?.cpu_time_ms ?? null, peak_memory_bytes: cg?.peak_memory_bytes ?? null, oom_kills: cg?.oom_kills ?? null, duration_ms: ran };
      cost = Math.min(rec.reserved, Math.ceil((ran * rec.rate) / 1000));
    }
    return {
      unit: 'micro-USD',
      usage,
      cost,
      cost_usd: cost / 1e6,
      reserved: rec.reserved,
      rate_per_second: rec.rate,
      duration_ms: usage?.duration_ms ?? null,
      final: SESSION_TERMINAL.has(rec.status),
    };
  }

  execStatusOf(ex: ExecRecord): Record<string, unknown> {
    return {
      exec_id: ex.id,
      session_id: ex.sessionId,
      status: ex.status,
      command: commandLine(ex.command),
      origin: ex.origin,
      exit_code: ex.exitCode,
      error: ex.error,
      stdin: ex.stdin,
      timeout_secs: ex.timeoutSecs,
      created_at: ex.createdAt,
      started_at: ex.startedAt,
      finished_at: ex.finishedAt,
    };
  }

  execResultOf(ex: ExecRecord): ExecResult {
    return {
      exec_id: ex.id,
      session_id: ex.sessionId,
      command: commandLine(ex.command),
      status: ex.status,
      exit_code: ex.exitCode,
      timed_out: ex.timedOut,
      killed: ex.killed,
      oom_killed: ex.oomKilled,
      stdout: ex.stdout,
      stderr: ex.stderr,
      stdout_bytes: ex.stdoutBytes,
      stderr_bytes: ex.stderrBytes,
      stdout_truncated: ex.stdoutTruncated,
      stderr_truncated: ex.stderrTruncated,
      started_at: ex.startedAt,
      finished_at: ex.finishedAt,
      duration_ms: ex.startedAt !== null && ex.finishedAt !== null ? ex.finishedAt - ex.startedAt : null,
      error: ex.error,
    };
  }

  execResultFile(ex: ExecRecord, path: string): ExecResult {
    if (!EXEC_TERMINAL.has(ex.status)) {
      throw new FsError('EAGAIN', path, `not ready: exec ${ex.id} is ${ex.status}`, { retryAfterMs: RESULT_RETRY_AFTER_MS });
    }
    return this.execResultOf(ex);
  }

  /** The usage file: the agent's budget windows, scopes, and session counts. */
  usage(agentId: string): Record<string, unknown> {
    const all = this.ledger.usageAll(agentId);
    const scopes = Object.fromEntries(Object.entries(all.scopes).filter(([k]) => !k.startsWith('service:')));
    return {
      unit: 'micro-USD',
      tick: all.agent.tick,
      day: all.agent.day,
      containers: all.scopes[SERVICE_LEVEL] ?? this.ledger.usage(agentId, SERVICE_LEVEL),
      scopes,
      sessions: this.sessions.counts(agentId),
      price_per_cpu_second: this.policy(agentId).price_per_cpu_second,
    };
  }

  // --- start, recovery, orphans, shutdown ---

  /** Recovers what a previous run left (once); every submit waits for it. */
  start(): Promise<RecoveryReport> {
    this.starting ??= this.recover();
    return this.starting;
  }

  private async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { adopted: [], failed: [], orphansRemoved: 0 };
    this.prune();
    for (const rec of this.sessions.active()) {
      if (this.live.has(rec.id)) continue;
      const provider = this.provider(rec.provider);
      const health = provider ? await provider.health({ fresh: true }) : undefined;
      if (!provider || health?.status !== 'available') {
        this.failRecovered(rec, `the server restarted and provider ${rec.provider} is unavailable (${health?.reason ?? 'not configured'})`);
        report.failed.push(rec.id);
        continue;
      }
      const state = rec.containerId ? await provider.inspect(rec.containerId).catch(() => undefined) : undefined;
      if (rec.status === 'running' && rec.request.kind === 'interactive' && state?.running) {
        await this.adopt(rec, provider);
        report.adopted.push(rec.id);
        continue;
      }
      const why =
        rec.status === 'provisioning'
          ? 'the server restarted while the session was provisioning'
          : state?.running
            ? 'the server restarted while its commands ran'
            : 'its container was gone when the server restarted';
      this.failRecovered(rec, why);
      report.failed.push(rec.id);
      if (rec.containerId) this.track(provider.remove(rec.containerId));
    }
    try {
      report.orphansRemoved = await this.sweepOrphans();
    } catch {
      this.orphanSweepPending = true;
    }
    return report;
  }

  private failRecovered(rec: SessionRecord, why: string): void {
    const now = this.now();
    this.immediate(() => {
      for (const ex of this.sessions.activeExecs(rec.id)) {
        const next = this.sessions.updateExec(rec.id, ex.id, { status: 'failed', error: `${why}; its output after that is lost`, finishedAt: now }, now);
        this.emitExecEnd(rec.agentId, next);
      }
      const ran = rec.startedAt !== null ? Math.max(0, now - rec.startedAt) : 0;
      const cost = rec.startedAt !== null ? Math.min(rec.reserved, Math.ceil((ran * rec.rate) / 1000)) : 0;
      if (rec.reservationId !== null) {
        if (rec.startedAt !== null) this.ledger.reconcile(rec.reservationId, cost);
        else this.ledger.release(rec.reservationId);
      }
      const next = this.sessions.update(
        rec.id,
        { status: 'failed', error: { code: 'EIO', message: why }, finishedAt: now, cost, usage: { cpu_time_ms: null, peak_memory_bytes: null, oom_kills: null, duration_ms: ran } },
        now,
      );
      const ch = this.channel(rec.agentId);
      ch.emit(`/sessions/${rec.id}/status`, 'modified', { version: next.version });
      ch.emit(`/sessions/${rec.id}/output`, 'end', { data: { status: 'failed', exit_code: null } });
      this.trace(rec.agentId, { type: 'containers_session_end', session_id: rec.id, status: 'failed', cost, error: next.error });
    });
  }

  /** Takes over a running interactive session: its lifetime timer again; its orphaned execs killed. */
  private async adopt(rec: SessionRecord, provider: ContainerProvider): Promise<void> {
    const live = this.makeLive(rec, provider);
    live.containerId = rec.containerId!;
    live.resolveReady(live.containerId);
    const usage = await withTimeout(provider.usage(live.containerId), HELPER_TIMEOUT_MS, 'reading usage').catch(() => null);
    live.knownOomKills = usage?.oom_kills ?? 0;
    const now = this.now();
    for (const ex of this.sessions.activeExecs(rec.id)) {
      await withTimeout(provider.signalExec(live.containerId, `${rec.id}.${ex.id}`, 'KILL'), HELPER_TIMEOUT_MS, 'killing').catch(() => 0);
      this.immediate(() => {
        const next = this.sessions.updateExec(
          rec.id,
          ex.id,
          { status: 'failed', error: 'the server restarted while it ran: its output could no longer be followed, so its process tree was killed', finishedAt: now },
          now,
        );
        this.emitExecEnd(rec.agentId, next);
      });
    }
    this.armLifetime(live, (rec.deadlineAt ?? now) - now);
  }

  /** Removes containers of this server that no live session owns. */
  async sweepOrphans(): Promise<number> {
    let removed = 0;
    for (const provider of this.providerList) {
      if ((await provider.health()).status !== 'available') {
        this.orphanSweepPending = true;
        continue;
      }
      for (const c of await provider.list({ 'agent9.instance': this.instanceId })) {
        const sid = c.labels['agent9.session'];
        const live = sid ? this.live.get(sid) : undefined;
        if (live && (live.containerId === undefined || live.containerId === c.containerId)) continue;
        await provider.remove(c.containerId);
        removed++;
      }
    }
    return removed;
  }

  /** Drops finished sessions older than retention. */
  prune(): number {
    return this.sessions.prune(this.now() - this.retentionMs).length;
  }

  /** Ends every session of an agent and forgets them (the agent is being deleted). */
  async dropAgent(agentId: string): Promise<void> {
    const ending = [...this.live.values()].filter((l) => l.agentId === agentId).map((l) => this.finish(l, { status: 'stopped', stopReason: 'kill' }));
    await Promise.allSettled(ending);
    this.immediate(() => {
      for (const id of this.sessions.agentSessionIds(agentId)) this.sessions.drop(id);
      this.policies.remove(agentId);
      this.journal.deletePrefix(`${agentId}:${CONTAINERS_SERVICE}:`);
    });
    this.capsApplied.delete(agentId);
    this.channels.delete(agentId);
  }

  private track<T>(p: Promise<T>): void {
    const tracked = p.catch(() => undefined).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  /** Resolves when every running session has ended and every cleanup is done (tests, shutdown). */
  async drain(): Promise<void> {
    while (this.live.size > 0 || this.background.size > 0) {
      await Promise.allSettled([...[...this.live.values()].map((l) => l.done), ...this.background]);
    }
  }

  /** Waits for a session to end (tests, `wait`). */
  async waitFor(sid: string): Promise<SessionRecord | undefined> {
    await this.live.get(sid)?.done;
    return this.sessions.get(sid);
  }

  /**
   * Shuts down: ephemeral sessions are ended (failed, "server shut down"); interactive ones keep running
   * and are adopted by the next start. Output of their running execs is no longer followed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.starting?.catch(() => undefined);
    const ending: Promise<void>[] = [];
    for (const live of [...this.live.values()]) {
      const rec = this.sessions.get(live.id);
      if (rec?.request.kind === 'ephemeral' || !live.containerId) {
        ending.push(this.finish(live, { status: 'failed', stopReason: 'kill', error: { code: 'EIO', message: 'the server shut down while it ran' } }));
      } else {
        live.detached = true;
        clearTimeout(live.lifetimeTimer);
        for (const lx of live.execs.values()) {
          clearTimeout(lx.timer);
          clearTimeout(lx.flushTimer);
          lx.running?.detach();
        }
        this.live.delete(live.id);
      }
    }
    await Promise.allSettled(ending);
    await Promise.allSettled([...this.background]);
  }
}
