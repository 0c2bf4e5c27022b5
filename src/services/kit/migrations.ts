/** Tables every capability has the same shape of: one policy row per agent (the kit's PolicyStore). */
import type { Migration } from '../../runtime/storage/db.js';

/**
 * The migration that makes a capability's policy table: `(agent_id, policy, version, updated_at)`,
 * `policy` being the JSON an admin wrote. `withoutRowid` as the table was first made (a migration once
 * applied never changes).
 */
export function policyTableMigration(version: number, name: string, table: string, opts: { withoutRowid: boolean }): Migration {
  return {
    version,
    name,
    up: `CREATE TABLE ${table} (
      agent_id TEXT PRIMARY KEY, policy TEXT NOT NULL, version INTEGER NOT NULL, updated_at INTEGER NOT NULL)${opts.withoutRowid ? ' WITHOUT ROWID' : ''};`,
  };
}
