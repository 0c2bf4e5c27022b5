/**
 * The runtime's tables (migrations 10-29). One row per agent carries its config, lifecycle state and
 * every counter, so status, the scheduler and the hot enqueue path each touch one row. Queues are keyed
 * (agent_id, seq) WITHOUT ROWID: an agent's envelopes are contiguous and ordered on disk.
 */
import type { Migration } from '../storage/db.js';

export const agentStoreMigrations: Migration[] = [
  {
    version: 10,
    name: 'runtime: agents, state, kv, queues, goals, seen cache, keys',
    up: `
      CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        program TEXT NOT NULL,
        env TEXT NOT NULL,
        limits TEXT NOT NULL,
        schedule TEXT NOT NULL,
        inbox_policy TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_tick_at INTEGER,
        last_tick_cause TEXT,
        last_tick_ms INTEGER,
        last_error TEXT,
        tick_count INTEGER NOT NULL DEFAULT 0,
        ticks_failed INTEGER NOT NULL DEFAULT 0,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        tick_ms_total INTEGER NOT NULL DEFAULT 0,
        queue_depth INTEGER NOT NULL DEFAULT 0,
        deadletter_depth INTEGER NOT NULL DEFAULT 0,
        inbox_seq INTEGER NOT NULL DEFAULT 0,
        inbox_version INTEGER NOT NULL DEFAULT 0,
        inbox_mtime INTEGER NOT NULL DEFAULT 0,
        deadletter_seq INTEGER NOT NULL DEFAULT 0,
        outbox_seq INTEGER NOT NULL DEFAULT 0,
        seen_seq INTEGER NOT NULL DEFAULT 0,
        enqueued INTEGER NOT NULL DEFAULT 0,
        delivered INTEGER NOT NULL DEFAULT 0,
        duplicates INTEGER NOT NULL DEFAULT 0,
        dropped INTEGER NOT NULL DEFAULT 0,
        deadlettered INTEGER NOT NULL DEFAULT 0,
        discarded INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        replayed INTEGER NOT NULL DEFAULT 0,
        messages_out INTEGER NOT NULL DEFAULT 0,
        next_alarm INTEGER,
        next_run INTEGER,
        retry_at INTEGER);
      CREATE INDEX agents_alarm ON agents (next_alarm) WHERE next_alarm IS NOT NULL;
      CREATE INDEX agents_run ON agents (next_run) WHERE next_run IS NOT NULL;
      CREATE INDEX agents_retry ON agents (retry_at) WHERE retry_at IS NOT NULL;

      CREATE TABLE agent_state (agent_id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL);
      CREATE TABLE agent_kv (agent_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (agent_id, key)) WITHOUT ROWID;

      CREATE TABLE inbox (agent_id TEXT NOT NULL, seq INTEGER NOT NULL, env_id TEXT NOT NULL,
        sender TEXT NOT NULL, created_at INTEGER NOT NULL, body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
        PRIMARY KEY (agent_id, seq)) WITHOUT ROWID;
      CREATE UNIQUE INDEX inbox_env ON inbox (agent_id, env_id);

      CREATE TABLE deadletter (agent_id TEXT NOT NULL, seq INTEGER NOT NULL, env_id TEXT NOT NULL,
        body TEXT NOT NULL, reason TEXT NOT NULL, error TEXT, attempts INTEGER NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, seq)) WITHOUT ROWID;
      CREATE UNIQUE INDEX deadletter_env ON deadletter (agent_id, env_id);

      CREATE TABLE outbox (agent_id TEXT NOT NULL, seq INTEGER NOT NULL, env_id TEXT NOT NULL,
        body TEXT NOT NULL, created_at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, seq)) WITHOUT ROWID;
      CREATE UNIQUE INDEX outbox_env ON outbox (agent_id, env_id);

      CREATE TABLE goals (agent_id TEXT NOT NULL, goal_id TEXT NOT NULL, body TEXT NOT NULL,
        version INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, goal_id)) WITHOUT ROWID;

      CREATE TABLE seen (agent_id TEXT NOT NULL, env_id TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (agent_id, env_id)) WITHOUT ROWID;
      CREATE INDEX seen_order ON seen (agent_id, seq);

      CREATE TABLE agent_keys (agent_id TEXT PRIMARY KEY, pubkey TEXT NOT NULL, sealed TEXT NOT NULL,
        key_id TEXT NOT NULL, created_at INTEGER NOT NULL);`,
  },
];
