/**
 * An agent's policy of one capability (compute, containers): what an admin wrote to `policy`, one row
 * per agent with a version for ETags. Only what was written is stored; every read resolves it over the
 * server's defaults in force (config.json), so fields left out follow the defaults when they change.
 */
import { FsError } from '../../fs/errors.js';
import type { Storage } from '../../runtime/storage/index.js';

export interface PolicyCodec<T> {
  /**
   * Validates `written` over `defaults` (fields left out take them); EINVAL names the field. `stored`
   * is a row written by an earlier version, read with the rules it was written under.
   */
  parse(written: Record<string, unknown>, path: string, defaults: Partial<T>, opts: { stored: boolean }): T;
}

export interface PolicyEntry<T> {
  /** The effective policy: what was written over the defaults, or the defaults. */
  policy: T;
  /** 0 while nothing was written (the server default). */
  version: number;
  updatedAt: number;
}

interface Row {
  policy: string;
  version: number;
  updated_at: number;
}

/** A policy value as written: a JSON object (EINVAL otherwise). */
export function writtenPolicy(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FsError('EINVAL', path, 'the policy must be a JSON object');
  }
  return value as Record<string, unknown>;
}

export class PolicyStore<T extends object> {
  /** The server's defaults (config.json's `policy` over the built-in ones). */
  readonly defaults: T;
  private readonly q;
  private readonly cache = new Map<string, PolicyEntry<T>>();

  /**
   * @param table a table `(agent_id TEXT PRIMARY KEY, policy TEXT, version INTEGER, updated_at INTEGER)`
   * @param defaults the config's policy section; `defaultsWhere` names it in errors
   */
  constructor(
    storage: Storage,
    table: string,
    private readonly codec: PolicyCodec<T>,
    defaults: unknown = {},
    defaultsWhere = `config.json ${table} defaults`,
  ) {
    this.defaults = codec.parse(writtenPolicy(defaults, defaultsWhere), defaultsWhere, {}, { stored: false });
    const db = storage.db;
    this.q = {
      get: db.prepare(`SELECT policy, version, updated_at FROM ${table} WHERE agent_id = ?`),
      put: db
        .prepare(
          `INSERT INTO ${table} (agent_id, policy, version, updated_at) VALUES (?, ?, 1, ?)
           ON CONFLICT (agent_id) DO UPDATE SET policy = excluded.policy, version = version + 1, updated_at = excluded.updated_at
           RETURNING version`,
        )
        .pluck(),
      remove: db.prepare(`DELETE FROM ${table} WHERE agent_id = ?`),
    };
  }

  /** The agent's effective policy, its version and when it was written. */
  get(agentId: string): PolicyEntry<T> {
    const hit = this.cache.get(agentId);
    if (hit) return hit;
    const row = this.q.get.get(agentId) as Row | undefined;
    const entry: PolicyEntry<T> = row
      ? {
          policy: this.codec.parse(writtenPolicy(JSON.parse(row.policy), '/policy'), '/policy', this.defaults, { stored: true }),
          version: row.version,
          updatedAt: row.updated_at,
        }
      : { policy: this.defaults, version: 0, updatedAt: 0 };
    this.cache.set(agentId, entry);
    return entry;
  }

  /**
   * Replaces the agent's policy with what was written (validated over the defaults; only the written
   * fields are stored). Run it inside the caller's transaction; `invalidate` after a rollback.
   */
  set(agentId: string, value: unknown, path = '/policy', now = Date.now()): PolicyEntry<T> {
    const written = writtenPolicy(value, path);
    const policy = this.codec.parse(written, path, this.defaults, { stored: false });
    const version = this.q.put.get(agentId, JSON.stringify(written), now) as number;
    const entry = { policy, version, updatedAt: now };
    this.cache.set(agentId, entry);
    return entry;
  }

  /** Drops the agent's policy (the agent was deleted). */
  remove(agentId: string): void {
    this.q.remove.run(agentId);
    this.cache.delete(agentId);
  }

  /** Forgets a cached policy (after a rollback). */
  invalidate(agentId: string): void {
    this.cache.delete(agentId);
  }
}
