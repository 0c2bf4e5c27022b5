/** The SQLite tables of /containers (versions 50-59): sessions, execs, policies. */
import type { Migration } from '../../runtime/storage/db.js';
import { policyTableMigration } from '../kit/migrations.js';

export const sessionMigrations: Migration[] = [
  {
    version: 50,
    name: 'container sessions and execs',
    up: `
      CREATE TABLE container_sessions (
        id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, status TEXT NOT NULL,
        created_at INTEGER NOT NULL, finished_at INTEGER, data TEXT NOT NULL);
      CREATE INDEX container_sessions_agent ON container_sessions (agent_id, created_at);
      CREATE INDEX container_sessions_active ON container_sessions (status)
        WHERE status IN ('provisioning', 'running');
      CREATE TABLE container_execs (
        session_id TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (session_id, id)) WITHOUT ROWID;`,
  },
];

export const policyMigrations: Migration[] = [policyTableMigration(51, 'container policies', 'container_policies', { withoutRowid: true })];

/** Every migration of /containers. */
export const containerMigrations: Migration[] = [...sessionMigrations, ...policyMigrations];
