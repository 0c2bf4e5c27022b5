/**
 * Notices for an agent's next tick: what it learns besides its inbox (a delivery of its outbox that was
 * refused). Each is one trigger, kept until a tick that received it commits; `agents.notices` counts
 * them so the scheduler knows the agent has work. Synchronous SQL: callers compose it inside `storage.tx()`.
 */
import type { Db } from '../storage/db.js';

export interface NoticeRow {
  seq: number;
  body: string;
}

export class NoticeTable {
  private readonly q;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      nextSeq: p('SELECT coalesce(max(seq), 0) + 1 FROM agent_notices WHERE agent_id = ?').pluck(),
      insert: p('INSERT INTO agent_notices (agent_id, seq, body) VALUES (?, ?, ?)'),
      count: p('UPDATE agents SET notices = notices + ? WHERE id = ?'),
      list: p('SELECT seq, body FROM agent_notices WHERE agent_id = ? ORDER BY seq LIMIT ?'),
      remove: p('DELETE FROM agent_notices WHERE agent_id = ? AND seq <= ?'),
    };
  }

  /** Adds a notice (a trigger, as JSON) for the agent's next tick. */
  noticeAdd(agentId: string, body: string): void {
    this.q.insert.run(agentId, this.q.nextSeq.get(agentId) as number, body);
    this.q.count.run(1, agentId);
  }

  /** The oldest `limit` notices of the agent. */
  noticesOf(agentId: string, limit: number): NoticeRow[] {
    return this.q.list.all(agentId, limit) as NoticeRow[];
  }

  /** A tick that received the notices up to `seq` committed: they are gone. */
  noticesDone(agentId: string, seq: number, count: number): void {
    this.q.remove.run(agentId, seq);
    this.q.count.run(-count, agentId);
  }
}
