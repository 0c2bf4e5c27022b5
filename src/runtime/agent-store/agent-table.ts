/**
 * The agent row: config, lifecycle state, timers and every counter, one row per agent (so status, the
 * scheduler and the hot enqueue path each touch one row); creating, importing and deleting an agent.
 * Synchronous SQL, no events and no policy: callers compose these inside `storage.tx()`.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from '../storage/db.js';
import type { LifecycleState } from '../spec.js';
import type { AgentFigures, AgentRow, TickMeta, NewAgent, Counter } from './row-types.js';

/** Tables with one agent's rows besides the agent row (deleted with the agent). */
const AGENT_TABLES = ['agent_state', 'agent_kv', 'inbox', 'deadletter', 'outbox', 'goals', 'seen', 'agent_keys'] as const;

export class AgentTable {
  private readonly q;

  constructor(private readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      agent: p('SELECT * FROM agents WHERE id = ?'),
      agentExists: p('SELECT 1 FROM agents WHERE id = ?').pluck(),
      tickMeta: p('SELECT state, next_alarm, next_run, updated_at, consecutive_failures FROM agents WHERE id = ?'),
      agentList: p('SELECT id, state, created_at, updated_at FROM agents ORDER BY id'),
      agentIds: p('SELECT id FROM agents ORDER BY id').pluck(),
      insertAgent: p(`INSERT INTO agents (id, state, program, env, limits, schedule, inbox_policy, created_at, updated_at)
        VALUES (@id, @state, @program, @env, @limits, @schedule, @inbox_policy, @created_at, @created_at)`),
      setConfig: p('UPDATE agents SET program = ?, env = ?, limits = ?, schedule = ?, updated_at = ? WHERE id = ?'),
      setPolicy: p('UPDATE agents SET inbox_policy = ?, updated_at = ? WHERE id = ?'),
      setState: p('UPDATE agents SET state = ?, updated_at = ? WHERE id = ?'),
      setNextRun: p('UPDATE agents SET next_run = ? WHERE id = ?'),
      setAlarm: p('UPDATE agents SET next_alarm = ? WHERE id = ?'),
      setRetry: p('UPDATE agents SET retry_at = ? WHERE id = ?'),
      countByState: p('SELECT state, count(*) AS n FROM agents GROUP BY state'),
      agentsCreating: p("SELECT id FROM agents WHERE state = 'creating' AND retry_at IS NULL").pluck(),
      totals: p(
        `SELECT coalesce(sum(tick_count), 0) AS ticks, coalesce(sum(ticks_failed), 0) AS failed,
                coalesce(sum(queue_depth), 0) AS queued, coalesce(max(queue_depth), 0) AS deepest,
                coalesce(sum(deadletter_depth), 0) AS dead
         FROM agents`,
      ),
      figures: p(
        `SELECT id, state, tick_count, ticks_failed, tick_ms_total, queue_depth, deadletter_depth,
                enqueued, delivered, messages_out
         FROM agents ORDER BY id`,
      ),
    };
  }

  getAgent(id: string): AgentRow | undefined {
    return this.q.agent.get(id) as AgentRow | undefined;
  }

  /** What a tick's commit needs to know of the agent as it is now. */
  tickMeta(id: string): TickMeta | undefined {
    return this.q.tickMeta.get(id) as TickMeta | undefined;
  }

  hasAgent(id: string): boolean {
    return this.q.agentExists.get(id) !== undefined;
  }

  listAgents(): { id: string; state: LifecycleState; created_at: number; updated_at: number }[] {
    return this.q.agentList.all() as { id: string; state: LifecycleState; created_at: number; updated_at: number }[];
  }

  agentIds(): string[] {
    return this.q.agentIds.all() as string[];
  }

  countByState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.q.countByState.all() as { state: string; n: number }[]) out[r.state] = r.n;
    return out;
  }

  insertAgent(row: NewAgent): void {
    this.q.insertAgent.run(row);
  }

  /** Restores every column of an exported agent row. */
  importAgentRow(row: Record<string, unknown>): void {
    const cols = Object.keys(row);
    this.db
      .prepare(`INSERT INTO agents (${cols.join(', ')}) VALUES (${cols.map((c) => '@' + c).join(', ')})`)
      .run(row);
  }

  setConfig(id: string, program: string, env: string, limits: string, schedule: string, now: number): void {
    this.q.setConfig.run(program, env, limits, schedule, now, id);
  }

  setInboxPolicy(id: string, policy: string, now: number): void {
    this.q.setPolicy.run(policy, now, id);
  }

  setState(id: string, state: LifecycleState, now: number): void {
    this.q.setState.run(state, now, id);
  }

  setNextRun(id: string, at: number | null): void {
    this.q.setNextRun.run(at, id);
  }

  setAlarm(id: string, at: number | null): void {
    this.q.setAlarm.run(at, id);
  }

  setRetry(id: string, at: number | null): void {
    this.q.setRetry.run(at, id);
  }

  addCounters(id: string, counters: Partial<Record<Counter, number>>): void {
    const entries = Object.entries(counters).filter(([, n]) => n);
    if (entries.length === 0) return;
    const sets = entries.map(([k]) => `${k} = ${k} + ?`).join(', ');
    this.db.prepare(`UPDATE agents SET ${sets} WHERE id = ?`).run(...entries.map(([, n]) => n), id);
  }

  /** Records the outcome of a tick on the agent row; `fields` are column = value. */
  updateAgent(id: string, fields: Partial<Record<keyof AgentRow, number | string | null>>, add: Partial<Record<keyof AgentRow, number>> = {}): void {
    const sets: string[] = [];
    const args: (string | number | null)[] = [];
    for (const [k, v] of Object.entries(fields)) {
      sets.push(`${k} = ?`);
      args.push(v);
    }
    for (const [k, n] of Object.entries(add)) {
      if (!n) continue;
      sets.push(`${k} = ${k} + ?`);
      args.push(n);
    }
    if (sets.length === 0) return;
    args.push(id);
    this.cached(`UPDATE agents SET ${sets.join(', ')} WHERE id = ?`).run(...args);
  }

  private readonly stmtCache = new Map<string, Statement<unknown[]>>();

  private cached(sql: string): Statement<unknown[]> {
    let s = this.stmtCache.get(sql);
    if (!s) {
      if (this.stmtCache.size > 200) this.stmtCache.clear();
      s = this.db.prepare<unknown[]>(sql);
      this.stmtCache.set(sql, s);
    }
    return s;
  }

  deleteAgent(id: string): void {
    for (const t of AGENT_TABLES) this.db.prepare(`DELETE FROM ${t} WHERE agent_id = ?`).run(id);
    this.db.prepare('DELETE FROM agents WHERE id = ?').run(id);
  }

  /** Gives every per-agent row (not the agents row) of `from` to `to`: an import's staged rows become the agent's. */
  moveAgentRows(from: string, to: string): void {
    for (const t of AGENT_TABLES) this.db.prepare(`UPDATE ${t} SET agent_id = ? WHERE agent_id = ?`).run(to, from);
  }

  /** Agents left in `creating` (their first tick has not run) with no retry pending. */
  agentsCreating(): string[] {
    return this.q.agentsCreating.all() as string[];
  }

  /** Each agent's figures for the metrics: state, ticks, tick time, queue depths, envelope counters (one query). */
  figures(): AgentFigures[] {
    return this.q.figures.all() as AgentFigures[];
  }

  /** Totals over every agent, for the metrics: ticks done and failed, envelopes queued, deepest inbox, dead-lettered. */
  totals(): { ticks: number; failed: number; queued: number; deepest: number; dead: number } {
    return this.q.totals.get() as { ticks: number; failed: number; queued: number; deepest: number; dead: number };
  }
}
