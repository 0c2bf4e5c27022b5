/**
 * What is due: alarms, interval runs and retries of agents that can tick, and the earliest of them.
 * Synchronous SQL, no events and no policy: callers compose these inside `storage.tx()`.
 */
import type { Db } from '../storage/db.js';

export class ScheduleTable {
  private readonly q;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      dueAlarms: p("SELECT id, next_alarm FROM agents WHERE next_alarm IS NOT NULL AND next_alarm <= ? AND state IN ('creating', 'active', 'dormant')"),
      dueRuns: p("SELECT id, next_run FROM agents WHERE next_run IS NOT NULL AND next_run <= ? AND state IN ('creating', 'active')"),
      dueRetries: p("SELECT id FROM agents WHERE retry_at IS NOT NULL AND retry_at <= ? AND state IN ('creating', 'active', 'dormant')").pluck(),
      nextDue: p(`SELECT min(t) FROM (
          SELECT min(next_alarm) AS t FROM agents WHERE next_alarm IS NOT NULL AND state IN ('creating', 'active', 'dormant')
          UNION ALL SELECT min(next_run) FROM agents WHERE next_run IS NOT NULL AND state IN ('creating', 'active')
          UNION ALL SELECT min(retry_at) FROM agents WHERE retry_at IS NOT NULL AND state IN ('creating', 'active', 'dormant'))`).pluck(),
    };
  }

  dueAlarms(now: number): { id: string; next_alarm: number }[] {
    return this.q.dueAlarms.all(now) as { id: string; next_alarm: number }[];
  }

  dueRuns(now: number): { id: string; next_run: number }[] {
    return this.q.dueRuns.all(now) as { id: string; next_run: number }[];
  }

  dueRetries(now: number): string[] {
    return this.q.dueRetries.all(now) as string[];
  }

  /** The earliest alarm, interval run or retry of any agent that can tick; undefined when none. */
  nextDue(): number | undefined {
    return (this.q.nextDue.get() as number | null) ?? undefined;
  }
}
