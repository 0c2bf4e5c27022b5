/**
 * The inbox: queued envelopes keyed (agent_id, seq), and the inbox counters on the agent row that the
 * enqueue path reserves a slot with.
 * Synchronous SQL, no events and no policy: callers compose these inside `storage.tx()`.
 */
import type { Db } from '../storage/db.js';
import type { InboxMeta, QueuedRow } from './row-types.js';

export class InboxTable {
  private readonly q;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      inboxMeta: p('SELECT state, inbox_policy, queue_depth, inbox_seq, inbox_version, inbox_mtime FROM agents WHERE id = ?'),
      inboxCounters: p(`UPDATE agents SET queue_depth = ?, inbox_seq = ?, inbox_version = ?, inbox_mtime = ?, enqueued = enqueued + ? WHERE id = ?`),
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
      agentsWithQueue: p("SELECT id FROM agents WHERE queue_depth > 0 AND state IN ('creating', 'active', 'dormant')").pluck(),
    };
  }

  /** What the enqueue path and the inbox file's stat need, without reading the whole row. */
  inboxMeta(id: string): InboxMeta | undefined {
    return this.q.inboxMeta.get(id) as InboxMeta | undefined;
  }

  /** Writes the inbox counters a batch of enqueues computed (see Queues). */
  setInboxCounters(id: string, meta: InboxMeta, enqueued: number): void {
    this.q.inboxCounters.run(meta.queue_depth, meta.inbox_seq, meta.inbox_version, meta.inbox_mtime, enqueued, id);
  }

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
}
