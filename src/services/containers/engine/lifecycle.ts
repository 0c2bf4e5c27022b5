/**
 * A session's life in this process: its container is created, its request's commands run in order (an
 * ephemeral session ends after them), its lifetime is armed, and it ends once (`finish`): its
 * resource use is read, its container stopped or killed (and so every exec), its budget settled for
 * the time it ran, its outcome recorded with its events, and its container removed.
 */
import type { CgroupUsage, ContainerProvider, SessionSpec } from '../providers/types.js';
import { SESSION_TERMINAL, type ErrorInfo, type ExecRecord, type SessionRecord, type SessionUsage } from '../types.js';
import { parseSessionCommand } from '../commands.js';
import { Execs } from './execs.js';
import { HELPER_TIMEOUT_MS, deferred, errorInfo, withTimeout, type EngineState, type LiveSession, type Outcome } from './state.js';

export class Lifecycle {
  readonly execs: Execs;

  constructor(private readonly s: EngineState) {
    this.execs = new Execs(s, (live, outcome) => this.finish(live, outcome));
  }

  /** What this process follows of a session: its container, its execs, its timers and its end. */
  makeLive(rec: SessionRecord, provider: ContainerProvider): LiveSession {
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
    this.s.live.set(rec.id, live);
    return live;
  }

  /** Starts a session just recorded: provisioning, then its commands, in the background. */
  launch(rec: SessionRecord): void {
    const live = this.makeLive(rec, this.s.provider(rec.provider)!);
    const task = this.run(live, rec).catch((err: unknown) => this.finish(live, { status: 'failed', error: errorInfo(err) }));
    this.s.track(task);
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
      networkMode: this.s.policy(rec.agentId).network_mode,
      labels: {
        'agent9.instance': this.s.instanceId,
        'agent9.session': rec.id,
        'agent9.agent': rec.agentId,
      },
    };
  }

  private async run(live: LiveSession, rec: SessionRecord): Promise<void> {
    const { s } = this;
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
      s.track(live.provider.remove(containerId));
      return;
    }
    live.containerId = containerId;
    const now = s.now();
    const lifetimeMs = rec.request.limits.time_secs * 1000;
    s.tx(() => {
      const next = s.sessions.update(live.id, { status: 'running', containerId, startedAt: now, deadlineAt: now + lifetimeMs }, now);
      s.channel(live.agentId).emit(`/sessions/${live.id}/status`, 'modified', { version: next.version });
    });
    this.armLifetime(live, lifetimeMs);
    live.resolveReady(containerId);

    let last: ExecRecord | undefined;
    for (const command of rec.request.commands) {
      if (live.ending) return;
      const lx = this.execs.start(
        live,
        { command, stdin: false, timeout_secs: rec.request.limits.exec_timeout_secs, env: {}, workdir: undefined, user: undefined, wait: false },
        'command',
      );
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

  armLifetime(live: LiveSession, ms: number): void {
    const rec = this.s.sessions.get(live.id)!;
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
  finish(live: LiveSession, outcome: Outcome): Promise<void> {
    if (live.ending) return live.ending;
    const { s } = this;
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
          const grace = s.policy(live.agentId).stop_grace_secs;
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
        s.live.delete(live.id);
        live.resolveDone();
        if (cid) s.track(live.provider.remove(cid));
      }
      if (++s.finishedSincePrune >= 100) {
        s.finishedSincePrune = 0;
        s.prune();
      }
    })();
    return live.ending;
  }

  /** Records a session's end: its unfinished execs, its cost, its status and the end of its output. */
  private settle(live: LiveSession, outcome: Outcome, usage: CgroupUsage | null): void {
    const { s } = this;
    const now = s.now();
    s.tx(() => {
      const rec = s.sessions.get(live.id)!;
      for (const lx of live.execs.values()) {
        this.execs.close(live, lx, { status: 'killed', killed: true, error: `the session ${outcome.status}` });
      }
      for (const ex of s.sessions.activeExecs(live.id)) {
        const next = s.sessions.updateExec(live.id, ex.id, { status: 'failed', error: `the session ${outcome.status} before it finished`, finishedAt: now }, now);
        s.emitExecEnd(live.agentId, next);
      }
      const { cost, ran } = s.settleBudget(rec, now);
      const sessionUsage: SessionUsage = {
        cpu_time_ms: usage?.cpu_time_ms ?? null,
        peak_memory_bytes: usage?.peak_memory_bytes ?? null,
        oom_kills: usage?.oom_kills ?? null,
        duration_ms: ran,
      };
      const next = s.sessions.update(
        live.id,
        {
          status: outcome.status,
          error: outcome.error ?? null,
          stopReason: outcome.stopReason && outcome.status === 'stopped' ? outcome.stopReason : null,
          exitCode: outcome.exitCode ?? null,
          finishedAt: now,
          cost,
          usage: sessionUsage,
        },
        now,
      );
      const ch = s.channel(live.agentId);
      ch.emit(`/sessions/${live.id}/status`, 'modified', { version: next.version });
      ch.emit(`/sessions/${live.id}/output`, 'end', { data: { status: next.status, exit_code: next.exitCode } });
      s.kit.trace(live.agentId, {
        type: 'containers_session_end',
        session_id: live.id,
        status: next.status,
        exit_code: next.exitCode,
        cost,
        ...(next.error ? { error: next.error } : {}),
      });
    });
  }

  /** sessions/<sid>/ctl: `stop` (SIGTERM, then SIGKILL after the grace) or `kill` (SIGKILL now). */
  async ctl(agentId: string, sid: string, command: string, path: string): Promise<void> {
    const rec = this.s.needSession(agentId, sid, path);
    const verb = parseSessionCommand(command, path);
    const live = this.s.live.get(sid);
    if (!live || SESSION_TERMINAL.has(rec.status)) return; // already ended: nothing to stop
    await this.finish(live, { status: 'stopped', stopReason: verb, error: null });
  }
}
