/**
 * Data files in SQLite. Nodes are keyed by (tree, path); content lives in fixed-size chunks keyed by
 * node id (data-chunks.ts), so an offset write touches only the chunks it covers and a rename moves no
 * data. There is no parent index: a directory's children are a range of the (tree, path) index, and a
 * listing skips over each subdirectory's subtree with one more range query.
 *
 * Node kinds: files, directories, symbolic links (the target is the content), FIFOs and sockets (no
 * content: the kernel passes their data). A hard-linked node keeps its row (attributes, content) under
 * one of its names; each further name is a row of type 'name' whose `inode` is that row's id, so every
 * name finds the same node, version and bytes. When the name holding the row goes, the row takes over
 * another name. A node whose last name goes while it is open (retain/release) stays, nameless, under a
 * hidden path until the last handle closes (or the next start), as on a local disk.
 */
import { notAFile, type CreateSpec, type DataFileStore, type DataNode } from '../../fs/datafs.js';
import { FsError } from '../../fs/errors.js';
import { EMPTY } from '../../fs/bytes.js';
import { parentOf } from '../../fs/paths.js';
import type { NodeType, SetAttr } from '../../fs/types.js';
import type { EventLog } from '../../fs/events.js';
import type { Db } from './db.js';
import { DataChunks } from './data-chunks.js';
import { HOT_FILE_BYTES, HotReads } from './hot-reads.js';

export { dataFileMigrations } from './datafile-migrations.js';

export const CHUNK_SIZE = 64 * 1024;

/**
 * A row of data_nodes, without its head chunk: a node, or (type 'name') one more name of the hard-linked
 * node whose id is `inode`.
 */
type Row = Omit<DataNode, 'type'> & { type: NodeType | 'name'; inode: number | null };
type NodeRow = DataNode;

const COLS = 'id, path, type, mode, uid, gid, size, mtime, ctime, atime, version, atime_ns AS atimeNs, mtime_ns AS mtimeNs, nlink, inode';

/** The path under which a node lives on, nameless, while it is open: outside every directory's range. */
const ORPHAN = '\u0001';

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
  private readonly chunks: DataChunks;
  /** Open handles per node (retain/release): a node removed while open lives on until they close. */
  private readonly openCount = new Map<number, number>();

  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
    private readonly treeEvents: TreeEvents,
    /** Storage.tx: the database's one transaction runner (its events reach watchers only on commit). */
    private readonly runTx: StorageTx,
    readonly chunkSize = CHUNK_SIZE,
  ) {
    this.chunks = new DataChunks(db, chunkSize);
    this.q = {
      byPath: db.prepare(`SELECT ${COLS} FROM data_nodes WHERE tree = ? AND path = ?`),
      byPathWithHead: db.prepare(`SELECT ${COLS}, head FROM data_nodes WHERE tree = ? AND path = ?`),
      dataByPath: db.prepare('SELECT id, type, size, head FROM data_nodes WHERE tree = ? AND path = ?').raw(),
      byId: db.prepare(`SELECT ${COLS} FROM data_nodes WHERE tree = ? AND id = ?`),
      below: db.prepare(`SELECT ${COLS} FROM data_nodes WHERE tree = ? AND path >= ? AND path < ? ORDER BY path`),
      hasBelow: db.prepare('SELECT 1 FROM data_nodes WHERE tree = ? AND path > ? AND path < ? LIMIT 1').pluck(),
      insert: db.prepare(`INSERT INTO data_nodes (tree, path, type, mode, uid, gid, size, mtime, ctime, atime, version, head, nlink, inode)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`),
      /** New content of a small file, by path, when the file is a small one: one statement, no lookup. */
      overwriteSmall: db.prepare(
        `UPDATE data_nodes SET head = ?, size = ?, mtime = ?, ctime = ?, version = version + 1
         WHERE tree = ? AND path = ? AND type = 'file' AND size <= ? RETURNING ${COLS}`,
      ),
      /** A file's whole content when it fits in the head: one row, one statement. */
      overwriteHead: db.prepare(
        `UPDATE data_nodes SET head = ?, size = ?, mtime = ?, ctime = ?, version = version + 1 WHERE id = ? RETURNING ${COLS}`,
      ),
      /** Touches a parent directory (and counts a subdirectory made or gone); 0 changes: missing or not a directory. */
      touchDir: db.prepare(
        "UPDATE data_nodes SET mtime = ?, mtime_ns = 0, ctime = ?, version = version + 1, nlink = nlink + ? WHERE tree = ? AND path = ? AND type = 'dir'",
      ),
      setSize: db.prepare(
        `UPDATE data_nodes SET size = ?, mtime = ?, mtime_ns = 0, ctime = ?, version = version + 1 WHERE id = ? RETURNING ${COLS}`,
      ),
      /** The size of a file this transaction created with its content: still version 1, as its `created` event says. */
      sizeOfNew: db.prepare(`UPDATE data_nodes SET size = ? WHERE id = ? RETURNING ${COLS}`),
      /** A node's names changed (a link made or gone): its ctime and version follow. */
      addNames: db.prepare(`UPDATE data_nodes SET nlink = nlink + ?, ctime = ?, version = version + 1 WHERE id = ? RETURNING ${COLS}`),
      /** The node's row takes over another of its names. */
      takeName: db.prepare(`UPDATE data_nodes SET path = ?, nlink = nlink - 1, ctime = ?, version = version + 1 WHERE id = ? RETURNING ${COLS}`),
      /** The further names of a node. */
      namesOf: db.prepare('SELECT path FROM data_nodes WHERE inode = ? ORDER BY path').pluck(),
      anyName: db.prepare('SELECT id, path FROM data_nodes WHERE inode = ? ORDER BY path LIMIT 1'),
      head: db.prepare('SELECT head FROM data_nodes WHERE id = ?').pluck(),
      dropNode: db.prepare('DELETE FROM data_nodes WHERE id = ?'),
      orphan: db.prepare(`UPDATE data_nodes SET path = ?, nlink = 0, ctime = ?, version = version + 1 WHERE id = ?`),
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

  /** A change of a node is a change under every name it has (none: a removed node still open). */
  private emitNames(tree: string, node: NodeRow, type: 'modified' | 'deleted', except?: string): void {
    if (node.path.startsWith(ORPHAN)) return;
    if (node.path !== except) this.emit(tree, node.path, type, node.version);
    if (node.nlink > 1 && node.type !== 'dir') {
      // All first: emitting writes the event log, which an open iteration of this connection forbids.
      for (const p of this.q.namesOf.all(node.id) as string[]) if (p !== except) this.emit(tree, p, type, node.version);
    }
  }

  ensureTree(tree: string): void {
    if (this.roots.has(tree)) return;
    if (!this.q.byPath.get(tree, '/')) {
      const now = Date.now();
      this.q.insert.run(tree, '/', 'dir', 0o755, 0, 0, 0, now, now, now, null, 2, null);
    }
    this.roots.add(tree);
  }

  private forget(): void {
    this.hot.clear();
  }

  /** A row as the node it names: a further name of a hard-linked node gives that node, under this name. */
  private resolve(tree: string, row: Row | undefined): NodeRow | undefined {
    if (!row) return undefined;
    if (row.type !== 'name') return row.type === 'symlink' ? this.withTarget(row as NodeRow) : (row as NodeRow);
    const node = this.q.byId.get(tree, row.inode) as NodeRow | undefined;
    if (!node) return undefined;
    const named = { ...node, path: row.path };
    return named.type === 'symlink' ? this.withTarget(named) : named;
  }

  private withTarget(node: NodeRow): NodeRow {
    const head = this.q.head.get(node.id) as Uint8Array | null;
    return { ...node, target: head ? Buffer.from(head.buffer, head.byteOffset, head.byteLength).toString('utf8') : '' };
  }

  /** The node at `path` (a further name resolved), uncached. */
  private named(tree: string, path: string): NodeRow | undefined {
    return this.resolve(tree, this.q.byPath.get(tree, path) as Row | undefined);
  }

  lookup(tree: string, path: string): DataNode | undefined {
    const hit = this.hot.get(tree, path);
    if (hit) return hit.node;
    this.ensureTree(tree);
    const node = this.named(tree, path);
    if (node) this.hot.put(tree, path, node, undefined);
    return node;
  }

  get(tree: string, id: number): DataNode | undefined {
    const row = this.q.byId.get(tree, id) as NodeRow | undefined;
    return row?.type === 'symlink' ? this.withTarget(row) : row;
  }

  /**
   * The direct children of a directory, in path order. Paths below `dir/` sort between `dir/` and
   * `dir0` ('0' follows '/'); a deeper path `dir/sub/...` means the rest of `sub`'s subtree can be
   * skipped by restarting the range at `dir/sub0`.
   */
  children(tree: string, path: string): DataNode[] {
    const base = path === '/' ? '/' : path + '/';
    const end = subtreeEnd(path);
    const out: Row[] = [];
    let from = base;
    for (;;) {
      let skipTo: string | undefined;
      for (const row of this.q.below.iterate(tree, from, end) as Iterable<Row>) {
        if (row.path === path) continue; // the root itself sorts first
        const slash = row.path.indexOf('/', base.length);
        if (slash === -1) {
          out.push(row);
          continue;
        }
        skipTo = row.path.slice(0, slash) + '0';
        break;
      }
      if (skipTo === undefined) break;
      from = skipTo;
    }
    // Further names and symbolic links need a second look (their node, their target): only theirs.
    const nodes: NodeRow[] = [];
    for (const row of out) {
      const node = row.type === 'name' || row.type === 'symlink' ? this.resolve(tree, row) : (row as NodeRow);
      if (node) nodes.push(node);
    }
    return nodes;
  }

  private hasChildren(tree: string, path: string): boolean {
    return !!this.q.hasBelow.get(tree, path === '/' ? '/' : path + '/', subtreeEnd(path));
  }

  /**
   * Touches the parent of `path` (counting `dirs` subdirectories more or fewer), failing with
   * ENOENT/ENOTDIR when it is missing or not a directory.
   */
  private touchParent(tree: string, path: string, now: number, dirs = 0): void {
    const parent = parentOf(path);
    if (this.q.touchDir.run(now, now, dirs, tree, parent).changes === 1) return;
    const node = this.named(tree, parent);
    if (!node) throw new FsError('ENOENT', path, 'parent directory does not exist');
    throw new FsError('ENOTDIR', path, 'parent is not a directory');
  }

  private createIn(tree: string, path: string, spec: CreateSpec | (Omit<CreateSpec, 'type'> & { type: 'symlink' }), now: number, head: Uint8Array | null = null): NodeRow {
    const mode = spec.mode & 0o7777;
    const size = head?.length ?? 0;
    const dir = spec.type === 'dir';
    // Insert first: a taken path fails here, before anything else was written.
    const info = this.q.insert.run(tree, path, spec.type, mode, spec.uid, spec.gid, size, now, now, now, head, dir ? 2 : 1, null);
    this.touchParent(tree, path, now, dir ? 1 : 0);
    this.emit(tree, path, 'created', 1);
    const id = Number(info.lastInsertRowid);
    const times = { mtime: now, ctime: now, atime: now, atimeNs: 0, mtimeNs: 0 };
    return { id, path, type: spec.type, mode, uid: spec.uid, gid: spec.gid, size, ...times, version: 1, nlink: dir ? 2 : 1 };
  }

  create(tree: string, path: string, spec: CreateSpec): { node: DataNode; created: boolean } {
    this.ensureTree(tree);
    return this.tx(() => {
      const existing = this.named(tree, path);
      if (existing) {
        if (spec.exclusive || spec.type !== 'file') throw new FsError('EEXIST', path, 'file exists');
        return { node: existing, created: false };
      }
      return { node: this.createIn(tree, path, spec, Date.now()), created: true };
    });
  }

  symlink(tree: string, path: string, target: Uint8Array, owner: { uid: number; gid: number }): DataNode {
    this.ensureTree(tree);
    return this.tx(() => {
      if (this.q.byPath.get(tree, path)) throw new FsError('EEXIST', path, 'file exists');
      const node = this.createIn(tree, path, { type: 'symlink', mode: 0o777, exclusive: true, ...owner }, Date.now(), target);
      return this.withTarget(node);
    });
  }

  link(tree: string, from: string, to: string): DataNode {
    this.ensureTree(tree);
    return this.tx(() => {
      const src = this.named(tree, from);
      if (!src) throw new FsError('ENOENT', from, 'no such file or directory');
      if (src.type === 'dir') throw new FsError('EPERM', from, 'hard links to directories are not allowed');
      if (this.q.byPath.get(tree, to)) throw new FsError('EEXIST', to, 'file exists');
      const now = Date.now();
      this.q.insert.run(tree, to, 'name', 0, 0, 0, 0, now, now, now, null, 1, src.id);
      this.touchParent(tree, to, now);
      const node = this.q.addNames.get(1, now, src.id) as NodeRow;
      this.emit(tree, to, 'created', node.version);
      this.emitNames(tree, node, 'modified', to);
      const named = { ...node, path: to };
      return named.type === 'symlink' ? this.withTarget(named) : named;
    });
  }

  read(tree: string, id: number, offset: number, length: number): Uint8Array {
    const node = this.q.byId.get(tree, id) as NodeRow | undefined;
    if (!node) return EMPTY;
    return this.chunks.readRange(node, offset, length);
  }

  /**
   * Only the content of a file: four columns instead of the whole node (half the cost of readWhole).
   * Served from the hot cache when it has the file; what it reads is not added to it (no full node).
   * Undefined for a node that is no plain file (a further name, a link): the caller looks it up.
   */
  readData(tree: string, path: string): Uint8Array | 'dir' | undefined {
    const hit = this.hot.get(tree, path);
    if (hit?.data) return copyOf(hit.data);
    this.ensureTree(tree);
    const row = this.q.dataByPath.get(tree, path) as [number, string, number, Uint8Array | null] | undefined;
    if (!row) return undefined;
    const [id, type, size, head] = row;
    if (type === 'dir') return 'dir';
    if (type !== 'file') return undefined;
    if (size <= this.chunkSize && (head?.length ?? 0) >= size) return head ? head.subarray(0, size) : EMPTY;
    return this.read(tree, id, 0, size);
  }

  /** The whole content of a file by path in one step (HTTP GET, readAll); a node that is no file has none. */
  readWhole(tree: string, path: string): { node: DataNode; data: Uint8Array } | undefined {
    const hit = this.hot.get(tree, path);
    // Callers get their own bytes: the cached ones must not change under the next reader. (Nodes are
    // frozen: shared safely.)
    if (hit?.data) return { node: hit.node, data: copyOf(hit.data) };
    this.ensureTree(tree);
    const row = this.q.byPathWithHead.get(tree, path) as (Row & { head: Uint8Array | null }) | undefined;
    if (!row) return undefined;
    const { head, ...rest } = row;
    if (rest.type !== 'file') {
      const node = this.resolve(tree, rest);
      if (!node) return undefined;
      return { node, data: node.type === 'file' ? this.chunks.readRange(node, 0, node.size) : EMPTY };
    }
    const node = rest as NodeRow;
    let data: Uint8Array;
    if (node.size <= this.chunkSize && (head?.length ?? 0) >= node.size) data = head ? head.subarray(0, node.size) : EMPTY;
    else data = this.chunks.readRange(node, 0, node.size);
    if (node.size <= HOT_FILE_BYTES) this.hot.put(tree, path, node, copyOf(data));
    return { node, data };
  }

  readInto(tree: string, id: number, offset: number, target: Uint8Array): number {
    const node = this.q.byId.get(tree, id) as NodeRow | undefined;
    if (!node) return 0;
    return this.chunks.readRangeInto(node, offset, target);
  }

  write(tree: string, id: number, offset: number | 'append', data: Uint8Array): DataNode {
    return this.tx(() => {
      const node = this.q.byId.get(tree, id) as NodeRow | undefined;
      if (!node) throw new FsError('ENOENT', '/', 'file was removed');
      const at = offset === 'append' ? node.size : offset;
      this.chunks.write(id, at, data);
      const now = Date.now();
      const updated = this.q.setSize.get(Math.max(node.size, at + data.length), now, now, id) as NodeRow;
      this.emitNames(tree, updated, 'modified');
      return updated;
    });
  }

  truncate(tree: string, id: number, size: number): DataNode {
    return this.tx(() => {
      const node = this.q.byId.get(tree, id) as NodeRow | undefined;
      if (!node) throw new FsError('ENOENT', '/', 'file was removed');
      this.chunks.cut(node, size);
      const now = Date.now();
      const updated = this.q.setSize.get(size, now, now, id) as NodeRow;
      this.emitNames(tree, updated, 'modified');
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
      const node = this.named(tree, path);
      if (spec.ifVersion !== undefined && (node?.version ?? 0) !== spec.ifVersion) {
        throw new FsError('ESTALE', path, `version is ${node?.version ?? 0}, not ${spec.ifVersion}`);
      }
      if (!node) {
        if (data.length <= this.chunkSize) return this.createIn(tree, path, spec, now, data);
        const created = this.createIn(tree, path, spec, now);
        this.chunks.write(created.id, 0, data, true);
        // A file made by this write is at version 1 whatever its size (HTTP answers 201 for it).
        return this.q.sizeOfNew.get(data.length, created.id) as NodeRow;
      }
      if (node.type !== 'file') throw notAFile(node, path);
      let updated: NodeRow;
      if (!spec.append && data.length <= this.chunkSize) {
        // The common case, new small content: it becomes the head; chunks past it (a larger file before) go.
        if (node.size > this.chunkSize) this.chunks.dropRows(node.id);
        updated = this.q.overwriteHead.get(data.length > 0 ? data : null, data.length, now, now, node.id) as NodeRow;
      } else {
        const at = spec.append ? node.size : 0;
        if (!spec.append) this.chunks.cut(node, 0);
        this.chunks.write(node.id, at, data, !spec.append);
        updated = this.q.setSize.get(at + data.length, now, now, node.id) as NodeRow;
      }
      this.emitNames(tree, updated, 'modified');
      return { ...updated, path };
    });
  }

  /** The whole content of an existing small file replaced by small content, or undefined (no such small file). */
  private overwriteSmall(tree: string, path: string, data: Uint8Array, now: number): NodeRow | undefined {
    const updated = this.q.overwriteSmall.get(data.length > 0 ? data : null, data.length, now, now, tree, path, this.chunkSize) as NodeRow | undefined;
    if (!updated) return undefined;
    this.forget();
    this.emitNames(tree, updated, 'modified');
    return updated;
  }

  /**
   * `row`'s name goes (a remove, or a rename over it); the caller holds the transaction. A further name
   * goes alone; the name holding a hard-linked node's row hands the row another name; a node's last name
   * takes the node with it, unless it is open (then it lives on, nameless, until it is released).
   * Returns the node when it still has names (its other names see a change).
   */
  private dropName(tree: string, row: Row, now: number): NodeRow | undefined {
    if (row.type === 'name') {
      this.q.dropNode.run(row.id);
      return this.q.addNames.get(-1, now, row.inode) as NodeRow | undefined;
    }
    const node = row as NodeRow;
    if (node.type !== 'dir' && node.nlink > 1) {
      const other = this.q.anyName.get(row.id) as { id: number; path: string } | undefined;
      if (other) {
        this.q.dropNode.run(other.id);
        return this.q.takeName.get(other.path, now, row.id) as NodeRow;
      }
    }
    if ((this.openCount.get(row.id) ?? 0) > 0) {
      this.q.orphan.run(ORPHAN + row.id, now, row.id);
      return undefined;
    }
    this.q.dropNode.run(row.id);
    this.chunks.dropRows(row.id);
    return undefined;
  }

  remove(tree: string, path: string, dir: boolean): DataNode {
    return this.tx(() => {
      const row = this.q.byPath.get(tree, path) as Row | undefined;
      const node = this.resolve(tree, row);
      if (!row || !node) throw new FsError('ENOENT', path, 'no such file or directory');
      if (dir && node.type !== 'dir') throw new FsError('ENOTDIR', path, 'not a directory');
      if (!dir && node.type === 'dir') throw new FsError('EISDIR', path, 'is a directory');
      if (node.type === 'dir' && this.hasChildren(tree, path)) {
        throw new FsError('ENOTEMPTY', path, 'directory not empty');
      }
      const now = Date.now();
      const remaining = this.dropName(tree, row, now);
      this.touchParent(tree, path, now, node.type === 'dir' ? -1 : 0);
      this.emit(tree, path, 'deleted');
      if (remaining) this.emitNames(tree, remaining, 'modified');
      return node;
    });
  }

  rename(tree: string, from: string, to: string): void {
    if (from === to) return;
    this.tx(() => {
      const srcRow = this.q.byPath.get(tree, from) as Row | undefined;
      const src = this.resolve(tree, srcRow);
      if (!srcRow || !src) throw new FsError('ENOENT', from, 'no such file or directory');
      const now = Date.now();
      const dstRow = this.q.byPath.get(tree, to) as Row | undefined;
      const dst = this.resolve(tree, dstRow);
      // Two names of one file: POSIX says the rename does nothing.
      if (dst && dst.id === src.id) return;
      const srcIsDir = src.type === 'dir';
      const dstWasDir = dst?.type === 'dir';
      const sameParent = parentOf(to) === parentOf(from);
      // The destination's parent gains the moved directory and loses a directory it replaces.
      this.touchParent(tree, to, now, (srcIsDir ? 1 : 0) - (dstWasDir ? 1 : 0) - (sameParent && srcIsDir ? 1 : 0));
      let remaining: NodeRow | undefined;
      if (dstRow && dst) {
        if (srcIsDir && !dstWasDir) throw new FsError('ENOTDIR', to, 'not a directory');
        if (!srcIsDir && dstWasDir) throw new FsError('EISDIR', to, 'is a directory');
        if (dstWasDir && this.hasChildren(tree, to)) throw new FsError('ENOTEMPTY', to, 'directory not empty');
        remaining = this.dropName(tree, dstRow, now);
      }
      // Moves `from` and everything below it: the path prefix is rewritten.
      this.q.movePaths.run(to, from.length + 1, now, tree, from, from + '/', subtreeEnd(from));
      if (!sameParent) this.touchParent(tree, from, now, srcIsDir ? -1 : 0);
      this.emit(tree, from, 'deleted');
      this.emit(tree, to, 'created', src.version);
      if (remaining) this.emitNames(tree, remaining, 'modified');
    });
  }

  setattr(tree: string, path: string, attrs: SetAttr): DataNode {
    return this.tx(() => {
      const node = this.named(tree, path);
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
      this.emitNames(tree, updated, 'modified');
      const out = { ...updated, path };
      return node.target === undefined ? out : { ...out, target: node.target };
    });
  }

  /** A handle on node `id` is open: a removal of its last name keeps the node until `release`. */
  retain(_tree: string, id: number): void {
    this.openCount.set(id, (this.openCount.get(id) ?? 0) + 1);
  }

  /** A handle on node `id` closed; the last close of a removed node removes it. */
  release(tree: string, id: number): void {
    const left = (this.openCount.get(id) ?? 1) - 1;
    if (left > 0) {
      this.openCount.set(id, left);
      return;
    }
    this.openCount.delete(id);
    const row = this.q.byId.get(tree, id) as Row | undefined;
    if (!row?.path.startsWith(ORPHAN)) return;
    this.tx(() => {
      this.q.dropNode.run(id);
      this.chunks.dropRows(id);
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

  /**
   * At open: nodes removed while open by a previous run (nobody holds them now), and chunks whose node
   * is gone (left by an interrupted removal).
   */
  collectGarbage(): number {
    this.forget();
    this.db.prepare('DELETE FROM data_nodes WHERE substr(path, 1, 1) = ?').run(ORPHAN);
    return this.db.prepare('DELETE FROM data_chunks WHERE node NOT IN (SELECT id FROM data_nodes)').run().changes;
  }
}
