/**
 * The idempotency journal: a key (e.g. `<agent>:compute:<user key>`) remembers the answer of the first
 * request that used it, for a TTL (1 h by default). A repeat within the TTL gets the same answer and
 * does nothing new; an expired entry counts as absent and is swept away. Entries live in SQLite, so they
 * survive a restart, and `remember` runs the first request's work in the same transaction as the
 * record, so two concurrent requests with one key can never both do the work.
 */
import { FsError } from '../fs/errors.js';
import type { Migration } from './storage/db.js';
import type { Storage } from './storage/index.js';

export const journalMigrations: Migration[] = [
  {
    version: 41,
    name: 'idempotency journal',
    up: `
      CREATE TABLE idempotency_journal (
        key TEXT PRIMARY KEY, value TEXT NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
      CREATE INDEX idempotency_journal_expiry ON idempotency_journal (expires_at);`,
  },
];

export const DEFAULT_JOURNAL_TTL_MS = 3600 * 1000;
export const MAX_KEY_BYTES = 512;

export interface JournalEntry {
  key: string;
  value: string;
  createdAt: number;
  expiresAt: number;
}

export interface JournalOptions {
  now?: () => number;
  ttlMs?: number;
  /** Expired entries are swept after this many writes (default 256), besides sweep(). */
  sweepEvery?: number;
  /** And every this many ms while the database is open (default one minute; 0: never). */
  sweepIntervalMs?: number;
}

interface Row {
  key: string;
  value: string;
  created_at: number;
  expires_at: number;
}

export class IdempotencyJournal {
  private readonly now: () => number;
  readonly ttlMs: number;
  private readonly sweepEvery: number;
  private writes = 0;
  private readonly q;
  private readonly inTx: <T>(fn: () => T) => T;

  constructor(
    readonly storage: Storage,
    options: JournalOptions = {},
  ) {
    this.now = options.now ?? (() => Date.now());
    this.ttlMs = options.ttlMs ?? DEFAULT_JOURNAL_TTL_MS;
    this.sweepEvery = options.sweepEvery ?? 256;
    const db = storage.db;
    this.inTx = <T>(fn: () => T): T => storage.tx(fn, { immediate: true });
    this.q = {
      get: db.prepare('SELECT * FROM idempotency_journal WHERE key = ? AND expires_at > ?'),
      put: db.prepare(`INSERT INTO idempotency_journal (key, value, created_at, expires_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at, expires_at = excluded.expires_at`),
      delete: db.prepare('DELETE FROM idempotency_journal WHERE key = ?'),
      deletePrefix: db.prepare('DELETE FROM idempotency_journal WHERE key >= ? AND key < ?'),
      sweep: db.prepare('DELETE FROM idempotency_journal WHERE expires_at <= ?'),
      count: db.prepare('SELECT count(*) FROM idempotency_journal WHERE expires_at > ?').pluck(),
    };
    storage.every(options.sweepIntervalMs ?? 60_000, () => this.sweep());
  }

  private checkKey(key: string): void {
    if (typeof key !== 'string' || key.length === 0 || new TextEncoder().encode(key).length > MAX_KEY_BYTES) {
      throw new FsError('EINVAL', '/', `idempotency key must be 1 to ${MAX_KEY_BYTES} bytes`);
    }
  }

  private ttl(ttlMs: number | undefined): number {
    const t = ttlMs ?? this.ttlMs;
    if (!Number.isFinite(t) || t < 0) throw new FsError('EINVAL', '/', `idempotency TTL must be a non-negative number of ms`);
    return t;
  }

  /** The live entry for `key`; expired entries count as absent. */
  entry(key: string): JournalEntry | undefined {
    const row = this.q.get.get(key, this.now()) as Row | undefined;
    return row && { key: row.key, value: row.value, createdAt: row.created_at, expiresAt: row.expires_at };
  }

  get(key: string): string | undefined {
    return this.entry(key)?.value;
  }

  has(key: string): boolean {
    return this.entry(key) !== undefined;
  }

  /** Records (or replaces) an entry for `ttlMs` (default the journal's TTL; 0 expires at once). */
  put(key: string, value: string, ttlMs?: number): void {
    this.checkKey(key);
    const now = this.now();
    this.q.put.run(key, value, now, now + this.ttl(ttlMs));
    this.afterWrite();
  }

  /** Records `value` unless a live entry exists; true when it was recorded. */
  checkOrRecord(key: string, value: string, ttlMs?: number): boolean {
    return this.remember(key, () => value, ttlMs).created;
  }

  /**
   * The live entry's value, or the value `create` returns, recorded under `key`, all in one transaction:
   * what `create` writes to the database commits together with the entry or not at all.
   */
  remember(key: string, create: () => string, ttlMs?: number): { value: string; created: boolean } {
    this.checkKey(key);
    const ttl = this.ttl(ttlMs);
    return this.inTx(() => {
      const now = this.now();
      const row = this.q.get.get(key, now) as Row | undefined;
      if (row) return { value: row.value, created: false };
      const value = create();
      this.q.put.run(key, value, now, now + ttl);
      this.afterWrite();
      return { value, created: true };
    });
  }

  delete(key: string): boolean {
    return this.q.delete.run(key).changes > 0;
  }

  /** Removes every entry whose key starts with `prefix` (a deleted agent's); returns how many. */
  deletePrefix(prefix: string): number {
    if (!prefix) throw new FsError('EINVAL', '/', 'an empty prefix would remove every entry');
    return this.q.deletePrefix.run(prefix, prefix + '\uffff').changes;
  }

  /** Removes expired entries; returns how many. */
  sweep(): number {
    return this.q.sweep.run(this.now()).changes;
  }

  /** Live entries. */
  size(): number {
    return this.q.count.get(this.now()) as number;
  }

  private afterWrite(): void {
    if (++this.writes >= this.sweepEvery) {
      this.writes = 0;
      this.sweep();
    }
  }
}
