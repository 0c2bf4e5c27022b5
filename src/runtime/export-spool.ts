/**
 * Export without holding the bundle in memory: the agent is written as a version-2 bundle (JSON lines,
 * bundle-format.ts) to a temporary file under `$AGENT9_HOME/tmp/export`, and the export file is read
 * from there. The database part is read in one read transaction on a connection of its own, so it is
 * one consistent snapshot while writers go on (WAL: a reader blocks no writer); the event loop is given
 * back after every megabyte. The work dir follows, file by file, never through a link.
 *
 * The file is unlinked once written (its descriptor keeps it until the reader closes), and the spool
 * directory is emptied at startup, so nothing outlives a read or a crash. At most `maxConcurrent`
 * exports run at once; more are EAGAIN (HTTP 429 with Retry-After).
 */
import Database from 'better-sqlite3';
import { constants as FS, mkdirSync, rmSync } from 'node:fs';
import { open, readlink, realpath, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { EMPTY } from '../fs/bytes.js';
import { FsError } from '../fs/errors.js';
import type { Handle, Stat } from '../fs/types.js';
import type { Db } from './storage/db.js';
import type { Storage } from './storage/index.js';
import { SqliteDataFileStore } from './storage/datafiles.js';
import { memoryTree } from './agents.js';
import { BUNDLE_FORMAT, BUNDLE_V2, DATA_CHUNK, line } from './bundle-format.js';
import { agentWorkDir, walkWorkDir } from './agent-workdir.js';
import { configSection } from './home-config.js';

export const DEFAULT_MAX_EXPORTS = 2;
const FLUSH_BYTES = 1024 * 1024;
const PAGE = 256;

/** The spool directory, emptied (made) at startup: what a crashed export left goes. */
export function spoolDir(home: string): string {
  return join(home, 'tmp', 'export');
}

/** `exports.max_concurrent` of config.json, else the default. */
export function maxExportsFromConfig(home: string): number {
  const { value, file } = configSection(home, 'exports');
  if (value === undefined) return DEFAULT_MAX_EXPORTS;
  const n = (value as { max_concurrent?: unknown } | null)?.max_concurrent;
  if (n === undefined) return DEFAULT_MAX_EXPORTS;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new FsError('EINVAL', file, `exports.max_concurrent must be a positive integer, not ${JSON.stringify(n)}`);
  }
  return n;
}

/** The lines of the database part of one agent's bundle, read from `db` (inside the caller's read transaction). */
function* databaseLines(db: Db, files: SqliteDataFileStore, id: string, path: string): Generator<string> {
  const row = db.prepare('SELECT * FROM agents WHERE id = ?').get(id) as Record<string, unknown> | undefined;
  if (!row) throw new FsError('ENOENT', path, `no agent '${id}'`);
  let records = 0;
  const rec = (value: unknown) => {
    records++;
    return line(value);
  };
  yield line({ format: BUNDLE_FORMAT, version: BUNDLE_V2, exported_at: Date.now(), agent: row });
  const state = db.prepare('SELECT version, data FROM agent_state WHERE agent_id = ?').get(id) as { version: number; data: string } | undefined;
  if (state) yield rec({ t: 'state', version: state.version, data: JSON.parse(state.data) });
  // Keyed tables are read a page at a time: no statement stays open across a yield.
  const kv = db.prepare('SELECT key, value FROM agent_kv WHERE agent_id = ? AND key > ? ORDER BY key LIMIT ?');
  for (let after = ''; ; ) {
    const rows = kv.all(id, after, PAGE) as { key: string; value: string }[];
    for (const r of rows) yield rec({ t: 'kv', key: r.key, value: JSON.parse(r.value) });
    if (rows.length < PAGE) break;
    after = rows[rows.length - 1]!.key;
  }
  // Queues, goals and the seen cache are bounded by the agent's limits: one query each.
  for (const r of db.prepare('SELECT seq, body, attempts, last_error FROM inbox WHERE agent_id = ? ORDER BY seq').all(id) as {
    seq: number; body: string; attempts: number; last_error: string | null;
  }[]) {
    yield rec({ t: 'inbox', seq: r.seq, envelope: JSON.parse(r.body), attempts: r.attempts, last_error: r.last_error });
  }
  for (const r of db.prepare('SELECT seq, body, reason, error, attempts, at FROM deadletter WHERE agent_id = ? ORDER BY seq').all(id) as {
    seq: number; body: string; reason: string; error: string | null; attempts: number; at: number;
  }[]) {
    yield rec({ t: 'deadletter', seq: r.seq, envelope: JSON.parse(r.body), reason: r.reason, error: r.error, attempts: r.attempts, at: r.at });
  }
  for (const r of db.prepare('SELECT seq, body FROM outbox WHERE agent_id = ? ORDER BY seq').all(id) as { seq: number; body: string }[]) {
    yield rec({ t: 'outbox', seq: r.seq, envelope: JSON.parse(r.body) });
  }
  for (const g of db.prepare('SELECT goal_id, body, version, created_at, updated_at FROM goals WHERE agent_id = ? ORDER BY goal_id').all(id) as {
    goal_id: string; body: string; version: number; created_at: number; updated_at: number;
  }[]) {
    yield rec({ t: 'goal', id: g.goal_id, goal: JSON.parse(g.body), version: g.version, created_at: g.created_at, updated_at: g.updated_at });
  }
  const seen = db.prepare('SELECT env_id FROM seen WHERE agent_id = ? ORDER BY seq').pluck().all(id) as string[];
  for (let i = 0; i < seen.length; i += 1000) yield rec({ t: 'seen', ids: seen.slice(i, i + 1000) });
  const key = db.prepare('SELECT pubkey, sealed, key_id FROM agent_keys WHERE agent_id = ?').get(id) as
    | { pubkey: string; sealed: string; key_id: string }
    | undefined;
  if (key) yield rec({ t: 'identity', pubkey: key.pubkey, sealed: key.sealed, key_id: key.key_id });
  const events = db.prepare('SELECT id, path, type, time, version, data FROM events WHERE scope = ? AND id > ? ORDER BY id LIMIT ?');
  for (let after = 0; ; ) {
    const rows = events.all(id, after, PAGE) as { id: number; path: string; type: string; time: number; version: number | null; data: string | null }[];
    for (const e of rows) {
      const ev: Record<string, unknown> = { t: 'event', type: e.type, path: e.path, time: e.time };
      if (e.version !== null) ev['version'] = e.version;
      if (e.data !== null) ev['data'] = JSON.parse(e.data);
      yield rec(ev);
    }
    if (rows.length < PAGE) break;
    after = rows[rows.length - 1]!.id;
  }
  // Memory files in path order (a parent sorts before its children), each followed by its content. Paths
  // start after '/': the root is the agent's, and a file removed while open (a hidden path) is no one's.
  // A symbolic link carries its target, a further name of a hard-linked file the path of the file's row.
  const tree = memoryTree(id);
  const nodes = db.prepare(`SELECT n.id, n.path, n.type, n.mode, n.mtime, n.size, o.path AS of,
      CASE WHEN n.type = 'symlink' THEN n.head END AS target
    FROM data_nodes n LEFT JOIN data_nodes o ON o.id = n.inode WHERE n.tree = ? AND n.path > ? ORDER BY n.path LIMIT ?`);
  type MemoryRow = { id: number; path: string; type: string; mode: number; mtime: number; size: number; of: string | null; target: Uint8Array | null };
  for (let after = '/'; ; ) {
    const rows = nodes.all(tree, after, PAGE) as MemoryRow[];
    for (const n of rows) {
      const size = n.type === 'file' ? n.size : 0;
      if (n.type === 'name') {
        yield rec({ t: 'memory', path: n.path, type: 'hardlink', of: n.of, mode: 0, mtime: n.mtime, size: 0 });
        continue;
      }
      const record: Record<string, unknown> = { t: 'memory', path: n.path, type: n.type, mode: n.mode, mtime: n.mtime, size };
      if (n.target) record['target'] = Buffer.from(n.target).toString('utf8');
      yield rec(record);
      for (let off = 0; off < size; off += DATA_CHUNK) {
        const bytes = files.read(tree, n.id, off, Math.min(DATA_CHUNK, size - off));
        yield rec({ t: 'data', data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') });
      }
    }
    if (rows.length < PAGE) break;
    after = rows[rows.length - 1]!.path;
  }
  return records;
}

/** Writes text to a file in batches of about a megabyte. */
class LineWriter {
  private parts: string[] = [];
  private pending = 0;
  written = 0;

  constructor(private readonly fh: FileHandle) {}

  /** True when a batch is due (the caller awaits flush). */
  add(text: string): boolean {
    this.parts.push(text);
    this.pending += text.length;
    return this.due;
  }

  get due(): boolean {
    return this.pending >= FLUSH_BYTES;
  }

  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const buf = Buffer.from(this.parts.join(''));
    this.parts = [];
    this.pending = 0;
    await this.fh.write(buf, 0, buf.length, this.written);
    this.written += buf.length;
  }
}

export class ExportSpool {
  private running = 0;
  private seq = 0;
  private readonly dir: string;

  constructor(
    private readonly home: string,
    private readonly storage: Storage,
    readonly maxConcurrent = DEFAULT_MAX_EXPORTS,
  ) {
    this.dir = spoolDir(home);
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  get active(): number {
    return this.running;
  }

  /** Spools agent `id`'s bundle and gives a handle that reads it; `path` is what errors name. */
  async open(id: string, path: string, stat: () => Stat): Promise<Handle> {
    if (this.running >= this.maxConcurrent) {
      throw new FsError(
        'EAGAIN',
        path,
        `${this.running} exports are running, the most at once (exports.max_concurrent in config.json); retry in a moment`,
        { retryAfterMs: 1000 },
      );
    }
    this.running++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        this.running--;
      }
    };
    const file = join(this.dir, `${process.pid}-${++this.seq}-${id}.jsonl`);
    let fh: FileHandle | undefined;
    try {
      fh = await open(file, 'w+', 0o600);
      const size = await this.write(fh, id, path);
      await unlink(file);
      return new SpoolHandle(fh, size, path, stat, release);
    } catch (err) {
      release();
      await fh?.close().catch(() => undefined);
      await unlink(file).catch(() => undefined);
      throw err;
    }
  }

  private async write(fh: FileHandle, id: string, path: string): Promise<number> {
    const out = new LineWriter(fh);
    let records: number;
    if (this.storage.file === ':memory:') {
      // No second connection to an in-memory database: the snapshot is read in one synchronous transaction.
      records = this.storage.tx(() => {
        const lines = databaseLines(this.storage.db, this.storage.dataFiles, id, path);
        for (let r = lines.next(); ; r = lines.next()) {
          if (r.done) return r.value;
          out.add(r.value);
        }
      });
    } else {
      records = await this.snapshot(id, path, out);
    }
    records += await this.workDir(id, out);
    out.add(line({ t: 'end', records }));
    await out.flush();
    return out.written;
  }

  /** The database part, in one read transaction on a read-only connection of its own. */
  private async snapshot(id: string, path: string, out: LineWriter): Promise<number> {
    const db = new Database(this.storage.file, { readonly: true, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      // Read only, inside the snapshot's own transaction: the store never opens one of its own here.
      const files = new SqliteDataFileStore(db, this.storage.events, () => undefined, (fn) => fn(), this.storage.dataFiles.chunkSize);
      db.exec('BEGIN');
      try {
        const lines = databaseLines(db, files, id, path);
        for (let r = lines.next(); ; r = lines.next()) {
          if (r.done) return r.value;
          if (out.add(r.value)) await out.flush();
        }
      } finally {
        db.exec('COMMIT');
      }
    } finally {
      db.close();
    }
  }

  /**
   * The work dir's regular files and directories. A file is opened without following a link, and only
   * if the opened file really is below the work dir (a parent swapped for a link meanwhile is skipped).
   */
  private async workDir(id: string, out: LineWriter): Promise<number> {
    const root = agentWorkDir(this.home, id);
    // Compared with where each opened file really is (the data dir itself may be reached through a link).
    const realRoot = await realpath(root).catch(() => root);
    let records = 0;
    for await (const e of walkWorkDir(root)) {
      if (e.kind === 'dir') {
        out.add(line({ t: 'work', path: e.rel, type: 'dir', mode: e.mode, mtime: e.mtimeMs, size: 0 }));
        records++;
        continue;
      }
      const fh = await open(join(root, e.rel), FS.O_RDONLY | FS.O_NOFOLLOW).catch(() => undefined);
      if (!fh) continue;
      try {
        const real = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => '');
        const st = await fh.stat();
        if (!real.startsWith(realRoot + '/') || !st.isFile()) continue;
        const size = st.size;
        out.add(line({ t: 'work', path: e.rel, type: 'file', mode: st.mode & 0o7777, mtime: st.mtimeMs, size }));
        records++;
        const buf = Buffer.alloc(Math.min(DATA_CHUNK, Math.max(size, 1)));
        for (let off = 0; off < size; off += DATA_CHUNK) {
          const want = Math.min(DATA_CHUNK, size - off);
          const { bytesRead } = await fh.read(buf, 0, want, off);
          // A file cut short while exported: its recorded size still holds (zeros), so the bundle stays whole.
          if (bytesRead < want) buf.fill(0, bytesRead, want);
          out.add(line({ t: 'data', data: buf.subarray(0, want).toString('base64') }));
          records++;
          if (out.due) await out.flush();
        }
      } finally {
        await fh.close();
      }
      if (out.due) await out.flush();
    }
    return records;
  }
}

/** Reads the spooled bundle by offset; closing it frees the file and the export's slot. */
class SpoolHandle implements Handle {
  readonly kind = 'view' as const;
  private closed = false;

  constructor(
    private readonly fh: FileHandle,
    private readonly size: number,
    private readonly path: string,
    private readonly baseStat: () => Stat,
    private readonly release: () => void,
  ) {}

  async read(length: number, offset: number): Promise<Uint8Array> {
    if (this.closed) throw new FsError('EBADF', this.path, 'file is closed');
    if (offset >= this.size) return EMPTY;
    const buf = Buffer.allocUnsafe(Math.min(length, this.size - offset));
    const { bytesRead } = await this.fh.read(buf, 0, buf.length, offset);
    return buf.subarray(0, bytesRead);
  }

  async readInto(target: Uint8Array, offset: number): Promise<number> {
    if (offset >= this.size) return 0;
    const { bytesRead } = await this.fh.read(target, 0, Math.min(target.length, this.size - offset), offset);
    return bytesRead;
  }

  async write(): Promise<number> {
    throw new FsError('EBADF', this.path, 'file not open for writing');
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.release();
    await this.fh.close();
  }

  async stat(): Promise<Stat> {
    return { ...this.baseStat(), size: this.size };
  }
}
