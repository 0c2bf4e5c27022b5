/**
 * What the parts of the container engine share: the sessions and execs being followed in this process
 * (live), the durable records, the kit (policies, budget, journal, trace, channels), the providers, and
 * the background work (container removals) that shutdown waits for. Every write goes through `tx`, one
 * IMMEDIATE transaction of the storage (a savepoint inside another one).
 */
import { FsError, toFsError } from '../../../fs/errors.js';
import type { EventChannel } from '../../../fs/events.js';
import type { Storage } from '../../../runtime/storage/index.js';
import type { CapabilityCore } from '../../kit/core.js';
import type { ContainerPolicy } from '../policy.js';
import type { ContainerProvider, RunningExec } from '../providers/types.js';
import type { SessionStore } from '../store.js';
import type { ErrorInfo, ExecRecord, SessionRecord, SessionStatus } from '../types.js';

export const CONTAINERS_SERVICE = 'containers';
export const DEFAULT_SESSION_RETENTION_MS = 7 * 24 * 3600 * 1000;
export const RESULT_RETRY_AFTER_MS = 500;
/** How long a helper call (usage, signals) may take before we stop waiting for it. */
export const HELPER_TIMEOUT_MS = 5000;

/** Bytes of one stream of one exec: what is kept (up to the cap) and how much came. */
export class Capture {
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

export interface Segment {
  stream: 'stdout' | 'stderr';
  text: string;
  truncated?: true;
}

export interface LiveExec {
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

export interface LiveSession {
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

export interface Outcome {
  status: SessionStatus;
  error?: ErrorInfo | null;
  stopReason?: 'stop' | 'kill';
  exitCode?: number | null;
}

export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new FsError('ETIMEDOUT', '/', `${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function errorInfo(err: unknown): ErrorInfo {
  const e = toFsError(err, '/');
  return { code: e.code, message: e.detail };
}

export class EngineState {
  readonly storage: Storage;
  readonly now: () => number;
  readonly live = new Map<string, LiveSession>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly execListeners = new Set<(sid: string) => void>();
  /** The engine was down when orphans were to be swept: sweep when it answers again. */
  orphanSweepPending = false;
  finishedSincePrune = 0;
  closed = false;

  constructor(
    readonly kit: CapabilityCore<ContainerPolicy>,
    readonly sessions: SessionStore,
    readonly providers: readonly ContainerProvider[],
    /** Labels this server's containers, so another server on the same engine never touches them. */
    readonly instanceId: string,
    readonly retentionMs: number,
  ) {
    this.storage = kit.storage;
    this.now = kit.now;
  }

  /** One IMMEDIATE transaction (a savepoint inside another), its events published after commit. */
  tx<T>(fn: () => T): T {
    return this.storage.tx(fn, { immediate: true });
  }

  channel(agentId: string): EventChannel {
    return this.kit.channel(agentId);
  }

  policy(agentId: string): ContainerPolicy {
    return this.kit.policy(agentId);
  }

  provider(id: string): ContainerProvider | undefined {
    return this.providers.find((p) => p.id === id);
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

  onExecActivity(listener: (sid: string) => void): () => void {
    this.execListeners.add(listener);
    return () => this.execListeners.delete(listener);
  }

  /** A command started or ended in a session (its files may have changed). */
  execActivity(sid: string): void {
    for (const l of this.execListeners) l(sid);
  }

  /** Background work (container removals) that drain and close wait for; its failures are ignored. */
  track<T>(p: Promise<T>): void {
    const tracked = p.catch(() => undefined).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  pendingWork(): Promise<unknown>[] {
    return [...this.background];
  }

  /** Drops finished sessions older than retention. */
  prune(): number {
    return this.sessions.prune(this.now() - this.retentionMs).length;
  }

  /** Emits the end of an exec: its status changed and its output stream ended. */
  emitExecEnd(agentId: string, ex: ExecRecord): void {
    const ch = this.channel(agentId);
    ch.emit(`/sessions/${ex.sessionId}/exec/${ex.id}/status`, 'modified', { version: ex.version });
    ch.emit(`/sessions/${ex.sessionId}/exec/${ex.id}/output`, 'end', { data: { status: ex.status, exit_code: ex.exitCode } });
  }

  /**
   * Settles a session's reservation when it ends: it is charged for the time it ran at its rate, never
   * more than it reserved (nothing when it never started), and the rest is released. Returns the cost
   * and the time it ran. Run inside the transaction that records the end.
   */
  settleBudget(rec: SessionRecord, now: number): { cost: number; ran: number } {
    const ran = rec.startedAt !== null ? Math.max(0, now - rec.startedAt) : 0;
    const cost = rec.startedAt !== null ? Math.min(rec.reserved, Math.ceil((ran * rec.rate) / 1000)) : 0;
    if (rec.reservationId !== null) {
      if (rec.startedAt !== null) this.kit.ledger.reconcile(rec.reservationId, cost);
      else this.kit.ledger.release(rec.reservationId);
    }
    return { cost, ran };
  }
}
