/** The compute service's tables (migration range 40-49; 40-41 and 47-48 are the budgets and the journal). */
import type { Migration } from '../../runtime/storage/db.js';

export const computeMigrations: Migration[] = [
  {
    version: 42,
    name: 'compute jobs',
    up: `
      CREATE TABLE compute_jobs (
        id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, status TEXT NOT NULL,
        provider TEXT NOT NULL, model TEXT NOT NULL, request TEXT NOT NULL,
        reservation_id INTEGER, reserved INTEGER NOT NULL, cost INTEGER,
        idempotency_key TEXT, result TEXT, error_code TEXT, error_message TEXT,
        stream_from INTEGER NOT NULL, chunks INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER, updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL DEFAULT 1);
      CREATE INDEX compute_jobs_agent ON compute_jobs (agent_id, id);
      CREATE INDEX compute_jobs_active ON compute_jobs (status) WHERE status IN ('pending', 'running', 'streaming');
      CREATE INDEX compute_jobs_finished ON compute_jobs (finished_at) WHERE finished_at IS NOT NULL;`,
  },
  {
    version: 43,
    name: 'compute policies',
    up: `CREATE TABLE compute_policies (
      agent_id TEXT PRIMARY KEY, policy TEXT NOT NULL, version INTEGER NOT NULL, updated_at INTEGER NOT NULL);`,
  },
  {
    // What providers counted beyond our token estimates: the ratio later reservations use, and the
    // overruns (provider-reported cost past a job's reservation, never charged) of each agent.
    version: 44,
    name: 'compute token ratios and overruns',
    up: `
      CREATE TABLE compute_token_ratios (
        provider TEXT NOT NULL, model TEXT NOT NULL, ratio REAL NOT NULL, samples INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (provider, model)) WITHOUT ROWID;
      CREATE TABLE compute_overruns (
        agent_id TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, jobs INTEGER NOT NULL, micro_usd INTEGER NOT NULL,
        PRIMARY KEY (agent_id, provider, model)) WITHOUT ROWID;`,
  },
];
