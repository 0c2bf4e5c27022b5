/**
 * The scheduler decides when agents tick on their own: when envelopes arrive (schedule.on_message),
 * when an alarm a tick set is due (this also wakes a dormant agent), every schedule.interval_ms while
 * active, when a failed tick's retry time comes, and once for `init` after creation. It keeps no state
 * per idle agent: due times live in indexed columns of the agents table, and one timer waits for the
 * earliest. At most `concurrency` ticks run at once.
 */
import type { RuntimeStore } from './agent-store/index.js';
import type { TickEngine } from './tick-engine.js';
import { parseAgent } from './agents.js';
import type { Queues } from './queues.js';
import type { Storage } from './storage/index.js';
import type { TickCause } from './spec.js';

/** The shortest wait of the timer: bounds how often due-but-busy work is re-checked. */
const MIN_TIMER_MS = 20;

export interface SchedulerOptions {
  /** Ticks running at once over all agents (default 4). */
  concurrency?: number;
  /** Longest sleep between checks of the due times (default 60 s). */
  maxSleepMs?: number;
}

export class Scheduler {
  private readonly ready = new Set<string>();
  private readonly again = new Set<string>();
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private drainQueued = false;
  private rearmQueued = false;
  private stopped = true;
  private readonly concurrency: number;
  private readonly maxSleepMs: number;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(
    private readonly storage: Storage,
    private readonly store: RuntimeStore,
    private readonly engine: TickEngine,
    private readonly queues: Queues,
    options: SchedulerOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 4;
    this.maxSleepMs = options.maxSleepMs ?? 60_000;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const id of this.store.agentsWithQueue()) this.ready.add(id);
    for (const id of this.creatingAgents()) this.ready.add(id);
    this.onTimer();
  }

  private creatingAgents(): string[] {
    return this.store.agentsCreating();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.ready.clear();
    this.again.clear();
  }

  get isRunning(): boolean {
    return !this.stopped;
  }

  /** Counts for /runtime/status. */
  stats(): { ready: number; running: number; next_due: number | null } {
    return { ready: this.ready.size, running: this.running, next_due: Number.isFinite(this.timerAt) ? this.timerAt : null };
  }

  /** The agent may have work: look at it soon. */
  poke(agentId: string): void {
    if (this.stopped) return;
    this.ready.add(agentId);
    this.scheduleDrain();
  }

  /** Due times changed (a tick or a config edit set an alarm, interval or retry): re-arm the timer. */
  rearm(): void {
    if (this.stopped || this.rearmQueued) return;
    this.rearmQueued = true;
    setImmediate(() => {
      this.rearmQueued = false;
      this.armTimer();
    });
  }

  /** A tick finished (scheduled or not): run what waited for it, re-arm for alarms it set. */
  tickDone(agentId: string): void {
    if (this.stopped) return;
    if (this.again.delete(agentId)) this.poke(agentId);
    this.rearm();
  }

  forget(agentId: string): void {
    this.ready.delete(agentId);
    this.again.delete(agentId);
  }

  /** Resolves when nothing is ready or running (tests, shutdown). */
  idle(): Promise<void> {
    if (this.ready.size === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private scheduleDrain(): void {
    if (this.drainQueued) return;
    this.drainQueued = true;
    setImmediate(() => {
      this.drainQueued = false;
      this.drain();
    });
  }

  private armTimer(): void {
    if (this.stopped) return;
    const due = this.store.nextDue();
    const now = Date.now();
    // Work that is due but cannot run yet (its agent is mid-tick) is looked at again shortly, not in a spin.
    const at = Math.max(Math.min(due ?? Infinity, now + this.maxSleepMs), now + MIN_TIMER_MS);
    if (this.timer && at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.onTimer(), at - now);
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.stopped) return;
    const now = Date.now();
    for (const r of this.store.dueAlarms(now)) this.ready.add(r.id);
    for (const r of this.store.dueRuns(now)) this.ready.add(r.id);
    for (const id of this.store.dueRetries(now)) this.ready.add(id);
    this.drain();
    this.armTimer();
  }

  /** What tick, if any, an agent should run now. */
  private dueCause(agentId: string, now: number): TickCause | undefined {
    const row = this.store.getAgent(agentId);
    if (!row) return undefined;
    if (row.state === 'terminated' || row.state === 'failed') return undefined;
    if (row.retry_at !== null && row.retry_at > now) return undefined;
    // A retry time that has come is used up now; a tick that fails again sets a new one.
    const retryDue = row.retry_at !== null;
    if (retryDue) this.store.setRetry(agentId, null);
    if (row.next_alarm !== null && row.next_alarm <= now) {
      if (row.state === 'dormant') this.storage.tx(() => this.queues.wake(agentId, 'alarm'));
      return { type: 'alarm', scheduled_at: row.next_alarm };
    }
    if (row.state === 'dormant') return undefined;
    const agent = parseAgent(row);
    if (row.state === 'creating') return { type: 'init' };
    if (row.next_run !== null && row.next_run <= now && agent.schedule.interval_ms) {
      // The next run is counted from now, so a long pause does not cause a burst of catch-up ticks.
      this.store.setNextRun(agentId, now + agent.schedule.interval_ms);
      return { type: 'schedule', interval_ms: agent.schedule.interval_ms, scheduled_at: row.next_run };
    }
    if (row.queue_depth > 0 && (agent.schedule.on_message || retryDue)) return { type: 'message' };
    return undefined;
  }

  private drain(): void {
    while (!this.stopped && this.running < this.concurrency && this.ready.size > 0) {
      const id = this.ready.values().next().value as string;
      this.ready.delete(id);
      if (this.engine.busy(id)) {
        this.again.add(id);
        continue;
      }
      const cause = this.dueCause(id, Date.now());
      if (!cause) continue;
      this.running++;
      this.engine
        .tick(id, cause, '/ctl')
        .then(
          (report) => {
            // More work waiting (a full batch, a retry): look again.
            if (report.ok && !report.skipped) this.ready.add(id);
          },
          () => undefined,
        )
        .finally(() => {
          this.running--;
          if (this.again.delete(id)) this.ready.add(id);
          this.armTimer();
          if (this.ready.size > 0) this.scheduleDrain();
          else if (this.running === 0) this.notifyIdle();
        });
    }
    if (this.ready.size === 0 && this.running === 0) this.notifyIdle();
  }

  private notifyIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
