/**
 * Each agent's `nostr` section (in its spec and its config, admin-write), one row per agent:
 *
 *   "nostr": {"enabled": true, "relays"?: ["wss://..."], "senders"?: "anyone" | ["<hex or npub>", ...], "per_minute"?: 10}
 *
 * `true` and `false` are short for `{"enabled": true|false}`. Without `relays` the agent uses the
 * server's (config.json `nostr.relays`). `senders` and `per_minute` are its sender policy
 * (policy.ts); `/nostr/policy` reads and writes those two alone.
 */
import { FsError } from '../../fs/errors.js';
import type { Storage } from '../../runtime/storage/index.js';
import { describeIssues } from '../kit/validation.js';
import { relayListSchema } from './config.js';
import { parseNostrReachPolicy, type NostrReachPolicy } from './policy.js';

export interface NostrAgentSettings {
  enabled: boolean;
  /** The agent's own relays; undefined: the server's. */
  relays?: string[];
  senders: 'anyone' | string[];
  per_minute: number;
}

export const DISABLED: NostrAgentSettings = Object.freeze({ enabled: false, senders: 'anyone', per_minute: 10 }) as NostrAgentSettings;

/** The sender policy of the settings, as the inbound side takes it. */
export function reachPolicyOf(settings: NostrAgentSettings): NostrReachPolicy {
  return { senders: settings.senders === 'anyone' ? 'anyone' : new Set(settings.senders), perMinute: settings.per_minute };
}

function policyFields(value: Record<string, unknown>, path: string): Pick<NostrAgentSettings, 'senders' | 'per_minute'> {
  const written: Record<string, unknown> = {};
  if ('senders' in value) written['senders'] = value['senders'];
  if ('per_minute' in value) written['per_minute'] = value['per_minute'];
  const policy = parseNostrReachPolicy(written, path);
  return { senders: policy.senders === 'anyone' ? 'anyone' : [...policy.senders].sort(), per_minute: policy.perMinute };
}

/** `nostr` as written in a spec or config; EINVAL naming `path` and the field. */
export function parseNostrSettings(value: unknown, path: string): NostrAgentSettings {
  if (value === true || value === false) return { ...DISABLED, enabled: value };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FsError('EINVAL', path, 'nostr: expected true, false or an object {enabled, relays?, senders?, per_minute?}');
  }
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!['enabled', 'relays', 'senders', 'per_minute'].includes(key)) {
      throw new FsError('EINVAL', path, `nostr: unknown field ${JSON.stringify(key)} (use enabled, relays, senders, per_minute)`);
    }
  }
  const enabled = v['enabled'] ?? false;
  if (typeof enabled !== 'boolean') throw new FsError('EINVAL', path, 'nostr.enabled: expected true or false');
  const settings: NostrAgentSettings = { enabled, ...policyFields(v, path) };
  if (v['relays'] !== undefined) {
    const relays = relayListSchema.safeParse(v['relays']);
    if (!relays.success) throw new FsError('EINVAL', path, `nostr.relays: ${describeIssues(relays.error)}`);
    settings.relays = [...new Set(relays.data)];
  }
  return settings;
}

/** What `/nostr/policy` takes: `{senders?, per_minute?}` (fields left out take their defaults). */
export function parseNostrPolicyFile(value: unknown, path: string): Pick<NostrAgentSettings, 'senders' | 'per_minute'> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FsError('EINVAL', path, 'expected a JSON object {senders, per_minute}');
  parseNostrReachPolicy(value, path);
  return policyFields(value as Record<string, unknown>, path);
}

interface Row {
  settings: string;
  version: number;
  updated_at: number;
}

export class NostrSettingsStore {
  private readonly q;
  private readonly cache = new Map<string, { settings: NostrAgentSettings; version: number; updatedAt: number }>();

  constructor(storage: Storage) {
    const db = storage.db;
    this.q = {
      get: db.prepare('SELECT settings, version, updated_at FROM nostr_agents WHERE agent_id = ?'),
      put: db
        .prepare(
          `INSERT INTO nostr_agents (agent_id, settings, version, updated_at) VALUES (?, ?, 1, ?)
           ON CONFLICT (agent_id) DO UPDATE SET settings = excluded.settings, version = version + 1, updated_at = excluded.updated_at
           RETURNING version`,
        )
        .pluck(),
      enabled: db.prepare("SELECT agent_id FROM nostr_agents WHERE json_extract(settings, '$.enabled') = 1 ORDER BY agent_id").pluck(),
    };
  }

  /** The agent's settings (disabled when none were written), with their version and time. */
  entry(agentId: string): { settings: NostrAgentSettings; version: number; updatedAt: number } {
    const hit = this.cache.get(agentId);
    if (hit) return hit;
    const row = this.q.get.get(agentId) as Row | undefined;
    const entry = row ? { settings: JSON.parse(row.settings) as NostrAgentSettings, version: row.version, updatedAt: row.updated_at } : { settings: DISABLED, version: 0, updatedAt: 0 };
    this.cache.set(agentId, entry);
    return entry;
  }

  get(agentId: string): NostrAgentSettings {
    return this.entry(agentId).settings;
  }

  /** Whether a row was written for the agent (what `/config` shows a `nostr` field for). */
  written(agentId: string): boolean {
    return this.entry(agentId).version > 0;
  }

  /**
   * Stores the agent's settings; inside the caller's transaction. The cache is dropped rather than
   * filled, so a rollback leaves nothing stale behind.
   */
  put(agentId: string, settings: NostrAgentSettings, now: number): number {
    this.cache.delete(agentId);
    return this.q.put.get(agentId, JSON.stringify(settings), now) as number;
  }

  /** The agents with `enabled: true`. */
  enabledAgents(): string[] {
    return this.q.enabled.all() as string[];
  }

  forget(agentId: string): void {
    this.cache.delete(agentId);
  }
}
