/**
 * What the Nostr side keeps across restarts (migration range 60-64): the ids of events already
 * processed for each agent, and for each (agent, relay) the point up to which its subscription has
 * received everything. After a restart a subscription asks again from that point minus the margin,
 * and the processed ids drop what comes twice, so each message reaches the inbox once.
 */
import type { Migration } from '../../runtime/storage/db.js';
import type { Storage } from '../../runtime/storage/index.js';
import { DEFAULT_RESUME_MARGIN_SEC, type SubscriptionCursor } from './pool.js';

export const nostrMigrations: Migration[] = [
  {
    version: 60,
    name: 'nostr processed events',
    // One row per (agent, event id): a delivered message (the gift wrap's and its inner message's ids)
    // or one dropped for a reason that would not change (policy, rate limit, undecryptable), so a repeat
    // after a restart is a duplicate and not a second judgement.
    up: `
      CREATE TABLE nostr_processed (
        agent_id TEXT NOT NULL, event_id TEXT NOT NULL, outcome TEXT NOT NULL,
        processed_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, event_id)) WITHOUT ROWID;
      CREATE INDEX nostr_processed_expiry ON nostr_processed (expires_at);`,
  },
  {
    version: 61,
    name: 'nostr subscription points',
    up: `
      CREATE TABLE nostr_cursors (
        agent_id TEXT NOT NULL, relay TEXT NOT NULL, since INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, relay)) WITHOUT ROWID;`,
  },
  {
    version: 62,
    name: 'nostr agents, outgoing events, peers',
    // nostr_agents: the `nostr` section of each agent's spec/config, as written (settings.ts).
    // nostr_outgoing: every DM and event an agent sends, from the tick (outbox `to: "nostr:..."`) or a
    // call file, until each relay answered (outgoing.ts); the signed event is kept from the first try,
    // so a retry after a crash republishes the same event, never a second message.
    // nostr_peers: the DM scheme each peer last wrote to an agent in, so replies answer in kind.
    up: `
      CREATE TABLE nostr_agents (
        agent_id TEXT PRIMARY KEY, settings TEXT NOT NULL, version INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      CREATE TABLE nostr_outgoing (
        agent_id TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
        kind TEXT NOT NULL, origin TEXT NOT NULL, request TEXT NOT NULL, relays TEXT NOT NULL,
        event TEXT, event_id TEXT, message_id TEXT,
        status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL,
        answers TEXT, last_error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, id)) WITHOUT ROWID;
      CREATE INDEX nostr_outgoing_due ON nostr_outgoing (next_at) WHERE status = 'pending';
      CREATE INDEX nostr_outgoing_order ON nostr_outgoing (agent_id, seq);
      CREATE TABLE nostr_peers (
        agent_id TEXT NOT NULL, pubkey TEXT NOT NULL, scheme TEXT NOT NULL, message_id TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, pubkey)) WITHOUT ROWID;`,
  },
];

/** Processed ids are kept a week: well past the resume margin (2 days 15 minutes), as they must be. */
export const DEFAULT_PROCESSED_RETENTION_MS = 7 * 24 * 3600 * 1000;

export interface NostrStoreOptions {
  /** How long a processed id is kept past the later of its processing and its event's created_at. */
  retentionMs?: number;
  /** The resume margin the subscriptions use; the retention must exceed it. */
  resumeMarginSec?: number;
  /** How often expired ids are swept while the database is open (default 10 minutes; 0: never). */
  sweepIntervalMs?: number;
  now?: () => number;
}

export class NostrStore {
  readonly retentionMs: number;
  private readonly now: () => number;
  private readonly q;

  constructor(
    readonly storage: Storage,
    options: NostrStoreOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.retentionMs = options.retentionMs ?? DEFAULT_PROCESSED_RETENTION_MS;
    const marginMs = (options.resumeMarginSec ?? DEFAULT_RESUME_MARGIN_SEC) * 1000;
    if (this.retentionMs <= marginMs) {
      // Shorter, and an id could be forgotten while its event is still inside a resumed subscription's window.
      throw new Error(`nostr: processed ids must be kept longer than the resume margin (${marginMs} ms); got ${this.retentionMs} ms`);
    }
    const db = storage.db;
    this.q = {
      outcome: db.prepare('SELECT outcome FROM nostr_processed WHERE agent_id = ? AND event_id = ?').pluck(),
      mark: db.prepare(`INSERT INTO nostr_processed (agent_id, event_id, outcome, processed_at, expires_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (agent_id, event_id) DO NOTHING`),
      sweep: db.prepare('DELETE FROM nostr_processed WHERE expires_at <= ?'),
      count: db.prepare('SELECT count(*) FROM nostr_processed WHERE agent_id = ?').pluck(),
      cursorGet: db.prepare('SELECT since FROM nostr_cursors WHERE agent_id = ? AND relay = ?').pluck(),
      cursorPut: db.prepare(`INSERT INTO nostr_cursors (agent_id, relay, since, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (agent_id, relay) DO UPDATE SET since = max(since, excluded.since), updated_at = excluded.updated_at`),
      forgetProcessed: db.prepare('DELETE FROM nostr_processed WHERE agent_id = ?'),
      forgetCursors: db.prepare('DELETE FROM nostr_cursors WHERE agent_id = ?'),
      forgetRest: ['nostr_agents', 'nostr_outgoing', 'nostr_peers'].map((t) => db.prepare(`DELETE FROM ${t} WHERE agent_id = ?`)),
      peerPut: db.prepare(`INSERT INTO nostr_peers (agent_id, pubkey, scheme, message_id, at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (agent_id, pubkey) DO UPDATE SET scheme = excluded.scheme, message_id = excluded.message_id, at = excluded.at`),
      peerGet: db.prepare('SELECT scheme FROM nostr_peers WHERE agent_id = ? AND pubkey = ?').pluck(),
    };
    storage.every(options.sweepIntervalMs ?? 10 * 60_000, () => this.sweep());
  }

  /** The outcome recorded for an event id ("delivered", "dropped:<reason>"), or undefined if never processed. */
  outcome(agentId: string, eventId: string): string | undefined {
    return this.q.outcome.get(agentId, eventId) as string | undefined;
  }

  isProcessed(agentId: string, eventId: string): boolean {
    return this.outcome(agentId, eventId) !== undefined;
  }

  /** Records ids as processed (the first outcome stays); `createdAt` in seconds keeps future-dated ids long enough. */
  markProcessed(agentId: string, eventIds: readonly string[], outcome: string, createdAt: number): void {
    const now = this.now();
    const expires = Math.max(now, createdAt * 1000) + this.retentionMs;
    for (const id of eventIds) this.q.mark.run(agentId, id, outcome, now, expires);
  }

  processedCount(agentId: string): number {
    return this.q.count.get(agentId) as number;
  }

  /** Drops ids past their retention; returns how many. */
  sweep(): number {
    return this.q.sweep.run(this.now()).changes;
  }

  /** The persisted subscription point of (agent, relay), which only moves forward. */
  cursor(agentId: string, relay: string): SubscriptionCursor {
    return {
      load: () => (this.q.cursorGet.get(agentId, relay) as number | undefined) ?? undefined,
      save: (seconds) => {
        this.q.cursorPut.run(agentId, relay, Math.floor(seconds), this.now());
      },
    };
  }

  /** Remembers the DM scheme a peer wrote in (inside the delivering transaction). */
  notePeerScheme(agentId: string, pubkey: string, scheme: 'nip17' | 'nip04', messageId: string): void {
    this.q.peerPut.run(agentId, pubkey, scheme, messageId, this.now());
  }

  /** The DM scheme a peer last wrote to the agent in, if it ever did. */
  peerScheme(agentId: string, pubkey: string): 'nip17' | 'nip04' | undefined {
    return this.q.peerGet.get(agentId, pubkey) as 'nip17' | 'nip04' | undefined;
  }

  /** Everything kept for an agent (it was deleted): processed ids, points, settings, outgoing events, peers. */
  forgetAgent(agentId: string): void {
    this.storage.tx(() => {
      this.q.forgetProcessed.run(agentId);
      this.q.forgetCursors.run(agentId);
      for (const q of this.q.forgetRest) q.run(agentId);
    });
  }

  /** One transaction (the caller's enqueue and the processed mark commit together). */
  tx<T>(fn: () => T): T {
    return this.storage.tx(fn);
  }
}
