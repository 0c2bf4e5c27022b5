/**
 * A program's state between ticks (one versioned document) and its key-value store.
 * Synchronous SQL, no events and no policy: callers compose these inside `storage.tx()`.
 */
import type { Db } from '../storage/db.js';

export class ProgramStateTable {
  private readonly q;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      stateGet: p('SELECT version, data FROM agent_state WHERE agent_id = ?'),
      statePut: p(`INSERT INTO agent_state (agent_id, version, data) VALUES (?, 1, ?)
        ON CONFLICT (agent_id) DO UPDATE SET version = version + 1, data = excluded.data`),
      stateImport: p('INSERT OR REPLACE INTO agent_state (agent_id, version, data) VALUES (?, ?, ?)'),
      kvGet: p('SELECT value FROM agent_kv WHERE agent_id = ? AND key = ?').pluck(),
      kvSet: p('INSERT INTO agent_kv (agent_id, key, value) VALUES (?, ?, ?) ON CONFLICT (agent_id, key) DO UPDATE SET value = excluded.value'),
      kvDelete: p('DELETE FROM agent_kv WHERE agent_id = ? AND key = ?'),
      kvList: p('SELECT key, value FROM agent_kv WHERE agent_id = ? ORDER BY key'),
    };
  }

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
}
