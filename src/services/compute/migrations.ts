/** The compute service's tables (migration range 40-49; 40-41 and 47 are the budgets and the journal). */
import type { Db, Migration } from '../../runtime/storage/db.js';
import { policyTableMigration } from '../kit/migrations.js';

/**
 * The built-in compute policy defaults as they stood when policies were stored whole (up to migration
 * 48), frozen here so that what migration 48 strips never changes with later defaults.
 */
const BUILT_IN_DEFAULTS_BEFORE_48: Record<string, unknown> = {
  allowed_providers: [],
  allowed_models: [],
  blocked_models: [],
  max_cost_per_job: null,
  max_cost_per_tick: null,
  max_cost_per_day: null,
  default_max_cost: null,
  require_max_cost: false,
  require_idempotency: false,
  default_timeout_ms: 120_000,
  max_timeout_ms: 600_000,
  default_max_tokens: 1024,
  max_input_bytes: 262_144,
  max_concurrent_jobs: 16,
  prefer: 'balanced',
  fallback_provider: null,
  default_model: null,
};

/**
 * Migration 48. Before it, writing /compute/policy stored the whole *resolved* policy (what was written
 * with every other field filled in from the defaults), so a stored policy never saw a later change of
 * the server defaults. Now only what was written is stored and every read resolves it over the defaults
 * in force. A stored row cannot tell a field that was written from one that was filled in, so this
 * strips every field whose value equals the built-in default above (compared as JSON): those follow the
 * server defaults from now on. A field equal to a built-in default that an admin did write is stripped
 * too (it then follows config.json's default, which is the same unless config.json sets that field);
 * a field that differs from the built-in default stays, also one that was filled in from config.json's
 * `compute.policy` when the policy was written (it cannot be told from a written one). The version and
 * the time of the row are kept. A row that is not a JSON object is left as it is.
 */
export function stripStoredComputeDefaults(db: Db): number {
  const rows = db.prepare('SELECT agent_id, policy FROM compute_policies').all() as { agent_id: string; policy: string }[];
  const update = db.prepare('UPDATE compute_policies SET policy = ? WHERE agent_id = ?');
  let changed = 0;
  for (const row of rows) {
    let stored: unknown;
    try {
      stored = JSON.parse(row.policy);
    } catch {
      continue;
    }
    if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) continue;
    const kept = Object.fromEntries(
      Object.entries(stored).filter(
        ([field, value]) => !(field in BUILT_IN_DEFAULTS_BEFORE_48) || JSON.stringify(value) !== JSON.stringify(BUILT_IN_DEFAULTS_BEFORE_48[field]),
      ),
    );
    const next = JSON.stringify(kept);
    if (next !== row.policy) {
      update.run(next, row.agent_id);
      changed++;
    }
  }
  return changed;
}

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
  policyTableMigration(43, 'compute policies', 'compute_policies', { withoutRowid: false }),
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
  {
    version: 48,
    name: 'compute policies keep only what was written',
    up: (db) => void stripStoredComputeDefaults(db),
  },
];
