/**
 * The deadletter: envelopes that used up their attempts or were refused, with why; its depth is kept on
 * the agent row.
 * Synchronous SQL, no events and no policy: callers compose these inside `storage.tx()`.
 */
import type { Db } from '../storage/db.js';
import type { DeadRow } from './row-types.js';

export class DeadletterTable {
  private readonly q;

  constructor(private readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
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
      depth: p('SELECT deadletter_depth FROM agents WHERE id = ?').pluck(),
    };
  }

  deadletterAdd(agentId: string, envId: string, body: string, reason: string, error: string | null, attempts: number, at: number): number {
    this.q.dlInsert.run(agentId, agentId, envId, body, reason, error, attempts, at);
    this.q.dlBump.run(agentId, agentId);
    return this.deadletterDepth(agentId);
  }

  deadletterDepth(agentId: string): number {
    return (this.q.depth.get(agentId) as number | undefined) ?? 0;
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

  /** Restores an exported deadletter entry (import). */
  deadletterImport(agentId: string, seq: number, envId: string, body: string, reason: string, error: string | null, attempts: number, at: number): void {
    this.db
      .prepare('INSERT INTO deadletter (agent_id, seq, env_id, body, reason, error, attempts, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(agentId, seq, envId, body, reason, error, attempts, at);
  }
}
