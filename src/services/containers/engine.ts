/**
 * The container engine: one per server, shared by every agent's /containers. It submits sessions
 * (policy, idempotency, budget reservation and the session record in one transaction), provisions their
 * containers, runs their commands and execs with time limits that kill whole process trees, streams
 * their output into the event log (stdout and stderr apart, capped), settles their budget when they end,
 * and records every outcome durably. The work lives in its parts (engine/): submit, the session
 * lifecycle, execs and their output, the files' answers, recovery at start; this class is what the rest
 * of the server and the file surface call.
 *
 * A restart finds what a previous run left: interactive sessions whose container still runs are adopted
 * (their running execs, whose output can no longer be followed, are killed and marked failed); every
 * other unfinished session is marked failed and its container removed; containers of this server
 * without a live session (a crash between create and record) are removed.
 */
import { randomBytes } from 'node:crypto';
import { FsError } from '../../fs/errors.js';
import type { BudgetLedger } from '../../runtime/budget-ledger.js';
import type { IdempotencyJournal } from '../../runtime/idempotency-journal.js';
import type { Storage } from '../../runtime/storage/index.js';
import { CapabilityCore, type CapabilityOptions, type CapabilitySpec } from '../kit/core.js';
import type { TraceSink } from '../kit/trace-sink.js';
import { containerPolicyCodec, type ContainerPolicy, type ContainerPolicyStore, type PolicyInput } from './policy.js';
import { DockerProvider } from './providers/docker.js';
import type { ContainerProvider, ProviderHealth } from './providers/types.js';
import { SessionStore } from './store.js';
import type { ExecRecord, ExecResult, SessionRecord, SessionResult } from './types.js';
import { execResultFile, execStatus, sessionResult, sessionStatus, sessionUsage } from './engine/answers.js';
import type { ExecAnswer } from './engine/execs.js';
import { Lifecycle } from './engine/lifecycle.js';
import { Recovery, type RecoveryReport } from './engine/recovery.js';
import { CONTAINERS_SERVICE, DEFAULT_SESSION_RETENTION_MS, EngineState } from './engine/state.js';
import { Submits, type SubmitAnswer } from './engine/submit.js';

export { CONTAINERS_SERVICE, DEFAULT_SESSION_RETENTION_MS } from './engine/state.js';
export type { ExecAnswer } from './engine/execs.js';
export type { RecoveryReport } from './engine/recovery.js';
export type { SubmitAnswer } from './engine/submit.js';
export type { TraceEvent, TraceSink } from '../kit/trace-sink.js';

/** What /containers is to the kit (`wait` shapes the answer, not the request: a retry may differ in it). */
const CONTAINERS: CapabilitySpec<ContainerPolicy> = {
  service: CONTAINERS_SERVICE, policyTable: 'container_policies', codec: containerPolicyCodec, defaultsWhere: 'containers policy defaults',
  mountPath: '/containers', submits: { idField: 'session_id', noun: 'session', ignore: ['wait'] },
};

export interface ContainerEngineOptions extends CapabilityOptions {
  storage: Storage;
  ledger?: BudgetLedger;
  journal?: IdempotencyJournal;
  /** Default: one DockerProvider on the local engine. */
  providers?: ContainerProvider[];
  /** The server's default policy. */
  policy?: PolicyInput;
  trace?: TraceSink;
  /** Finished sessions are kept this long (default 7 days). */
  retentionMs?: number;
}

/** Policies, caps, the idempotent submit path, traces and channels come from the kit (CapabilityCore). */
export class ContainerEngine extends CapabilityCore<ContainerPolicy> {
  declare readonly policies: ContainerPolicyStore;
  readonly sessions: SessionStore;
  /** Labels this server's containers with it, so another server on the same engine never touches them. */
  readonly instanceId: string;
  private readonly s: EngineState;
  private readonly lifecycle: Lifecycle;
  private readonly recovery: Recovery;
  private readonly submitter: Submits;
  private starting: Promise<RecoveryReport> | undefined;

  constructor(options: ContainerEngineOptions) {
    super(options, CONTAINERS);
    this.sessions = new SessionStore(options.storage);
    let instance = this.storage.metaGet('containers.instance');
    if (!instance) {
      instance = randomBytes(8).toString('hex');
      this.storage.metaSet('containers.instance', instance);
    }
    this.instanceId = instance;
    this.s = new EngineState(this, this.sessions, options.providers ?? [new DockerProvider()], instance, options.retentionMs ?? DEFAULT_SESSION_RETENTION_MS);
    this.lifecycle = new Lifecycle(this.s);
    this.recovery = new Recovery(this.s, this.lifecycle);
    this.submitter = new Submits(this.s, this.lifecycle, this.recovery);
  }

  // --- lookups ---

  providers(): readonly ContainerProvider[] {
    return this.s.providers;
  }

  provider(id: string): ContainerProvider | undefined {
    return this.s.provider(id);
  }

  /** A session of this agent, or undefined (another agent's sessions do not exist for it). */
  session(agentId: string, sid: string): SessionRecord | undefined {
    return this.s.session(agentId, sid);
  }

  needSession(agentId: string, sid: string, path: string): SessionRecord {
    return this.s.needSession(agentId, sid, path);
  }

  exec(agentId: string, sid: string, eid: string): ExecRecord | undefined {
    return this.s.exec(agentId, sid, eid);
  }

  needExec(agentId: string, sid: string, eid: string, path: string): ExecRecord {
    return this.s.needExec(agentId, sid, eid, path);
  }

  /** The running container of a session, waiting while it is provisioned; ENOENT once it has ended. */
  async containerOf(agentId: string, sid: string, path: string): Promise<{ containerId: string; provider: ContainerProvider; record: SessionRecord }> {
    await this.start();
    const record = this.needSession(agentId, sid, path);
    const live = this.s.live.get(sid);
    const containerId = live ? await live.ready : undefined;
    if (!live || !containerId || live.endingStatus) {
      throw new FsError('ENOENT', path, `container session ${sid} is ${live?.endingStatus ?? record.status}: its files went with its container`);
    }
    return { containerId, provider: live.provider, record };
  }

  /** Called when a command starts or ends in a session (its files may have changed). */
  onExecActivity(listener: (sid: string) => void): () => void {
    return this.s.onExecActivity(listener);
  }

  paths(sid: string): SubmitAnswer['paths'] {
    return this.submitter.paths(sid);
  }

  execPaths(sid: string, eid: string): ExecAnswer['paths'] {
    return this.lifecycle.execs.paths(sid, eid);
  }

  /** The health of a provider (for providers/<id>/health); an engine coming back gets its orphans swept. */
  health(provider: ContainerProvider): Promise<ProviderHealth> {
    return this.recovery.health(provider);
  }

  // --- the files' operations ---

  /** Submits a session written to `new` (see engine/submit.ts for what is refused and when). */
  async submit(agentId: string, data: Uint8Array, path = '/new'): Promise<SubmitAnswer | SessionResult> {
    if (this.s.closed) throw new FsError('EAGAIN', path, 'the server is shutting down', { retryAfterMs: 1000 });
    await this.start();
    return this.submitter.submit(agentId, data, path);
  }

  /** sessions/<sid>/ctl: `stop` (SIGTERM, then SIGKILL after the grace) or `kill` (SIGKILL now). */
  async ctl(agentId: string, sid: string, command: string, path: string): Promise<void> {
    await this.start();
    return this.lifecycle.ctl(agentId, sid, command, path);
  }

  /** exec/new: starts a command in a running (or provisioning) session. */
  async execNew(agentId: string, sid: string, data: Uint8Array, path: string): Promise<ExecAnswer | ExecResult> {
    await this.start();
    return this.lifecycle.execs.execNew(agentId, sid, data, path);
  }

  /** exec/<eid>/ctl: `kill` (SIGKILL to the whole tree), `signal NAME` (to the whole tree), `eof` (close stdin). */
  execCtl(agentId: string, sid: string, eid: string, command: string, path: string): Promise<void> {
    return this.lifecycle.execs.ctl(agentId, sid, eid, command, path);
  }

  /** exec/<eid>/stdin: each message goes to the command's stdin (it must have been started with stdin open). */
  execStdin(agentId: string, sid: string, eid: string, data: Uint8Array, path: string): Promise<void> {
    return this.lifecycle.execs.stdin(agentId, sid, eid, data, path);
  }

  statusOf(rec: SessionRecord): Record<string, unknown> {
    return sessionStatus(this.s, rec);
  }

  /** The result file: the outcome once the session ended; EAGAIN "not ready" before. */
  resultOf(rec: SessionRecord, path: string): SessionResult {
    return sessionResult(this.s, rec, path);
  }

  /** The usage file of a session: resource use, duration and cost (live while it runs). */
  sessionUsage(rec: SessionRecord): Promise<Record<string, unknown>> {
    return sessionUsage(this.s, rec);
  }

  execStatusOf(ex: ExecRecord): Record<string, unknown> {
    return execStatus(ex);
  }

  execResultFile(ex: ExecRecord, path: string): ExecResult {
    return execResultFile(ex, path);
  }

  /** The usage file: the agent's budget windows, scopes, and session counts. */
  usage(agentId: string): Record<string, unknown> {
    return {
      ...this.budgetUsage(agentId),
      sessions: this.sessions.counts(agentId),
      price_per_cpu_second: this.policy(agentId).price_per_cpu_second,
    };
  }

  // --- start, recovery, orphans, shutdown ---

  /** Recovers what a previous run left (once); every submit waits for it. */
  start(): Promise<RecoveryReport> {
    this.starting ??= this.recovery.recover();
    return this.starting;
  }

  /** Removes containers of this server that no live session owns. */
  sweepOrphans(): Promise<number> {
    return this.recovery.sweepOrphans();
  }

  /** Drops finished sessions older than retention. */
  prune(): number {
    return this.s.prune();
  }

  /** Ends every session of an agent and forgets them (the agent is being deleted). */
  async dropAgent(agentId: string): Promise<void> {
    const ending = [...this.s.live.values()].filter((l) => l.agentId === agentId).map((l) => this.lifecycle.finish(l, { status: 'stopped', stopReason: 'kill' }));
    await Promise.allSettled(ending);
    this.s.tx(() => {
      for (const id of this.sessions.agentSessionIds(agentId)) this.sessions.drop(id);
      this.forgetRecords(agentId);
    });
    this.forgetCached(agentId);
  }

  /** Resolves when every running session has ended and every cleanup is done (tests, shutdown). */
  async drain(): Promise<void> {
    for (;;) {
      const work = [...[...this.s.live.values()].map((l) => l.done), ...this.s.pendingWork()];
      if (work.length === 0) return;
      await Promise.allSettled(work);
    }
  }

  /** Waits for a session to end (tests, `wait`). */
  async waitFor(sid: string): Promise<SessionRecord | undefined> {
    await this.s.live.get(sid)?.done;
    return this.sessions.get(sid);
  }

  /**
   * Shuts down: ephemeral sessions are ended (failed, "server shut down"); interactive ones keep running
   * and are adopted by the next start. Output of their running execs is no longer followed.
   */
  async close(): Promise<void> {
    if (this.s.closed) return;
    this.s.closed = true;
    await this.starting?.catch(() => undefined);
    const ending: Promise<void>[] = [];
    for (const live of [...this.s.live.values()]) {
      const rec = this.sessions.get(live.id);
      if (rec?.request.kind === 'ephemeral' || !live.containerId) {
        ending.push(this.lifecycle.finish(live, { status: 'failed', stopReason: 'kill', error: { code: 'EIO', message: 'the server shut down while it ran' } }));
      } else {
        live.detached = true;
        clearTimeout(live.lifetimeTimer);
        for (const lx of live.execs.values()) {
          clearTimeout(lx.timer);
          clearTimeout(lx.flushTimer);
          lx.running?.detach();
        }
        this.s.live.delete(live.id);
      }
    }
    await Promise.allSettled(ending);
    await Promise.allSettled(this.s.pendingWork());
  }
}
