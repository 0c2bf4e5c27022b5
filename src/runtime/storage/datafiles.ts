/**
 * Data files in SQLite. Nodes are keyed by (tree, path); content lives in fixed-size chunks keyed by
 * node id, so an offset write touches only the chunks it covers and a rename moves no data. The first
 * chunk lives in the node row itself (`head`), so a small file is one row: one insert, one select.
 * There is no parent index: a directory's children are a range of the (tree, path) index, and a listing
 * skips over each subdirectory's subtree with one more range query.
 */
import type { CreateSpec, DataFileStore, DataNode } from '../../fs/datafs.js';
import { FsError } from '../../fs/errors.js';
import { EMPTY } from '../../fs/bytes.js';
import { parentOf } from '../../fs/paths.js';
import type { SetAttr } from '../../fs/types.js';
import type { EventLog } from '../../fs/events.js';
import type { Db } from './db.js';
import { HOT_FILE_BYTES, HotReads, type HotEntry } from './hot-reads.js';

export const CHUNK_SIZE = 64 * 1024;

export const dataFileMigrations = [
  {
    version: 3,
    name: 'data files',
    up: `
      CREATE TABLE data_nodes (
        id INTEGER PRIMARY KEY,
        tree TEXT NOT NULL, path TEXT NOT NULL,
        type TEXT NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
        size INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, atime INTEGER NOT NULL,
        version INTEGER NOT NULL,
        head BLOB,
        UNIQUE (tree, path));
      CREATE TABLE data_chunks (node INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (node, idx));`,
  },
  {
    // Times set by utimensat(2) (tar, cp -a, rsync -a) are kept to the nanosecond: the nanoseconds past
    // the millisecond of atime and mtime (0-999999); 0 for every time the server sets itself.
    version: 4,
    name: 'data file times to the nanosecond',
    up: `
      ALTER TABLE data_nodes ADD COLUMN atime_ns INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE data_nodes ADD COLUMN mtime_ns INTEGER NOT NULL DEFAULT 0;`,
  },
];

/** A row of data_nodes, without its head chunk. */
type NodeRow = DataNode;

const COLS = 'id, path, type, mode, uid, gid, size, mtime, ctime, atime, version, atime_ns AS atimeNs, mtime_ns AS mtimeNs';

/** The first path after every path below `dir` ('/' is followed by '0' in byte order). */
function subtreeEnd(dir: string): string {
  return dir === '/' ? '0' : dir + '0';
}


/** A copy that shares no memory (Buffer#slice would share it); small ones come from Node's buffer pool. */
function copyOf(bytes: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(bytes.length);
  out.set(bytes);
  return out;
}

/** Nanoseconds past the millisecond, as stored: an integer in 0..999999. */
function subMs(ns: number | undefined): number {
  return ns === undefined ? 0 : Math.min(999_999, Math.max(0, Math.floor(ns)));
}

/** Storage.tx's shape: runs `fn` in a transaction (IMMEDIATE when asked), a savepoint inside another. */
export type StorageTx = <T>(fn: () => T, options?: { immediate?: boolean }) => T;

/** Maps a tree to the event scope and path prefix its changes are reported under. */
export type TreeEvents = (tree: string) => { scope: string; prefix: string } | undefined;

export class SqliteDataFileStore implements DataFileStore {
  private readonly q;
  private readonly roots = new Set<string>();
  /** Hot reads (hot-reads.ts): emptied by every mutation through this store. */
  private readonly hot: HotReads;

  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
    private readonly treeEvents: TreeEvents,
    /** Storage.tx: the database's one transaction runner (its events reach watchers only on commit). */
    private readonly runTx: StorageTx,
    readonly chunkSize = CHUNK_SIZE,
  ) {
    this.q = {
      byPath: db.prepare(`SELECT ${COLS} FROM data_nodes WHERE tree = ? AND path = ?`),
      byPathWithHead: db.prepare(`SELECT ${COLS}, head FROM data_nodes WHERE tree = ? AND path = ?`),
      dataByPath: db.prepare('SELECT id, type, size, head FROM data_nodes WHERE tree = ? AND path = ?').raw(),
      byId: db.prepare(`SELECT ${COLS} FROM data_nodes WHERE tree = ? AND id = ?`),
      below: db.prepare(`SELECT ${COLS} FROM data_nodes WHERE tree = ? AND path >= ? AND path < ? ORDER BY path`),
      hasBelow: db.prepare('SELECT 1 FROM data_nodes WHERE tree = ? AND path > ? AND path < ? LIMIT 1').pluck(),
      insert: db.prepare(`INSERT INTO data_nodes (tree, path, type, mode, uid, gid, size, mtime, ctime, atime, version, head)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`),
      /** New content of a small file, by path, when the file is a small one: one statement, no lookup. */
      overwriteSmall: db.prepare(
        `UPDATE data_nodes SET head = ?, size = ?, mtime = ?, ctime = ?, version = version + 1
         WHERE tree = ? AND path = ? AND type = 'file' AND size <= ? RETURNING ${COLS}`,
      ),
      /** A file's whole content when it fits in the head: one row, one statement. */
      overwriteHead: db.prepare(
        `UPDATE data_nodes SET head = ?, size = ?, mtime = ?, ctime = ?, version = version + 1 WHERE id = ? RETURNING ${COLS}`,
      ),
      /** Touches a parent directory; 0 changes means it is missing or not a directory. */
      touchDir: db.prepare(
        "UPDATE data_nodes SET mtime = ?, mtime_ns = 0, ctime = ?, version = version + 1 WHERE tree = ? AND path = ? AND type = 'dir'",
      ),
      setSize: db.prepare(
        `UPDATE data_nodes SET size = ?, mtime = ?, mtime_ns = 0, ctime = ?, version = version + 1 WHERE id = ? RETURNING ${COLS}`,
      ),
      /** The size of a file this transaction created with its content: still version 1, as its `created` event says. */
      sizeOfNew: db.prepare(`UPDATE data_nodes SET size = ? WHERE id = ? RETURNING ${COLS}`),
      head: db.prepare('SELECT head FROM data_nodes WHERE id = ?').pluck(),
      setHead: db.prepare('UPDATE data_nodes SET head = ? WHERE id = ?'),
      chunk: db.prepare('SELECT data FROM data_chunks WHERE node = ? AND idx = ?').pluck(),
      chunkRange: db.prepare('SELECT idx, data FROM data_chunks WHERE node = ? AND idx BETWEEN ? AND ? ORDER BY idx'),
      putChunk: db.prepare('INSERT OR REPLACE INTO data_chunks (node, idx, data) VALUES (?, ?, ?)'),
      dropChunksFrom: db.prepare('DELETE FROM data_chunks WHERE node = ? AND idx >= ?'),
      dropNode: db.prepare('DELETE FROM data_nodes WHERE id = ?'),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      movePaths: db.prepare(`UPDATE data_nodes SET path = ? || substr(path, ?), ctime = ?
        WHERE tree = ? AND (path = ? OR (path > ? AND path < ?))`),
    };
    const dataVersion = this.q.dataVersion;
    this.hot = new HotReads(() => dataVersion.get() as number, () => db.inTransaction);
  }

  /**
   * Every mutation is one IMMEDIATE transaction (it reads, then writes: it takes the write lock at
   * BEGIN, so it never fails half way with SQLITE_BUSY or writes on a stale snapshot); inside another
   * transaction it is a savepoint. The hot-read cache is emptied whatever happened.
   */
  private tx<T>(fn: () => T): T {
    try {
      return this.runTx(fn, { immediate: true });
    } finally {
      this.forget();
    }
  }

  private emit(tree: string, path: string, type: 'created' | 'modified' | 'deleted', version?: number): void {
    const target = this.treeEvents(tree);
    if (!target) return;
    const full = target.prefix === '/' ? path : path === '/' ? target.prefix : target.prefix + path;
    this.events.emit(target.scope, full, type, version === undefined ? {} : { version });
  }

  ensureTree(tree: string): void {
    if (this.roots.has(tree)) return;
    if (!this.q.byPath.get(tree, '/')) {
      const now = Date.now();
      this.q.insert.run(tree, '/', 'dir', 0o755, 0, 0, 0, now, now, now, null);
    }
    this.roots.add(tree);
  }

  // --- chunks: index 0 is the node's head, the rest are rows of data_chunks ---

  private getChunk(id: number, idx: number): Uint8Array | undefined {
    return ((idx === 0 ? this.q.head.get(id) : this.q.chunk.get(id, idx)) ?? undefined) as Uint8Array | undefined;
  }

  private putChunk(id: number, idx: number, data: Uint8Array): void {
    if (idx === 0) this.q.setHead.run(data, id);
    else this.q.putChunk.run(id, idx, data);
  }

  private dropChunksFrom(id: number, idx: number): void {
    if (idx === 0) this.q.setHead.run(null, id);
    this.q.dropChunksFrom.run(id, Math.max(1, idx));
  }

  private forget(): void {
    this.hot.clear();
  }

  private hotGet(tree: string, path: string): HotEntry | undefined {
    return this.hot.get(tree, path);
  }

  private hotPut(tree: string, path: string, node: NodeRow, data: Uint8Array | undefined): void {
    this.hot.put(tree, path, node, data);
  }

  lookup(tree: string, path: string): DataNode | undefined {
    const hit = this.hotGet(tree, path);
    if (hit) return hit.node;
    this.ensureTree(tree);
    const row = this.q.byPath.get(tree, path) as NodeRow | undefined;
    if (row) this.hotPut(tree, path, row, undefined);
    return row;
  }

  get(tree: string, id: number): DataNode | undefined {
    return this.q.byId.get(tree, id) as NodeRow | undefined;
  }

  /**
   * The direct children of a directory, in path order. Paths below `dir/` sort between `dir/` and
   * `dir0` ('0' follows '/'); a deeper path `dir/sub/...` means the rest of `sub`'s subtree can be
   * skipped by restarting the range at `dir/sub0`.
   */
  children(tree: string, path: string): DataNode[] {
    const base = path === '/' ? '/' : path + '/';
    const end = subtreeEnd(path);
    const out: NodeRow[] = [];
    let from = base;
    for (;;) {
      let skipTo: string | undefined;
      for (const row of this.q.below.iterate(tree, from, end) as Iterable<NodeRow>) {
        if (row.path === path) continue; // the root itself sorts first
        const slash = row.path.indexOf('/', base.length);
        if (slash === -1) {
          out.push(row);
          continue;
        }
        skipTo = row.path.slice(0, slash) + '0';
        break;
      }
      if (skipTo === undefined) return out;
      from = skipTo;
    }
  }

  private hasChildren(tree: string, path: string): boolean {
    return !!this.q.hasBelow.get(tree, path === '/' ? '/' : path + '/', subtreeEnd(path));
  }

  /** Touches the parent of `path`, failing with ENOENT/ENOTDIR when it is missing or not a directory. */
  private touchParent(tree: string, path: string, now: number): void {
    const parent = parentOf(path);
    if (this.q.touchDir.run(now, now, tree, parent).changes === 1) return;
    const node = this.q.byPath.get(tree, parent) as NodeRow | undefined;
    if (!node) throw new FsError('ENOENT', path, 'parent directory does not exist');
    throw new FsError('ENOTDIR', path, 'parent is not a directory');
  }

  private createIn(tree: string, path: string, spec: CreateSpec, now: number, head: Uint8Array | null = null): NodeRow {
    const mode = spec.mode & 0o7777;
    const size = head?.length ?? 0;
    // Insert first: a taken path fails here, before anything else was written.
    const info = this.q.insert.run(tree, path, spec.type, mode, spec.uid, spec.gid, size, now, now, now, head);
    this.touchParent(tree, path, now);
    this.emit(tree, path, 'created', 1);
    return { id: Number(info.lastInsertRowid), path, type: spec.type, mode, uid: spec.uid, gid: spec.gid, size, mtime: now, ctime: now, atime: now, version: 1, atimeNs: 0, mtimeNs: 0 };
  }

  create(tree: string, path: string, spec: CreateSpec): { node: DataNode; created: boolean } {
    this.ensureTree(tree);
    return this.tx(() => {
      const existing = this.q.byPath.get(tree, path) as NodeRow | undefined;
      if (existing) {
        if (spec.exclusive || spec.type === 'dir') throw new FsError('EEXIST', path, 'file exists');
        return { node: existing, created: false };
      }
      return { node: this.createIn(tree, path, spec, Date.now()), created: true };
    });
  }

  read(tree: string, id: number, offset: number, length: number): Uint8Array {
    const node = this.q.byId.get(tree, id) as NodeRow | undefined;
    if (!node) return EMPTY;
    return this.readRange(node, offset, length);
  }

  /** The whole content of a file by path in one step (HTTP GET, readAll). */
  /**
   * Only the content of a file: four columns instead of the whole node (half the cost of readWhole).
   * Served from the hot cache when it has the file; what it reads is not added to it (no full node).
   */
  readData(tree: string, path: string): Uint8Array | 'dir' | undefined {
    const hit = this.hotGet(tree, path);
    if (hit?.data) return copyOf(hit.data);
    this.ensureTree(tree);
    const row = this.q.dataByPath.get(tree, path) as [number, string, number, Uint8Array | null] | undefined;
    if (!row) return undefined;
    const [id, type, size, head] = row;
    if (type === 'dir') return 'dir';
    if (size <= this.chunkSize && (head?.length ?? 0) >= size) return head ? head.subarray(0, size) : EMPTY;
    return this.read(tree, id, 0, size);
  }

  readWhole(tree: string, path: string): { node: DataNode; data: Uint8Array } | undefined {
    const hit = this.hotGet(tree, path);
    // Callers get their own bytes: the cached ones must not change under the next reader. (Nodes are
    // frozen: shared safely.)
    if (hit?.data) return { node: hit.node, data: copyOf(hit.data) };
    this.ensureTree(tree);
    const row = this.q.byPathWithHead.get(tree, path) as (NodeRow & { head: Uint8Array | null }) | undefined;
    if (!row) return undefined;
    const { head, ...node } = row;
    if (node.type === 'dir') return { node, data: EMPTY };
    let data: Uint8Array;
    if (node.size <= this.chunkSize && (head?.length ?? 0) >= node.size) data = head ? head.subarray(0, node.size) : EMPTY;
    else data = this.readRange(node, 0, node.size);
    if (node.size <= HOT_FILE_BYTES) this.hotPut(tree, path, node, copyOf(data));
    return { node, data };
  }

  private readRange(node: NodeRow, offset: number, length: number): Uint8Array {
    const id = node.id;
    const end = Math.min(node.size, offset + length);
    if (offset >= end) return EMPTY;
    const C = this.chunkSize;
    const first = Math.floor(offset / C);
    if (first === Math.floor((end - 1) / C)) {
      // Within one chunk: the chunk's own bytes, no copy.
      const data = this.getChunk(id, first);
      const from = offset - first * C;
      const want = end - offset;
      if (data && data.length >= from + want) return data.subarray(from, from + want);
    }
    // Not zeroed: readRangeInto writes every byte (zeros only in the gaps).
    const out = Buffer.allocUnsafe(end - offset);
    this.readRangeInto(node, offset, out);
    return out;
  }

  readInto(tree: string, id: number, offset: number, target: Uint8Array): number {
    const node = this.q.byId.get(tree, id) as NodeRow | undefined;
    if (!node) return 0;
    return this.readRangeInto(node, offset, target);
  }

  /**
   * Copies the file's bytes from `offset` into `target` (as many as fit and exist) and returns how many.
   * Chunks arrive in order; only the gaps between them (holes, short chunks) are zeroed.
   */
  private readRangeInto(node: NodeRow, offset: number, target: Uint8Array): number {
    const id = node.id;
    const end = Math.min(node.size, offset + target.length);
    if (offset >= end) return 0;
    const n = end - offset;
    const C = this.chunkSize;
    const first = Math.floor(offset / C);
    const last = Math.floor((end - 1) / C);
    let filled = 0;
    const place = (idx: number, data: Uint8Array) => {
      const chunkStart = idx * C;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(end, chunkStart + data.length);
      if (to <= from) return;
      if (from - offset > filled) target.fill(0, filled, from - offset);
      target.set(data.subarray(from - chunkStart, to - chunkStart), from - offset);
      filled = to - offset;
    };
    if (first === 0) {
      const head = this.getChunk(id, 0);
      if (head) place(0, head);
    }
    if (last >= 1) {
      for (const row of this.q.chunkRange.iterate(id, Math.max(1, first), last) as Iterable<{ idx: number; data: Uint8Array }>) {
        place(row.idx, row.data);
      }
    }
    if (filled < n) target.fill(0, filled, n);
    return n;
  }

  /** Writes bytes at `at` into the chunks they cover; the caller holds the transaction. */
  private writeChunks(id: number, at: number, data: Uint8Array, fresh = false): void {
    const C = this.chunkSize;
    let pos = 0;
    while (pos < data.length) {
      const abs = at + pos;
      const idx = Math.floor(abs / C);
      const within = abs - idx * C;
      const take = Math.min(C - within, data.length - pos);
      const piece = data.subarray(pos, pos + take);
      if ((within === 0 && take === C) || (fresh && within === 0)) {
        this.putChunk(id, idx, piece);
      } else {
        const old = fresh ? undefined : this.getChunk(id, idx);
        const merged = new Uint8Array(Math.max(old?.length ?? 0, within + take));
        if (old) merged.set(old);
        merged.set(piece, within);
        this.putChunk(id, idx, merged);
      }
      pos += take;
    }
  }

  write(tree: string, id: number, offset: number | 'append', data: Uint8Array): DataNode {
    return this.tx(() => {
      const node = this.q.byId.get(tree, id) as NodeRow | undefined;
      if (!node) throw new FsError('ENOENT', '/', 'file was removed');
      const at = offset === 'append' ? node.size : offset;
      this.writeChunks(id, at, data);
      const now = Date.now();
      const updated = this.q.setSize.get(Math.max(node.size, at + data.length), now, now, id) as NodeRow;
      this.emit(tree, updated.path, 'modified', updated.version);
      return updated;
    });
  }

  /** Cuts a file's chunks down to `size`; the caller holds the transaction. */
  private cut(node: NodeRow, size: number): void {
    if (size >= node.size) return;
    const C = this.chunkSize;
    const keep = Math.ceil(size / C);
    this.dropChunksFrom(node.id, keep);
    const lastLen = size - (keep - 1) * C;
    if (keep > 0 && lastLen < C) {
      const last = this.getChunk(node.id, keep - 1);
      if (last && last.length > lastLen) this.putChunk(node.id, keep - 1, last.subarray(0, lastLen));
    }
  }

  truncate(tree: string, id: number, size: number): DataNode {
    return this.tx(() => {
      const node = this.q.byId.get(tree, id) as NodeRow | undefined;
      if (!node) throw new FsError('ENOENT', '/', 'file was removed');
      this.cut(node, size);
      const now = Date.now();
      const updated = this.q.setSize.get(size, now, now, id) as NodeRow;
      this.emit(tree, updated.path, 'modified', updated.version);
      return updated;
    });
  }

  replace(
    tree: string,
    path: string,
    data: Uint8Array,
    spec: CreateSpec & { ifVersion?: number; append?: boolean },
  ): DataNode {
    this.ensureTree(tree);
    const small = spec.ifVersion === undefined && !spec.append && data.length <= this.chunkSize;
    const triedOutside = small && this.db.inTransaction;
    if (triedOutside) {
      // Small over small is one statement, atomic alone: inside the caller's transaction (the group
      // commit's) it needs no savepoint of its own.
      const updated = this.overwriteSmall(tree, path, data, Date.now());
      if (updated) return updated;
    }
    return this.tx(() => {
      const now = Date.now();
      if (small && !triedOutside) {
        const updated = this.overwriteSmall(tree, path, data, now);
        if (updated) return updated;
      }
      // Looked up, never an insert that may fail: a failed insert costs an exception (measured: 8.5%
      // of the CPU of PUTs over existing files).
      const node = this.q.byPath.get(tree, path) as NodeRow | undefined;
      if (spec.ifVersion !== undefined && (node?.version ?? 0) !== spec.ifVersion) {
        throw new FsError('ESTALE', path, `version is ${node?.version ?? 0}, not ${spec.ifVersion}`);
      }
      if (!node) {
        if (data.length <= this.chunkSize) return this.createIn(tree, path, spec, now, data);
        const created = this.createIn(tree, path, spec, now);
        this.writeChunks(created.id, 0, data, true);
        // A file made by this write is at version 1 whatever its size (HTTP answers 201 for it).
        return this.q.sizeOfNew.get(data.length, created.id) as NodeRow;
      }
      if (node.type === 'dir') throw new FsError('EISDIR', path, 'is a directory');
      if (!spec.append && data.length <= this.chunkSize) {
        // The common case, new small content: it becomes the head; chunks past it (a larger file before) go.
        if (node.size > this.chunkSize) this.q.dropChunksFrom.run(node.id, 1);
        const updated = this.q.overwriteHead.get(data.length > 0 ? data : null, data.length, now, now, node.id) as NodeRow;
        this.emit(tree, path, 'modified', updated.version);
        return updated;
      }
      const at = spec.append ? node.size : 0;
      if (!spec.append) this.cut(node, 0);
      this.writeChunks(node.id, at, data, !spec.append);
      const updated = this.q.setSize.get(at + data.length, now, now, node.id) as NodeRow;
      this.emit(tree, path, 'modified', updated.version);
      return updated;
    });
  }

  /** The whole content of an existing small file replaced by small content, or undefined (no such small file). */
  private overwriteSmall(tree: string, path: string, data: Uint8Array, now: number): NodeRow | undefined {
    const updated = this.q.overwriteSmall.get(data.length > 0 ? data : null, data.length, now, now, tree, path, this.chunkSize) as NodeRow | undefined;
    if (!updated) return undefined;
    this.forget();
    this.emit(tree, path, 'modified', updated.version);
    return updated;
  }

  remove(tree: string, path: string, dir: boolean): DataNode {
    return this.tx(() => {
      const node = this.q.byPath.get(tree, path) as NodeRow | undefined;
      if (!node) throw new FsError('ENOENT', path, 'no such file or directory');
      if (dir && node.type !== 'dir') throw new FsError('ENOTDIR', path, 'not a directory');
      if (!dir && node.type === 'dir') throw new FsError('EISDIR', path, 'is a directory');
      if (node.type === 'dir' && this.hasChildren(tree, path)) {
        throw new FsError('ENOTEMPTY', path, 'directory not empty');
      }
      this.q.dropNode.run(node.id);
      this.q.dropChunksFrom.run(node.id, 1);
      this.touchParent(tree, path, Date.now());
      this.emit(tree, path, 'deleted');
      return node;
    });
  }

  rename(tree: string, from: string, to: string): void {
    if (from === to) return;
    this.tx(() => {
      const src = this.q.byPath.get(tree, from) as NodeRow | undefined;
      if (!src) throw new FsError('ENOENT', from, 'no such file or directory');
      const now = Date.now();
      this.touchParent(tree, to, now);
      const dst = this.q.byPath.get(tree, to) as NodeRow | undefined;
      if (dst) {
        if (src.type === 'dir' && dst.type !== 'dir') throw new FsError('ENOTDIR', to, 'not a directory');
        if (src.type !== 'dir' && dst.type === 'dir') throw new FsError('EISDIR', to, 'is a directory');
        if (dst.type === 'dir' && this.hasChildren(tree, to)) throw new FsError('ENOTEMPTY', to, 'directory not empty');
        this.q.dropNode.run(dst.id);
        this.q.dropChunksFrom.run(dst.id, 1);
      }
      // Moves `from` and everything below it: the path prefix is rewritten.
      this.q.movePaths.run(to, from.length + 1, now, tree, from, from + '/', subtreeEnd(from));
      if (parentOf(to) !== parentOf(from)) this.touchParent(tree, from, now);
      this.emit(tree, from, 'deleted');
      this.emit(tree, to, 'created', src.version);
    });
  }

  setattr(tree: string, path: string, attrs: SetAttr): DataNode {
    return this.tx(() => {
      const node = this.q.byPath.get(tree, path) as NodeRow | undefined;
      if (!node) throw new FsError('ENOENT', path, 'no such file or directory');
      const next = {
        mode: attrs.mode !== undefined ? attrs.mode & 0o7777 : node.mode,
        uid: attrs.uid ?? node.uid,
        gid: attrs.gid ?? node.gid,
        atime: attrs.atime ?? node.atime,
        mtime: attrs.mtime ?? node.mtime,
        atimeNs: attrs.atime !== undefined ? subMs(attrs.atimeNs) : node.atimeNs,
        mtimeNs: attrs.mtime !== undefined ? subMs(attrs.mtimeNs) : node.mtimeNs,
      };
      const updated = this.db
        .prepare(
          `UPDATE data_nodes SET mode = ?, uid = ?, gid = ?, atime = ?, mtime = ?, atime_ns = ?, mtime_ns = ?, ctime = ?,
           version = version + 1 WHERE id = ? RETURNING ${COLS}`,
        )
        .get(next.mode, next.uid, next.gid, next.atime, next.mtime, next.atimeNs, next.mtimeNs, Date.now(), node.id) as NodeRow;
      this.emit(tree, path, 'modified', updated.version);
      return updated;
    });
  }

  /** Removes a whole tree (a deleted agent's memory). */
  dropTree(tree: string): void {
    this.tx(() => {
      this.db.prepare('DELETE FROM data_chunks WHERE node IN (SELECT id FROM data_nodes WHERE tree = ?)').run(tree);
      this.db.prepare('DELETE FROM data_nodes WHERE tree = ?').run(tree);
    });
    this.roots.delete(tree);
  }

  /** Gives every node of tree `from` to tree `to` (which must be empty); content stays where it is (keyed by node). */
  moveTree(from: string, to: string): void {
    this.tx(() => {
      this.db.prepare('DELETE FROM data_chunks WHERE node IN (SELECT id FROM data_nodes WHERE tree = ?)').run(to);
      this.db.prepare('DELETE FROM data_nodes WHERE tree = ?').run(to);
      this.db.prepare('UPDATE data_nodes SET tree = ? WHERE tree = ?').run(to, from);
    });
    this.roots.delete(from);
    this.roots.delete(to);
  }

  /** Chunks whose node is gone (left by an interrupted removal). */
  collectGarbage(): number {
    this.forget();
    return this.db.prepare('DELETE FROM data_chunks WHERE node NOT IN (SELECT id FROM data_nodes)').run().changes;
  }
}
