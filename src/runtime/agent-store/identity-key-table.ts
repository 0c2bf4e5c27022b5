/**
 * Agents' identity keys, sealed with the server key (keys.ts seals and opens them).
 * Synchronous SQL, no events and no policy: callers compose these inside `storage.tx()`.
 */
import type { Db } from '../storage/db.js';
import type { KeyRow } from './row-types.js';

export class IdentityKeyTable {
  private readonly q;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      keyGet: p('SELECT agent_id, pubkey, sealed, key_id, created_at FROM agent_keys WHERE agent_id = ?'),
      keyPut: p('INSERT OR REPLACE INTO agent_keys (agent_id, pubkey, sealed, key_id, created_at) VALUES (?, ?, ?, ?, ?)'),
    };
  }

  getKey(agentId: string): KeyRow | undefined {
    return this.q.keyGet.get(agentId) as KeyRow | undefined;
  }

  putKey(row: KeyRow): void {
    this.q.keyPut.run(row.agent_id, row.pubkey, row.sealed, row.key_id, row.created_at);
  }
}
