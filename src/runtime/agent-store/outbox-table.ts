/**
 * The outbox: what a program sent, newest `outbox_max` kept.
 * Synchronous SQL, no events and no policy: callers compose these inside `storage.tx()`.
 */
import type { Db } from '../storage/db.js';
import type { OutboxRow } from './row-types.js';

export class OutboxTable {
  private readonly q;

  constructor(private readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      outInsert: p(`INSERT INTO outbox (agent_id, seq, env_id, body, created_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (agent_id, env_id) DO NOTHING`),
      outSeq: p('UPDATE agents SET outbox_seq = outbox_seq + ?, messages_out = messages_out + ? WHERE id = ? RETURNING outbox_seq').pluck(),
      outPrune: p('DELETE FROM outbox WHERE agent_id = ? AND seq <= ?'),
      outList: p('SELECT seq, env_id, body, created_at FROM outbox WHERE agent_id = ? ORDER BY seq'),
      outOne: p('SELECT seq, env_id, body, created_at FROM outbox WHERE agent_id = ? AND env_id = ?'),
    };
  }

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

  /** Restores an exported outbox envelope (import). */
  outboxImport(agentId: string, seq: number, envId: string, body: string, createdAt: number): void {
    this.db.prepare('INSERT INTO outbox (agent_id, seq, env_id, body, created_at) VALUES (?, ?, ?, ?, ?)').run(agentId, seq, envId, body, createdAt);
  }
}
