/**
 * The runtime's narrow store: domain operations over SQL, synchronous, no events and no policy. Callers
 * (queues, tick engine, registry) compose them inside `storage.tx()` so that a change commits together
 * with its events. Another backend implements the same methods.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from '../storage/db.js';
import type { LifecycleState } from '../spec.js';

export interface AgentRow {
  id: string;
  state: LifecycleState;
  program: string;
  env: string;
  limits: string;
  schedule: string;
  inbox_policy: string;
  created_at: number;
  updated_at: number;
  last_tick_at: number | null;
  last_tick_cause: string | null;
  last_tick_ms: number | null;
  last_error: string | null;
  tick_count: number;
  ticks_failed: number;
  consecutive_failures: number;
  tick_ms_total: number;
  queue_depth: number;
  deadletter_depth: number;
  inbox_seq: number;
  inbox_version: number;
  inbox_mtime: number;
  deadletter_seq: number;
  outbox_seq: number;
  seen_seq: number;
  enqueued: number;
  delivered: number;
  duplicates: number;
  dropped: number;
  deadlettered: number;
  discarded: number;
  rejected: number;
  replayed: number;
  messages_out: number;
  next_alarm: number | null;
  next_run: number | null;
  retry_at: number | null;
}

export interface TickMeta {
  state: LifecycleState;
  next_alarm: number | null;
  next_run: number | null;
  updated_at: number;
  consecutive_failures: number;
}

export interface InboxMeta {
  state: LifecycleState;
  inbox_policy: string;
  queue_depth: number;
  inbox_seq: number;
  inbox_version: number;
  inbox_mtime: number;
}

export interface NewAgent {
  id: string;
  state: LifecycleState;
  program: string;
  env: string;
  limits: string;
  schedule: string;
  inbox_policy: string;
  created_at: number;
}

export interface QueuedRow {
  seq: number;
  env_id: string;
  sender: string;
  created_at: number;
  body: string;
  attempts: number;
  last_error: string | null;
}

export interface DeadRow {
  seq: number;
  env_id: string;
  body: string;
  reason: string;
  error: string | null;
  attempts: number;
  at: number;
}

export interface OutboxRow {
  seq: number;
  env_id: string;
  body: string;
  created_at: number;
}

export interface GoalRow {
  goal_id: string;
  body: string;
  version: number;
  created_at: number;
  updated_at: number;
}

export interface KeyRow {
  agent_id: string;
  pubkey: string;
  sealed: string;
  key_id: string;
  created_at: number;
}

/** Counter columns a tick or a queue operation may add to. */
export type Counter =
  | 'enqueued'
  | 'delivered'
  | 'duplicates'
  | 'dropped'
  | 'deadlettered'
  | 'discarded'
  | 'rejected'
  | 'replayed'
  | 'messages_out';

const AGENT_TABLES = ['agent_state', 'agent_kv', 'inbox', 'deadletter', 'outbox', 'goals', 'seen', 'agent_keys'] as const;

export class RuntimeStore {
  private readonly q;

  constructor(readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      agent: p('SELECT * FROM agents WHERE id = ?'),
      agentExists: p('SELECT 1 FROM agents WHERE id = ?').pluck(),
      tickMeta: p('SELECT state, next_alarm, next_run, updated_at, consecutive_failures FROM agents WHERE id = ?'),
      inboxMeta: p('SELECT state, inbox_policy, queue_depth, inbox_seq, inbox_version, inbox_mtime FROM agents WHERE id = ?'),
      inboxCounters: p(`UPDATE agents SET queue_depth = ?, inbox_seq = ?, inbox_version = ?, inbox_mtime = ?, enqueued = enqueued + ? WHERE id = ?`),
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
      // inbox
      reserveSlot: p(`UPDATE agents SET queue_depth = queue_depth + 1, inbox_seq = inbox_seq + 1,
          inbox_version = inbox_version + 1, inbox_mtime = ?, enqueued = enqueued + 1
        WHERE id = ? AND queue_depth < ? RETURNING inbox_seq, inbox_version`),
      insertInbox: p(`INSERT INTO inbox (agent_id, seq, env_id, sender, created_at, body, attempts, last_error)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, env_id) DO NOTHING`),
      inboxHead: p('SELECT seq, env_id, sender, created_at, body, attempts, last_error FROM inbox WHERE agent_id = ? ORDER BY seq LIMIT ?'),
      inboxOne: p('SELECT seq, env_id, sender, created_at, body, attempts, last_error FROM inbox WHERE agent_id = ? AND env_id = ?'),
      inboxHas: p('SELECT 1 FROM inbox WHERE agent_id = ? AND env_id = ?').pluck(),
      inboxDelete: p('DELETE FROM inbox WHERE agent_id = ? AND seq = ?'),
      inboxOldest: p('SELECT seq, env_id, sender, created_at, body, attempts, last_error FROM inbox WHERE agent_id = ? ORDER BY seq LIMIT 1'),
      inboxFail: p('UPDATE inbox SET attempts = attempts + 1, last_error = ? WHERE agent_id = ? AND seq = ? RETURNING attempts'),
      inboxChanged: p(`UPDATE agents SET queue_depth = queue_depth - ?, inbox_version = inbox_version + 1, inbox_mtime = ?
        WHERE id = ? RETURNING inbox_version`),
      agentsCreating: p("SELECT id FROM agents WHERE state = 'creating' AND retry_at IS NULL").pluck(),
      totals: p(
        `SELECT coalesce(sum(tick_count), 0) AS ticks, coalesce(sum(ticks_failed), 0) AS failed,
                coalesce(sum(queue_depth), 0) AS queued, coalesce(max(queue_depth), 0) AS deepest,
                coalesce(sum(deadletter_depth), 0) AS dead
         FROM agents`,
      ),
      agentsWithQueue: p("SELECT id FROM agents WHERE queue_depth > 0 AND state IN ('creating', 'active', 'dormant')").pluck(),
      // deadletter
      dlInsert: p(`INSERT INTO deadletter (agent_id, seq, env_id, body, reason, error, attempts, at)
        VALUES (?, (SELECT deadletter_seq + 1 FROM agents WHERE id = ?), ?, ?, ?, ?, ?, ?)
        ON CONFLICT (agent_id, env_id) DO UPDATE SET body = excluded.body, reason = excluded.reason,
          error = excluded.error, attempts = excluded.attempts, at = excluded.at, seq = excluded.seq`),
      dlBump: p(`UPDATE agents SET deadletter_seq = deadletter_seq + 1,
        deadletter_depth = (SELECT count(*) FROM deadletter WHERE agent_id = ?) WHERE id = ?`),
      dlList: p('SELECT seq, env_id, body, reason, error, attempts, at FROM deadletter WHERE agent_id = ? ORDER BY seq'),
      dlOne: p('SELECT seq, env_id, body, reason, error, attempts, at FROM deadletter WHERE agent_id = ? AND env_id = ?'),
      dlOldest: p('SELECT seq, env_id, body, reason, error, attempts, at FROM deadletter WHERE agent_id = ? ORDER BY seq LIMIT 1'),
      dlDelete: p('DELETE FROM deadletter WHERE agent_id = ? AND env_id = ?'),
      dlPurge: p('DELETE FROM deadletter WHERE agent_id = ?'),
      dlDepth: p('UPDATE agents SET deadletter_depth = (SELECT count(*) FROM deadletter WHERE agent_id = ?) WHERE id = ? RETURNING deadletter_depth').pluck(),
      // outbox
      outInsert: p(`INSERT INTO outbox (agent_id, seq, env_id, body, created_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (agent_id, env_id) DO NOTHING`),
      outSeq: p('UPDATE agents SET outbox_seq = outbox_seq + ?, messages_out = messages_out + ? WHERE id = ? RETURNING outbox_seq').pluck(),
      outPrune: p('DELETE FROM outbox WHERE agent_id = ? AND seq <= ?'),
      outList: p('SELECT seq, env_id, body, created_at FROM outbox WHERE agent_id = ? ORDER BY seq'),
      outOne: p('SELECT seq, env_id, body, created_at FROM outbox WHERE agent_id = ? AND env_id = ?'),
      // goals
      goalList: p('SELECT goal_id, body, version, created_at, updated_at FROM goals WHERE agent_id = ? ORDER BY goal_id'),
      goalOne: p('SELECT goal_id, body, version, created_at, updated_at FROM goals WHERE agent_id = ? AND goal_id = ?'),
      goalPut: p(`INSERT INTO goals (agent_id, goal_id, body, version, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)
        ON CONFLICT (agent_id, goal_id) DO UPDATE SET body = excluded.body, version = version + 1, updated_at = excluded.updated_at
        RETURNING goal_id, body, version, created_at, updated_at`),
      goalDelete: p('DELETE FROM goals WHERE agent_id = ? AND goal_id = ?'),
      // state and kv
      stateGet: p('SELECT version, data FROM agent_state WHERE agent_id = ?'),
      statePut: p(`INSERT INTO agent_state (agent_id, version, data) VALUES (?, 1, ?)
        ON CONFLICT (agent_id) DO UPDATE SET version = version + 1, data = excluded.data`),
      stateImport: p('INSERT OR REPLACE INTO agent_state (agent_id, version, data) VALUES (?, ?, ?)'),
      kvGet: p('SELECT value FROM agent_kv WHERE agent_id = ? AND key = ?').pluck(),
      kvSet: p('INSERT INTO agent_kv (agent_id, key, value) VALUES (?, ?, ?) ON CONFLICT (agent_id, key) DO UPDATE SET value = excluded.value'),
      kvDelete: p('DELETE FROM agent_kv WHERE agent_id = ? AND key = ?'),
      kvList: p('SELECT key, value FROM agent_kv WHERE agent_id = ? ORDER BY key'),
      // seen cache
      seenHas: p('SELECT 1 FROM seen WHERE agent_id = ? AND env_id = ?').pluck(),
      seenInsert: p('INSERT OR REPLACE INTO seen (agent_id, env_id, seq) VALUES (?, ?, ?)'),
      seenSeq: p('UPDATE agents SET seen_seq = seen_seq + ? WHERE id = ? RETURNING seen_seq').pluck(),
      seenPrune: p('DELETE FROM seen WHERE agent_id = ? AND seq <= ?'),
      seenList: p('SELECT env_id FROM seen WHERE agent_id = ? ORDER BY seq').pluck(),
      // keys
      keyGet: p('SELECT agent_id, pubkey, sealed, key_id, created_at FROM agent_keys WHERE agent_id = ?'),
      keyPut: p('INSERT OR REPLACE INTO agent_keys (agent_id, pubkey, sealed, key_id, created_at) VALUES (?, ?, ?, ?, ?)'),
      // scheduling
      dueAlarms: p("SELECT id, next_alarm FROM agents WHERE next_alarm IS NOT NULL AND next_alarm <= ? AND state IN ('creating', 'active', 'dormant')"),
      dueRuns: p("SELECT id, next_run FROM agents WHERE next_run IS NOT NULL AND next_run <= ? AND state IN ('creating', 'active')"),
      dueRetries: p("SELECT id FROM agents WHERE retry_at IS NOT NULL AND retry_at <= ? AND state IN ('creating', 'active', 'dormant')").pluck(),
      nextDue: p(`SELECT min(t) FROM (
          SELECT min(next_alarm) AS t FROM agents WHERE next_alarm IS NOT NULL AND state IN ('creating', 'active', 'dormant')
          UNION ALL SELECT min(next_run) FROM agents WHERE next_run IS NOT NULL AND state IN ('creating', 'active')
          UNION ALL SELECT min(retry_at) FROM agents WHERE retry_at IS NOT NULL AND state IN ('creating', 'active', 'dormant'))`).pluck(),
    };
  }

  // --- agents ---

  getAgent(id: string): AgentRow | undefined {
    return this.q.agent.get(id) as AgentRow | undefined;
  }

  /** What the enqueue path and the inbox file's stat need, without reading the whole row. */
  inboxMeta(id: string): InboxMeta | undefined {
    return this.q.inboxMeta.get(id) as InboxMeta | undefined;
  }

  /** What a tick's commit needs to know of the agent as it is now. */
  tickMeta(id: string): TickMeta | undefined {
    return this.q.tickMeta.get(id) as TickMeta | undefined;
  }

  /** Writes the inbox counters a batch of enqueues computed (see Queues). */
  setInboxCounters(id: string, meta: InboxMeta, enqueued: number): void {
    this.q.inboxCounters.run(meta.queue_depth, meta.inbox_seq, meta.inbox_version, meta.inbox_mtime, enqueued, id);
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

  // --- inbox ---

  /** Takes a slot for one more envelope; undefined when the inbox holds `maxDepth` already. */
  reserveInboxSlot(agentId: string, maxDepth: number, now: number): { seq: number; version: number } | undefined {
    const r = this.q.reserveSlot.get(now, agentId, maxDepth) as { inbox_seq: number; inbox_version: number } | undefined;
    return r && { seq: r.inbox_seq, version: r.inbox_version };
  }

  /** False when an envelope with this id is already queued. */
  insertInbox(agentId: string, seq: number, envId: string, sender: string, createdAt: number, body: string, attempts = 0, lastError: string | null = null): boolean {
    return this.q.insertInbox.run(agentId, seq, envId, sender, createdAt, body, attempts, lastError).changes === 1;
  }

  inboxHead(agentId: string, limit: number): QueuedRow[] {
    return this.q.inboxHead.all(agentId, limit) as QueuedRow[];
  }

  inboxOne(agentId: string, envId: string): QueuedRow | undefined {
    return this.q.inboxOne.get(agentId, envId) as QueuedRow | undefined;
  }

  inboxHas(agentId: string, envId: string): boolean {
    return this.q.inboxHas.get(agentId, envId) !== undefined;
  }

  inboxOldest(agentId: string): QueuedRow | undefined {
    return this.q.inboxOldest.get(agentId) as QueuedRow | undefined;
  }

  /** Removes queued envelopes by seq; returns how many were still there. */
  inboxRemove(agentId: string, seqs: readonly number[]): number {
    let n = 0;
    for (const seq of seqs) n += this.q.inboxDelete.run(agentId, seq).changes;
    return n;
  }

  /** Records a change of the inbox on the agent row (depth goes down by `removed`); returns the new version. */
  inboxChanged(agentId: string, removed: number, now: number): number {
    const r = this.q.inboxChanged.get(removed, now, agentId) as { inbox_version: number } | undefined;
    return r?.inbox_version ?? 0;
  }

  /** Counts one more failed attempt; returns the attempts so far. */
  inboxFail(agentId: string, seq: number, error: string): number {
    const r = this.q.inboxFail.get(error, agentId, seq) as { attempts: number } | undefined;
    return r?.attempts ?? 0;
  }

  agentsWithQueue(): string[] {
    return this.q.agentsWithQueue.all() as string[];
  }

  /** Agents left in `creating` (their first tick has not run) with no retry pending. */
  agentsCreating(): string[] {
    return this.q.agentsCreating.all() as string[];
  }

  /** Totals over every agent, for the metrics: ticks done and failed, envelopes queued, deepest inbox, dead-lettered. */
  totals(): { ticks: number; failed: number; queued: number; deepest: number; dead: number } {
    return this.q.totals.get() as { ticks: number; failed: number; queued: number; deepest: number; dead: number };
  }

  /** Restores an exported deadletter entry (import). */
  deadletterImport(agentId: string, seq: number, envId: string, body: string, reason: string, error: string | null, attempts: number, at: number): void {
    this.db
      .prepare('INSERT INTO deadletter (agent_id, seq, env_id, body, reason, error, attempts, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(agentId, seq, envId, body, reason, error, attempts, at);
  }

  /** Restores an exported outbox envelope (import). */
  outboxImport(agentId: string, seq: number, envId: string, body: string, createdAt: number): void {
    this.db.prepare('INSERT INTO outbox (agent_id, seq, env_id, body, created_at) VALUES (?, ?, ?, ?, ?)').run(agentId, seq, envId, body, createdAt);
  }

  /** Restores the seen cache in its order (import). */
  seenImport(agentId: string, envIds: readonly string[]): void {
    const insert = this.db.prepare('INSERT INTO seen (agent_id, env_id, seq) VALUES (?, ?, ?)');
    envIds.forEach((envId, i) => insert.run(agentId, envId, i + 1));
  }

  // --- deadletter ---

  deadletterAdd(agentId: string, envId: string, body: string, reason: string, error: string | null, attempts: number, at: number): number {
    this.q.dlInsert.run(agentId, agentId, envId, body, reason, error, attempts, at);
    this.q.dlBump.run(agentId, agentId);
    return this.deadletterDepth(agentId);
  }

  deadletterDepth(agentId: string): number {
    return (this.getAgent(agentId)?.deadletter_depth ?? 0);
  }

  deadletterList(agentId: string): DeadRow[] {
    return this.q.dlList.all(agentId) as DeadRow[];
  }

  deadletterOne(agentId: string, envId: string): DeadRow | undefined {
    return this.q.dlOne.get(agentId, envId) as DeadRow | undefined;
  }

  deadletterOldest(agentId: string): DeadRow | undefined {
    return this.q.dlOldest.get(agentId) as DeadRow | undefined;
  }

  deadletterRemove(agentId: string, envId: string): boolean {
    const ok = this.q.dlDelete.run(agentId, envId).changes === 1;
    if (ok) this.q.dlDepth.get(agentId, agentId);
    return ok;
  }

  deadletterPurge(agentId: string): number {
    const n = this.q.dlPurge.run(agentId).changes;
    this.q.dlDepth.get(agentId, agentId);
    return n;
  }

  // --- outbox ---

  /** Appends envelopes (already serialised with their ids); keeps the newest `max`. Returns their seqs. */
  outboxAppend(agentId: string, items: readonly { id: string; body: string; created_at: number }[], max: number): number[] {
    if (items.length === 0) return [];
    const last = this.q.outSeq.get(items.length, items.length, agentId) as number;
    const first = last - items.length + 1;
    items.forEach((it, i) => this.q.outInsert.run(agentId, first + i, it.id, it.body, it.created_at));
    if (last > max) this.q.outPrune.run(agentId, last - max);
    return items.map((_, i) => first + i);
  }

  outboxList(agentId: string): OutboxRow[] {
    return this.q.outList.all(agentId) as OutboxRow[];
  }

  outboxOne(agentId: string, envId: string): OutboxRow | undefined {
    return this.q.outOne.get(agentId, envId) as OutboxRow | undefined;
  }

  // --- goals ---

  goalList(agentId: string): GoalRow[] {
    return this.q.goalList.all(agentId) as GoalRow[];
  }

  goalOne(agentId: string, goalId: string): GoalRow | undefined {
    return this.q.goalOne.get(agentId, goalId) as GoalRow | undefined;
  }

  goalPut(agentId: string, goalId: string, body: string, now: number): GoalRow {
    return this.q.goalPut.get(agentId, goalId, body, now, now) as GoalRow;
  }

  goalImport(agentId: string, row: GoalRow): void {
    this.db
      .prepare('INSERT OR REPLACE INTO goals (agent_id, goal_id, body, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(agentId, row.goal_id, row.body, row.version, row.created_at, row.updated_at);
  }

  goalDelete(agentId: string, goalId: string): boolean {
    return this.q.goalDelete.run(agentId, goalId).changes === 1;
  }

  // --- program state and kv ---

  getState(agentId: string): { version: number; data: string } | undefined {
    return this.q.stateGet.get(agentId) as { version: number; data: string } | undefined;
  }

  putState(agentId: string, data: string): void {
    this.q.statePut.run(agentId, data);
  }

  importState(agentId: string, version: number, data: string): void {
    this.q.stateImport.run(agentId, version, data);
  }

  kvGet(agentId: string, key: string): string | undefined {
    return this.q.kvGet.get(agentId, key) as string | undefined;
  }

  kvSet(agentId: string, key: string, value: string): void {
    this.q.kvSet.run(agentId, key, value);
  }

  kvDelete(agentId: string, key: string): void {
    this.q.kvDelete.run(agentId, key);
  }

  kvList(agentId: string): { key: string; value: string }[] {
    return this.q.kvList.all(agentId) as { key: string; value: string }[];
  }

  // --- seen cache ---

  seen(agentId: string, envId: string): boolean {
    return this.q.seenHas.get(agentId, envId) !== undefined;
  }

  /** Remembers envelope ids, oldest first, keeping the newest `max`. */
  markSeen(agentId: string, envIds: readonly string[], max: number): void {
    if (envIds.length === 0) return;
    const last = this.q.seenSeq.get(envIds.length, agentId) as number;
    const first = last - envIds.length + 1;
    envIds.forEach((id, i) => this.q.seenInsert.run(agentId, id, first + i));
    if (last > max) this.q.seenPrune.run(agentId, last - max);
  }

  seenIds(agentId: string): string[] {
    return this.q.seenList.all(agentId) as string[];
  }

  // --- identity keys ---

  getKey(agentId: string): KeyRow | undefined {
    return this.q.keyGet.get(agentId) as KeyRow | undefined;
  }

  putKey(row: KeyRow): void {
    this.q.keyPut.run(row.agent_id, row.pubkey, row.sealed, row.key_id, row.created_at);
  }

  // --- scheduling ---

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
