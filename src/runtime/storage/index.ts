/**
 * Storage: the one SQLite database and the stores built on it. Everything durable goes here. The
 * interface each store offers is narrow (domain operations, each one transaction) so that another
 * backend can follow.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { EventLog } from '../../fs/events.js';
import { DataFs, type DataFileStore, type DataFsOptions } from '../../fs/datafs.js';
import { migrate, openDb, type Db, type Migration, type OpenDbOptions } from './db.js';
import { SqliteEventStore, type RetentionOptions } from './event-store.js';
import { SqliteDataFileStore } from './datafiles.js';
import { storageMigrations } from './storage-migrations.js';
import { GroupCommit } from './group-commit.js';

export interface StorageOptions extends OpenDbOptions {
  retention?: RetentionOptions;
  /** How often retention runs over every event scope (default 10 minutes; 0: only at open). */
  retentionSweepMs?: number;
  /**
   * The tables of the layers above (the runtime's, each capability's): applied with the storage's own in
   * one pass, in version order, each version once.
   */
  migrations?: readonly Migration[];
  chunkSize?: number;
}

export const DB_FILE = 'agent9.db';

export class Storage {
  readonly eventStore: SqliteEventStore;
  readonly events: EventLog;
  readonly dataFiles: SqliteDataFileStore;
  private readonly treeEvents = new Map<string, { scope: string; prefix: string }>();
  private closed = false;
  private readonly timers = new Set<ReturnType<typeof setInterval>>();
  /** One transaction function, made once: better-sqlite3 builds a new wrapper per db.transaction() call. */
  private readonly runTx: Database.Transaction<(fn: () => unknown) => unknown>;
  /** Whole-file data-file writes of one turn of the event loop, in one transaction. */
  private readonly wholeFileWrites = new GroupCommit(this, { gather: 'io', immediate: true });

  /** The migration versions this database was opened with: all applied, or the open failed. */
  private readonly migrationVersions: readonly number[];

  private constructor(
    readonly db: Db,
    readonly file: string,
    options: StorageOptions,
  ) {
    const migrations = [...storageMigrations, ...(options.migrations ?? [])];
    migrate(db, migrations);
    this.migrationVersions = migrations.map((m) => m.version);
    this.runTx = db.transaction((fn: () => unknown) => fn());
    this.eventStore = new SqliteEventStore(db, options.retention);
    this.events = new EventLog(this.eventStore);
    this.dataFiles = new SqliteDataFileStore(db, this.events, (tree) => this.treeEvents.get(tree), (fn, o) => this.tx(fn, o), options.chunkSize);
    this.dataFiles.collectGarbage();
    // Appends prune a busy scope as they go; this bounds every scope, quiet ones included (an agent that
    // logs little, across restarts), and applies the age limit when nothing is written.
    this.eventStore.prune();
    this.every(options.retentionSweepMs ?? 10 * 60_000, () => this.eventStore.prune());
  }

  /**
   * Upkeep of the stores on this database (retention, expired journal entries): `task` runs every
   * `intervalMs` (0: never) until the database closes; the timer does not keep the process alive.
   */
  every(intervalMs: number, task: () => void): void {
    if (intervalMs <= 0 || this.closed) return;
    const timer = setInterval(() => {
      if (!this.closed) task();
    }, intervalMs);
    timer.unref();
    this.timers.add(timer);
  }

  /** Opens (creating if needed) the database in directory `home`, or at `file` if it ends in .db. */
  static open(homeOrFile: string, options: StorageOptions = {}): Storage {
    const file = homeOrFile === ':memory:' || homeOrFile.endsWith('.db') ? homeOrFile : join(homeOrFile, DB_FILE);
    return new Storage(openDb(file, options), file, options);
  }

  /**
   * The one way to run a transaction: its events reach live watchers only if it commits. Inside another
   * transaction it is a savepoint (it rolls back alone). `immediate` takes the write lock at BEGIN, for
   * read-then-write work (budgets, journals) that must not fail with SQLITE_BUSY half way, or see a
   * snapshot another connection has since changed.
   */
  tx<T>(fn: () => T, options: { immediate?: boolean } = {}): T {
    if (options.immediate && !this.db.inTransaction) return this.events.batch(() => this.runTx.immediate(fn) as T);
    return this.events.batch(() => this.runTx(fn) as T);
  }

  /** How whole-file writes shared commits: {transactions, jobs} (in /runtime/status). */
  get dataFileCommits(): { transactions: number; jobs: number } {
    return this.wholeFileWrites.stats;
  }

  /**
   * A data-file tree whose changes are reported in `scope` under `prefix`; `wrap` may put a layer over
   * the shared store for this tree (the agent's memory quota). Whole-file writes submitted in the same
   * turn of the event loop (concurrent HTTP PUTs) commit together, each in its own savepoint, each
   * answered once the commit is done; inside a transaction one runs at once, in it.
   */
  dataTree(
    tree: string,
    events: { scope: string; prefix: string },
    options?: DataFsOptions,
    wrap?: (store: DataFileStore) => DataFileStore,
  ): DataFs {
    this.treeEvents.set(tree, events);
    const store = wrap ? wrap(this.dataFiles) : this.dataFiles;
    const commit = <T>(work: () => T): Promise<T> => {
      // The store's own transaction is a savepoint inside the group's: a failed write rolls back alone.
      if (!this.db.inTransaction) return this.wholeFileWrites.run(work, { savepoint: false });
      try {
        return Promise.resolve(work());
      } catch (err) {
        return Promise.reject(err as Error);
      }
    };
    return new DataFs(store, tree, { readAhead: (work) => setImmediate(work), commit, ...options });
  }

  metaGet(key: string): string | undefined {
    return this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key) as string | undefined;
  }

  metaSet(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  /**
   * Whether the database serves: open, answering, with every migration it was opened with recorded
   * (what a readiness probe asks). Never throws: a failure is the reason.
   */
  readiness(): { ready: true; migrations: number } | { ready: false; reason: string } {
    if (this.closed || !this.db.open) return { ready: false, reason: 'the database is closed' };
    try {
      const done = new Set((this.db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]).map(Number));
      const missing = this.migrationVersions.filter((v) => !done.has(v));
      if (missing.length > 0) return { ready: false, reason: `migrations not applied: ${missing.join(', ')}` };
      return { ready: true, migrations: this.migrationVersions.length };
    } catch (err) {
      return { ready: false, reason: `the database does not answer: ${(err as Error).message}` };
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers.clear();
    this.db.close();
  }
}

export { openDb, migrate, type Db, type Migration } from './db.js';
