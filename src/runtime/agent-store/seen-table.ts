/**
 * The seen cache: the newest `seen_max` envelope ids an agent got, for deduplication.
 * Synchronous SQL, no events and no policy: callers compose these inside `storage.tx()`.
 */
import type { Db } from '../storage/db.js';

export class SeenTable {
  private readonly q;

  constructor(private readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      seenHas: p('SELECT 1 FROM seen WHERE agent_id = ? AND env_id = ?').pluck(),
      seenInsert: p('INSERT OR REPLACE INTO seen (agent_id, env_id, seq) VALUES (?, ?, ?)'),
      seenSeq: p('UPDATE agents SET seen_seq = seen_seq + ? WHERE id = ? RETURNING seen_seq').pluck(),
      seenPrune: p('DELETE FROM seen WHERE agent_id = ? AND seq <= ?'),
      seenList: p('SELECT env_id FROM seen WHERE agent_id = ? ORDER BY seq').pluck(),
    };
  }

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

  /** Restores the seen cache in its order (import). */
  seenImport(agentId: string, envIds: readonly string[]): void {
    const insert = this.db.prepare('INSERT INTO seen (agent_id, env_id, seq) VALUES (?, ?, ?)');
    envIds.forEach((envId, i) => insert.run(agentId, envId, i + 1));
  }
}
