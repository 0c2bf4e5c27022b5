/**
 * What a previous run left, settled at start before a new session is taken: an interactive session whose
 * container still runs is adopted (its lifetime continues; its execs that were running are killed, since
 * their output can no longer be followed, and marked failed); every other unfinished session is marked
 * failed, charged for the time it ran, and its container removed; a container of this server that no
 * live session owns is removed (now, or once the engine answers again).
 */
import { FsError } from '../../../fs/errors.js';
import type { ContainerProvider, ProviderHealth } from '../providers/types.js';
import type { SessionRecord } from '../types.js';
import type { Lifecycle } from './lifecycle.js';
import { HELPER_TIMEOUT_MS, withTimeout, type EngineState } from './state.js';

export interface RecoveryReport {
  adopted: string[];
  failed: string[];
  orphansRemoved: number;
}

export class Recovery {
  constructor(
    private readonly s: EngineState,
    private readonly lifecycle: Lifecycle,
  ) {}

  async recover(): Promise<RecoveryReport> {
    const { s } = this;
    const report: RecoveryReport = { adopted: [], failed: [], orphansRemoved: 0 };
    s.prune();
    for (const rec of s.sessions.active()) {
      if (s.live.has(rec.id)) continue;
      const provider = s.provider(rec.provider);
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
      if (rec.containerId) s.track(provider.remove(rec.containerId));
    }
    try {
      report.orphansRemoved = await this.sweepOrphans();
    } catch {
      s.orphanSweepPending = true;
    }
    return report;
  }

  private failRecovered(rec: SessionRecord, why: string): void {
    const { s } = this;
    const now = s.now();
    s.tx(() => {
      for (const ex of s.sessions.activeExecs(rec.id)) {
        const next = s.sessions.updateExec(rec.id, ex.id, { status: 'failed', error: `${why}; its output after that is lost`, finishedAt: now }, now);
        s.emitExecEnd(rec.agentId, next);
      }
      const { cost, ran } = s.settleBudget(rec, now);
      const next = s.sessions.update(
        rec.id,
        { status: 'failed', error: { code: 'EIO', message: why }, finishedAt: now, cost, usage: { cpu_time_ms: null, peak_memory_bytes: null, oom_kills: null, duration_ms: ran } },
        now,
      );
      const ch = s.channel(rec.agentId);
      ch.emit(`/sessions/${rec.id}/status`, 'modified', { version: next.version });
      ch.emit(`/sessions/${rec.id}/output`, 'end', { data: { status: 'failed', exit_code: null } });
      s.kit.trace(rec.agentId, { type: 'containers_session_end', session_id: rec.id, status: 'failed', cost, error: next.error });
    });
  }

  /** Takes over a running interactive session: its lifetime timer again; its orphaned execs killed. */
  private async adopt(rec: SessionRecord, provider: ContainerProvider): Promise<void> {
    const { s } = this;
    const live = this.lifecycle.makeLive(rec, provider);
    live.containerId = rec.containerId!;
    live.resolveReady(live.containerId);
    const usage = await withTimeout(provider.usage(live.containerId), HELPER_TIMEOUT_MS, 'reading usage').catch(() => null);
    live.knownOomKills = usage?.oom_kills ?? 0;
    const now = s.now();
    for (const ex of s.sessions.activeExecs(rec.id)) {
      await withTimeout(provider.signalExec(live.containerId, `${rec.id}.${ex.id}`, 'KILL'), HELPER_TIMEOUT_MS, 'killing').catch(() => 0);
      s.tx(() => {
        const next = s.sessions.updateExec(
          rec.id,
          ex.id,
          { status: 'failed', error: 'the server restarted while it ran: its output could no longer be followed, so its process tree was killed', finishedAt: now },
          now,
        );
        s.emitExecEnd(rec.agentId, next);
      });
    }
    this.lifecycle.armLifetime(live, (rec.deadlineAt ?? now) - now);
  }

  /** Removes containers of this server that no live session owns. */
  async sweepOrphans(): Promise<number> {
    const { s } = this;
    let removed = 0;
    for (const provider of s.providers) {
      if ((await provider.health()).status !== 'available') {
        s.orphanSweepPending = true;
        continue;
      }
      for (const c of await provider.list({ 'agent9.instance': s.instanceId })) {
        const sid = c.labels['agent9.session'];
        const live = sid ? s.live.get(sid) : undefined;
        if (live && (live.containerId === undefined || live.containerId === c.containerId)) continue;
        await provider.remove(c.containerId);
        removed++;
      }
    }
    return removed;
  }

  /** Sweeps orphans left while the engine was down, once it answers again. */
  private async sweepIfPending(): Promise<void> {
    if (!this.s.orphanSweepPending) return;
    this.s.orphanSweepPending = false;
    await this.sweepOrphans().catch(() => (this.s.orphanSweepPending = true));
  }

  /** A provider's health that a submit needs: EREMOTEIO when it is unavailable. */
  async requireAvailable(provider: ContainerProvider, path: string): Promise<ProviderHealth> {
    const health = await provider.health();
    if (health.status === 'unavailable') {
      throw new FsError('EREMOTEIO', path, `provider ${provider.id} is unavailable: ${health.reason ?? 'unknown reason'}`);
    }
    await this.sweepIfPending();
    return health;
  }

  /** The health of a provider (for providers/<id>/health); an engine coming back gets its orphans swept. */
  async health(provider: ContainerProvider): Promise<ProviderHealth> {
    const h = await provider.health();
    if (h.status === 'available') await this.sweepIfPending();
    return h;
  }
}
