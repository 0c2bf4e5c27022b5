/** The event log's SQLite store, with bounded retention per scope. */
import type { EventRecord, EventStore, NewEventRecord } from '../../fs/events.js';
import type { EventType } from '../../fs/types.js';
import type { Db } from './db.js';

export const eventMigrations = [
  {
    version: 2,
    name: 'events',
    up: `
      CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        scope TEXT NOT NULL, path TEXT NOT NULL, type TEXT NOT NULL,
        time INTEGER NOT NULL, version INTEGER, data TEXT);
      CREATE INDEX events_scope ON events (scope, id);
      CREATE TABLE event_watermarks (scope TEXT PRIMARY KEY, id INTEGER NOT NULL);`,
  },
];

export interface RetentionOptions {
  /** Events kept per scope (default 10,000). */
  maxPerScope?: number;
  /** Events older than this are dropped (default 24 h). */
  maxAgeMs?: number;
}

interface Row {
  id: number;
  scope: string;
  path: string;
  type: string;
  time: number;
  version: number | null;
  data: string | null;
}

function fromRow(r: Row): EventRecord {
  const rec: EventRecord = { id: r.id, scope: r.scope, path: r.path, type: r.type as EventType, time: r.time };
  if (r.version !== null) rec.version = r.version;
  if (r.data !== null) rec.data = JSON.parse(r.data);
  return rec;
}

export class SqliteEventStore implements EventStore {
  private readonly insert;
  private readonly selectAfter;
  private readonly selectLast;
  private readonly appendsSincePrune = new Map<string, number>();
  private watermarks = new Map<string, number>();
  readonly maxPerScope: number;
  readonly maxAgeMs: number;
  private readonly pruneEvery: number;

  constructor(
    private readonly db: Db,
    retention: RetentionOptions = {},
  ) {
    this.maxPerScope = retention.maxPerScope ?? 10_000;
    this.maxAgeMs = retention.maxAgeMs ?? 24 * 3600 * 1000;
    this.pruneEvery = Math.max(100, this.maxPerScope / 10);
    this.insert = db.prepare(
      'INSERT INTO events (scope, path, type, time, version, data) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.selectAfter = db.prepare('SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?');
    // Ids come from the rowid: max + 1. The newest event is never deleted (see dropScope), so an id is
    // never handed out twice, and AUTOINCREMENT's extra write per insert is not needed.
    this.selectLast = db.prepare('SELECT max(id) FROM events').pluck();
    for (const r of db.prepare('SELECT scope, id FROM event_watermarks').all() as { scope: string; id: number }[]) {
      this.watermarks.set(r.scope, r.id);
    }
  }

  append(rec: NewEventRecord): EventRecord {
    const data = rec.data === undefined ? null : JSON.stringify(rec.data);
    const info = this.insert.run(rec.scope, rec.path, rec.type, rec.time, rec.version ?? null, data);
    // The first append of a scope in this process prunes it (what earlier runs left over the count),
    // then every tenth of the limit.
    const n = (this.appendsSincePrune.get(rec.scope) ?? this.pruneEvery - 1) + 1;
    if (n >= this.pruneEvery) {
      this.appendsSincePrune.set(rec.scope, 0);
      this.pruneScope(rec.scope, rec.time);
    } else {
      this.appendsSincePrune.set(rec.scope, n);
    }
    return { ...rec, id: Number(info.lastInsertRowid) };
  }

  after(cursor: number, limit: number): EventRecord[] {
    return (this.selectAfter.all(cursor, limit) as Row[]).map(fromRow);
  }

  lastId(): number {
    return (this.selectLast.get() as number | null) ?? Math.max(0, ...this.watermarks.values());
  }

  watermark(scopes: readonly string[] | '*'): number {
    let max = 0;
    if (scopes === '*') {
      for (const id of this.watermarks.values()) max = Math.max(max, id);
    } else {
      for (const s of scopes) max = Math.max(max, this.watermarks.get(s) ?? 0);
    }
    return max;
  }

  /**
   * Stored events of one scope, at one path (a stream's history, e.g. an agent's trace) or at every path
   * when `path` is undefined; oldest first, or the newest `limit` with `newest`. `afterId` is an exclusive
   * cursor; `fromTime`/`toTime` bound the times.
   */
  query(
    scope: string,
    path: string | undefined,
    opts: { afterId?: number; fromTime?: number; toTime?: number; limit?: number; newest?: boolean } = {},
  ): EventRecord[] {
    const order = opts.newest ? 'DESC' : 'ASC';
    const where = path === undefined ? '? IS NULL' : 'path = ?';
    const rows = this.db
      .prepare(
        `SELECT * FROM events WHERE scope = ? AND ${where} AND id > ? AND time >= ? AND time <= ? ORDER BY id ${order} LIMIT ?`,
      )
      .all(scope, path ?? null, opts.afterId ?? 0, opts.fromTime ?? 0, opts.toTime ?? Number.MAX_SAFE_INTEGER, opts.limit ?? -1) as Row[];
    const out = rows.map(fromRow);
    return opts.newest ? out.reverse() : out;
  }

  /** Drops events beyond retention in one scope and records the watermark. */
  pruneScope(scope: string, now = Date.now()): number {
    const cutoffById =
      (this.db
        .prepare('SELECT id FROM events WHERE scope = ? ORDER BY id DESC LIMIT 1 OFFSET ?')
        .pluck()
        .get(scope, this.maxPerScope) as number | undefined) ?? 0;
    // Times grow with ids: the first event young enough bounds the expired ones (walks the scope index).
    const firstYoung = this.db
      .prepare('SELECT id FROM events WHERE scope = ? AND time >= ? ORDER BY id LIMIT 1')
      .pluck()
      .get(scope, now - this.maxAgeMs) as number | undefined;
    const cutoffByTime = firstYoung === undefined ? this.lastIdOf(scope) : firstYoung - 1;
    // The newest event overall stays: ids are max + 1, so deleting it would hand its id out again.
    const limit = Math.min(Math.max(cutoffById, cutoffByTime), this.lastId() - 1);
    if (limit <= (this.watermarks.get(scope) ?? 0)) return 0;
    // The watermark is the newest event this scope actually lost: a cursor older than that gets a reset,
    // one that lost nothing does not.
    const cutoff = this.db.prepare('SELECT max(id) FROM events WHERE scope = ? AND id <= ?').pluck().get(scope, limit) as number | null;
    if (cutoff === null) return 0;
    const removed = this.db.prepare('DELETE FROM events WHERE scope = ? AND id <= ?').run(scope, cutoff).changes;
    this.db
      .prepare('INSERT INTO event_watermarks (scope, id) VALUES (?, ?) ON CONFLICT(scope) DO UPDATE SET id = excluded.id')
      .run(scope, cutoff);
    this.watermarks.set(scope, cutoff);
    return removed;
  }

  private lastIdOf(scope: string): number {
    return (this.db.prepare('SELECT max(id) FROM events WHERE scope = ?').pluck().get(scope) as number | null) ?? 0;
  }

  /**
   * The age limit over every scope at once (Storage runs it at open and periodically, so quiet scopes are
   * bounded too): events older than maxAgeMs go, oldest first, in batches of `batch` rows (one short
   * transaction each), and each scope's watermark records what it lost. Times grow with ids, so the old
   * events are a prefix of the table: the work is proportional to what is removed, not to what is kept.
   */
  prune(now = Date.now(), batch = 5000): number {
    const firstYoung = this.db.prepare('SELECT id FROM events WHERE time >= ? ORDER BY id LIMIT 1').pluck();
    const oldRows = this.db.prepare('SELECT id, scope FROM events WHERE id <= ? ORDER BY id LIMIT ?');
    const deleteUpTo = this.db.prepare('DELETE FROM events WHERE id <= ?');
    const mark = this.db.prepare(
      'INSERT INTO event_watermarks (scope, id) VALUES (?, ?) ON CONFLICT(scope) DO UPDATE SET id = max(id, excluded.id)',
    );
    const young = firstYoung.get(now - this.maxAgeMs) as number | undefined;
    // The newest event overall stays: ids are max + 1, so deleting it would hand its id out again.
    const cut = Math.min(young === undefined ? Number.MAX_SAFE_INTEGER : young - 1, this.lastId() - 1);
    let removed = 0;
    for (;;) {
      const rows = oldRows.all(cut, batch) as { id: number; scope: string }[];
      if (rows.length === 0) return removed;
      const upTo = rows[rows.length - 1]!.id;
      const lost = new Map<string, number>();
      for (const r of rows) lost.set(r.scope, r.id);
      this.db.transaction(() => {
        for (const [scope, id] of lost) mark.run(scope, id);
        removed += deleteUpTo.run(upTo).changes;
      })();
      for (const [scope, id] of lost) this.watermarks.set(scope, Math.max(id, this.watermarks.get(scope) ?? 0));
    }
  }

  /** Gives every stored event of scope `from` to scope `to` (an import's staged history), ids unchanged. */
  moveScope(from: string, to: string): void {
    this.db.prepare('UPDATE events SET scope = ? WHERE scope = ?').run(to, from);
    this.forgetScope(from);
  }

  /** Removes a scope that never was an agent's (abandoned import staging): its events and its watermark. */
  purgeScope(scope: string): void {
    const last = this.lastId();
    this.db.prepare('DELETE FROM events WHERE scope = ? AND id < ?').run(scope, last);
    // The newest event overall keeps ids growing: it stays, emptied, in a scope nothing watches.
    this.db.prepare("UPDATE events SET scope = '~purged', path = '/', type = 'deleted', version = NULL, data = NULL WHERE id = ? AND scope = ?").run(last, scope);
    this.forgetScope(scope);
  }

  private forgetScope(scope: string): void {
    this.db.prepare('DELETE FROM event_watermarks WHERE scope = ?').run(scope);
    this.watermarks.delete(scope);
    this.appendsSincePrune.delete(scope);
  }

  /** Removes every event of a scope (a deleted agent), except the newest event overall, which keeps ids growing. */
  dropScope(scope: string): void {
    const last = this.lastId();
    this.db.prepare('DELETE FROM events WHERE scope = ? AND id < ?').run(scope, last);
    this.db
      .prepare('INSERT INTO event_watermarks (scope, id) VALUES (?, ?) ON CONFLICT(scope) DO UPDATE SET id = excluded.id')
      .run(scope, last);
    this.watermarks.set(scope, last);
  }
}
