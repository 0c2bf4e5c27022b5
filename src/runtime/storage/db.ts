/** The one SQLite database under AGENT9_HOME: WAL mode, versioned migrations. */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

export type SyncMode = 'OFF' | 'NORMAL' | 'FULL';

export interface OpenDbOptions {
  /**
   * NORMAL (default): a commit survives a crash of the process; FULL: it also survives power loss.
   * Overridden by AGENT9_SYNC.
   */
  synchronous?: SyncMode;
}

export function openDb(file: string, options: OpenDbOptions = {}): Db {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  const envSync = process.env['AGENT9_SYNC']?.toUpperCase();
  const sync = (envSync === 'OFF' || envSync === 'NORMAL' || envSync === 'FULL' ? envSync : options.synchronous) ?? 'NORMAL';
  db.pragma(`synchronous = ${sync}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('temp_store = MEMORY');
  // 16 MiB of page cache: mmap serves reads beyond it from the OS page cache; a larger cache mostly costs
  // its own first filling (measured: a 64 MiB cache made the first 64 MiB written take 1.7x as long).
  db.pragma('cache_size = -16384');
  // Reads of pages beyond the cache come straight from the OS page cache instead of one pread(2) each
  // (a 128 KiB data-file read is 32 pages): measured 2-4x less CPU per large read (bench/cases/fuse.ts).
  db.pragma('mmap_size = 1073741824');
  return db;
}

export interface Migration {
  version: number;
  name: string;
  up: string | ((db: Db) => void);
}

/** Applies every migration not yet recorded, in version order, each in its own transaction. */
export function migrate(db: Db, migrations: readonly Migration[]): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const done = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version),
  );
  const versions = new Set<number>();
  for (const m of migrations) {
    if (versions.has(m.version)) throw new Error(`duplicate migration version ${m.version} (${m.name})`);
    versions.add(m.version);
  }
  const applied: number[] = [];
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(m.version)) continue;
    db.transaction(() => {
      if (typeof m.up === 'string') db.exec(m.up);
      else m.up(db);
      record.run(m.version, m.name, Date.now());
    })();
    applied.push(m.version);
  }
  return applied;
}
