/**
 * Data files and directories with POSIX behaviour (offset writes, truncate, append, rename, remove,
 * mkdir/rmdir with ENOTEMPTY, mode, ownership and timestamps), over an injected DataFileStore. Each store
 * call is one transaction that also records the change in the event log.
 */
import { EMPTY } from './bytes.js';
import { FsError } from './errors.js';
import { resolveInTree } from './data-links.js';
import { baseName, isUnder, MAX_PATH_BYTES, validateName } from './paths.js';
import { NO_LIMIT } from './types.js';
import type { Cx, DirEntry, FileService, FsSpace, Handle, NodeType, OpenFlags, SetAttr, Stat, StatAndData, WriteFileOptions } from './types.js';

/** The largest file a data tree takes by default (EFBIG beyond; config.json `memory.max_file_bytes`). */
export const DEFAULT_MAX_FILE_BYTES = 1024 ** 3;

/** The longest target a symbolic link may have (as on Linux, counting no NUL). */
export const MAX_LINK_TARGET_BYTES = 4095;

export interface DataNode {
  id: number;
  path: string;
  type: NodeType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  ctime: number;
  atime: number;
  version: number;
  /** Nanoseconds past the millisecond of atime and mtime (times set by utimensat keep them). */
  atimeNs: number;
  mtimeNs: number;
  /** Names of the node (hard links); a directory: 2 + its subdirectories; 0: removed, still open. */
  nlink: number;
  /** A symbolic link's target. */
  target?: string;
}

export interface CreateSpec {
  /** Symbolic links are made by `symlink`. */
  type: 'file' | 'dir' | 'fifo' | 'socket';
  mode: number;
  uid: number;
  gid: number;
  exclusive: boolean;
}

/**
 * Durable storage of one or more trees of data files. Paths are absolute within a tree. Every mutating
 * call is atomic and reports its changes through the tree's `onChange` before it commits.
 */
export interface DataFileStore {
  /** Makes the tree's root directory when it is missing (its own commit); cheap once it exists. */
  ensureTree(tree: string): void;
  lookup(tree: string, path: string): DataNode | undefined;
  /** A node by id, also after a rename; undefined once removed. */
  get(tree: string, id: number): DataNode | undefined;
  children(tree: string, path: string): DataNode[];
  /** Creates a file or directory, or returns the existing file (when not exclusive). */
  create(tree: string, path: string, spec: CreateSpec): { node: DataNode; created: boolean };
  read(tree: string, id: number, offset: number, length: number): Uint8Array;
  /** Copies bytes from `offset` into `target` (as many as fit and exist); returns how many. */
  readInto(tree: string, id: number, offset: number, target: Uint8Array): number;
  /** Writes at `offset`, or at the end when `offset` is 'append'. */
  write(tree: string, id: number, offset: number | 'append', data: Uint8Array): DataNode;
  truncate(tree: string, id: number, size: number): DataNode;
  /** Replaces a file's whole content, creating it if needed; `ifVersion` (0 = absent) guards it. */
  replace(tree: string, path: string, data: Uint8Array, spec: CreateSpec & { ifVersion?: number; append?: boolean }): DataNode;
  remove(tree: string, path: string, dir: boolean): DataNode;
  /** Renames, replacing `to` when POSIX allows it (a file over a file, a directory over an empty one). */
  rename(tree: string, from: string, to: string): void;
  /** The whole content by path in one step, when the store can do that cheaply. */
  readWhole?(tree: string, path: string): { node: DataNode; data: Uint8Array } | undefined;
  /** Only the content by path (no stat): the cheapest read; 'dir' for a directory. */
  readData?(tree: string, path: string): Uint8Array | 'dir' | undefined;
  setattr(tree: string, path: string, attrs: SetAttr): DataNode;
  /** Makes `path` a symbolic link whose content is `target` (EEXIST when the path is taken). */
  symlink(tree: string, path: string, target: Uint8Array, owner: { uid: number; gid: number }): DataNode;
  /** Makes `to` one more name of the node at `from` (EPERM for a directory, EEXIST when `to` is taken). */
  link(tree: string, from: string, to: string): DataNode;
  /** A handle on node `id` opened: while one is, the node outlives the removal of its last name. */
  retain?(tree: string, id: number): void;
  /** A handle on node `id` closed (the last close of a removed node removes it). */
  release?(tree: string, id: number): void;
  /** Bytes the tree may still grow by before its quota refuses a write (absent: no quota). */
  room?(tree: string): number;
}

export function nodeStat(node: DataNode): Stat {
  const st: Stat = {
    type: node.type,
    kind: node.type === 'dir' ? 'dir' : 'data',
    size: node.size,
    mode: node.mode,
    mtime: node.mtime,
    ctime: node.ctime,
    atime: node.atime,
    version: node.version,
    uid: node.uid,
    gid: node.gid,
    nlink: node.nlink,
    ino: node.id,
  };
  if (node.atimeNs) st.atimeNs = node.atimeNs;
  if (node.mtimeNs) st.mtimeNs = node.mtimeNs;
  if (node.target !== undefined) st.target = node.target;
  return st;
}

/** Why a node that is no regular file cannot be opened, read or written by a service. */
export function notAFile(node: DataNode, path: string): FsError {
  if (node.type === 'dir') return new FsError('EISDIR', path, 'is a directory');
  if (node.type === 'symlink') return new FsError('ELOOP', path, 'is a symbolic link');
  const what = node.type === 'fifo' ? 'a FIFO' : 'a socket';
  return new FsError('EINVAL', path, `is ${what}: its data passes between processes on a mount, not through agent9`);
}

const encoder = new TextEncoder();

/** A new name's path within its tree: at most MAX_PATH_BYTES counted from the tree's root. */
function checkTreePath(path: string): void {
  if (path.length > MAX_PATH_BYTES / 4 && encoder.encode(path).length > MAX_PATH_BYTES) {
    throw new FsError('ENAMETOOLONG', path, `path longer than ${MAX_PATH_BYTES} bytes from the root of its data tree`);
  }
}

export interface DataFsOptions {
  /** Largest file this tree accepts (EFBIG beyond; default DEFAULT_MAX_FILE_BYTES). */
  maxFileBytes?: number;
  serviceName?: string;
  /**
   * Runs work soon, after the answer to the current request has gone out (Node: setImmediate). With it,
   * a handle read sequentially reads its next block ahead, while the caller asks for it (a FUSE read is
   * one 128 KiB request at a time); the block is served only if the file's version has not changed.
   */
  readAhead?: (work: () => void) => void;
  /** The tree's space for statfs (a tree under a quota); without it the tree has no limit. */
  space?: () => Promise<FsSpace>;
  /**
   * Runs a whole-file write (writeFile), possibly in one transaction with the others submitted at the
   * same time (group commit); resolves once it is committed. Default: at once, in its own transaction.
   */
  commit?: <T>(work: () => T) => Promise<T>;
}

export class DataFs implements FileService {
  readonly serviceName: string;
  readonly maxFileBytes: number;
  /** @internal used by DataHandle */
  readonly readAhead: ((work: () => void) => void) | undefined;
  private readonly space: (() => Promise<FsSpace>) | undefined;
  private readonly commit: (<T>(work: () => T) => Promise<T>) | undefined;

  constructor(
    private readonly store: DataFileStore,
    readonly tree: string,
    options: DataFsOptions = {},
  ) {
    this.serviceName = options.serviceName ?? 'data';
    this.maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.readAhead = options.readAhead;
    this.space = options.space;
    this.commit = options.commit;
  }

  /** @internal used by DataHandle: bytes the tree may still grow by (Infinity without a quota). */
  roomLeft(): number {
    return this.store.room?.(this.tree) ?? Infinity;
  }

  async statfs(path: string, _cx?: Cx): Promise<FsSpace> {
    this.need(path);
    return this.space ? this.space() : NO_LIMIT;
  }

  private need(path: string): DataNode {
    const node = this.store.lookup(this.tree, path);
    if (!node) throw new FsError('ENOENT', path, 'no such file or directory');
    return node;
  }

  private owner(cx: Cx): { uid: number; gid: number } {
    return { uid: cx.caller?.uid ?? cx.principal.uid ?? 0, gid: cx.caller?.gid ?? cx.principal.gid ?? 0 };
  }

  async stat(path: string, _cx?: Cx): Promise<Stat> {
    return nodeStat(this.need(path));
  }

  async readdir(path: string, _cx?: Cx): Promise<DirEntry[]> {
    const node = this.need(path);
    if (node.type !== 'dir') throw new FsError('ENOTDIR', path, 'not a directory');
    return this.store.children(this.tree, path).map((n) => ({ name: baseName(n.path), stat: nodeStat(n) }));
  }

  /** Opens a regular file; a symbolic link is not followed (ELOOP: the caller resolves it, see realpath). */
  async open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    let node: DataNode;
    if (flags.create) {
      if (path === '/') throw new FsError('EISDIR', path, 'is a directory');
      validateName(baseName(path), path);
      checkTreePath(path);
      const spec = { type: 'file' as const, mode: flags.mode ?? 0o644, exclusive: !!flags.exclusive, ...this.owner(cx) };
      node = this.store.create(this.tree, path, spec).node;
    } else {
      node = this.need(path);
    }
    if (node.type !== 'file') throw notAFile(node, path);
    if (flags.truncate && flags.write && node.size > 0) node = this.store.truncate(this.tree, node.id, 0);
    this.store.retain?.(this.tree, node.id);
    return new DataHandle(this, node.id, path, flags);
  }

  /** @internal used by DataHandle: its close. */
  released(id: number): void {
    this.store.release?.(this.tree, id);
  }

  /** @internal used by DataHandle */
  readAt(id: number, offset: number, length: number): Uint8Array {
    return this.store.read(this.tree, id, offset, length);
  }

  /** @internal used by DataHandle */
  readAtInto(id: number, offset: number, target: Uint8Array): number {
    return this.store.readInto(this.tree, id, offset, target);
  }

  /** @internal */
  writeAt(id: number, path: string, offset: number | 'append', data: Uint8Array): void {
    const end = (offset === 'append' ? 0 : offset) + data.length;
    if (end > this.maxFileBytes) throw new FsError('EFBIG', path, `file larger than ${this.maxFileBytes} bytes`);
    const node = this.store.write(this.tree, id, offset, data);
    if (node.size > this.maxFileBytes) {
      this.store.truncate(this.tree, id, this.maxFileBytes);
      throw new FsError('EFBIG', path, `file larger than ${this.maxFileBytes} bytes`);
    }
  }

  /** @internal */
  truncateId(id: number, path: string, size: number): void {
    if (size > this.maxFileBytes) throw new FsError('EFBIG', path, `file larger than ${this.maxFileBytes} bytes`);
    this.store.truncate(this.tree, id, size);
  }

  /** @internal The node's current version and size, or undefined once it is removed. */
  versionOf(id: number): { version: number; size: number } | undefined {
    const node = this.store.get(this.tree, id);
    return node && { version: node.version, size: node.size };
  }

  /** @internal */
  nodeById(id: number, path: string): DataNode {
    const node = this.store.get(this.tree, id);
    if (!node) throw new FsError('ENOENT', path, 'file was removed');
    return node;
  }

  /** Stat and content; a node that is no regular file (a directory, a link) gives only its stat. */
  async readStat(path: string, _cx?: Cx): Promise<StatAndData> {
    const whole = this.store.readWhole?.(this.tree, path);
    const node = whole?.node ?? this.need(path);
    if (node.type !== 'file') return { stat: nodeStat(node) };
    return { stat: nodeStat(node), data: whole ? whole.data : this.store.read(this.tree, node.id, 0, node.size) };
  }

  async readFile(path: string, _cx?: Cx): Promise<Uint8Array> {
    const data = this.store.readData?.(this.tree, path);
    if (data === 'dir') throw new FsError('EISDIR', path, 'is a directory');
    if (data) return data;
    const node = this.need(path);
    if (node.type !== 'file') throw notAFile(node, path);
    return this.store.read(this.tree, node.id, 0, node.size);
  }

  async mkdir(path: string, mode: number, cx: Cx): Promise<void> {
    if (path === '/') throw new FsError('EEXIST', path, 'file exists');
    validateName(baseName(path), path);
    checkTreePath(path);
    this.store.create(this.tree, path, { type: 'dir', mode: mode || 0o755, exclusive: true, ...this.owner(cx) });
  }

  async mknod(path: string, type: 'fifo' | 'socket', mode: number, cx: Cx): Promise<Stat> {
    if (path === '/') throw new FsError('EEXIST', path, 'file exists');
    validateName(baseName(path), path);
    checkTreePath(path);
    return nodeStat(this.store.create(this.tree, path, { type, mode: mode & 0o7777, exclusive: true, ...this.owner(cx) }).node);
  }

  async symlink(path: string, target: string, cx: Cx): Promise<Stat> {
    if (path === '/') throw new FsError('EEXIST', path, 'file exists');
    validateName(baseName(path), path);
    checkTreePath(path);
    if (target === '') throw new FsError('ENOENT', path, 'a symbolic link needs a target');
    if (target.includes('\0')) throw new FsError('EINVAL', path, 'a symbolic link target holds no NUL byte');
    const bytes = encoder.encode(target);
    if (bytes.length > MAX_LINK_TARGET_BYTES) throw new FsError('ENAMETOOLONG', path, `symbolic link target longer than ${MAX_LINK_TARGET_BYTES} bytes`);
    return nodeStat(this.store.symlink(this.tree, path, bytes, this.owner(cx)));
  }

  async readlink(path: string, _cx?: Cx): Promise<string> {
    const node = this.need(path);
    if (node.type !== 'symlink') throw new FsError('EINVAL', path, 'not a symbolic link');
    return node.target ?? '';
  }

  async link(from: string, to: string, _cx?: Cx): Promise<Stat> {
    if (from === '/') throw new FsError('EPERM', from, 'hard links to directories are not allowed');
    if (to === '/') throw new FsError('EEXIST', to, 'file exists');
    validateName(baseName(to), to);
    checkTreePath(to);
    return nodeStat(this.store.link(this.tree, from, to));
  }

  /** Where `path` leads within this tree once its symbolic links are followed (data-links.ts). */
  async realpath(path: string, followLast: boolean, _cx?: Cx): Promise<string> {
    return resolveInTree(path, followLast, (p) => this.store.lookup(this.tree, p));
  }

  async remove(path: string, _cx: Cx, opts: { dir?: boolean } = {}): Promise<void> {
    if (path === '/') throw new FsError('EBUSY', path, 'cannot remove the root');
    const node = this.need(path);
    this.store.remove(this.tree, path, opts.dir ?? node.type === 'dir');
  }

  async rename(from: string, to: string, _cx?: Cx): Promise<void> {
    if (from === '/' || to === '/') throw new FsError('EBUSY', from, 'cannot rename the root');
    if (isUnder(to, from) && to !== from) throw new FsError('EINVAL', from, `cannot move a directory into itself (${to})`);
    validateName(baseName(to), to);
    checkTreePath(to);
    this.store.rename(this.tree, from, to);
  }

  async truncate(path: string, size: number, _cx?: Cx): Promise<void> {
    const node = this.need(path);
    if (node.type !== 'file') throw notAFile(node, path);
    this.truncateId(node.id, path, size);
  }

  async setattr(path: string, attrs: SetAttr, _cx?: Cx): Promise<Stat> {
    return nodeStat(this.store.setattr(this.tree, path, attrs));
  }

  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat> {
    if (path === '/') throw new FsError('EISDIR', path, 'is a directory');
    validateName(baseName(path), path);
    checkTreePath(path);
    const spec: CreateSpec & { ifVersion?: number; append?: boolean } = {
      type: 'file',
      mode: opts.mode ?? 0o644,
      exclusive: false,
      ...this.owner(cx),
    };
    if (opts.ifVersion !== undefined) spec.ifVersion = opts.ifVersion;
    if (opts.append) spec.append = true;
    if (data.length > this.maxFileBytes) throw new FsError('EFBIG', path, `file larger than ${this.maxFileBytes} bytes`);
    const replace = () => this.store.replace(this.tree, path, data, spec);
    return nodeStat(this.commit ? await this.commit(replace) : replace());
  }
}

/** A block read ahead, valid while the file is at `version`. */
interface Ahead {
  offset: number;
  length: number;
  version: number;
  data: Uint8Array;
}

class DataHandle implements Handle {
  readonly kind = 'data' as const;
  private closed = false;
  /** Where the last read ended: a read starting there is sequential. */
  private lastEnd = -1;
  private ahead: Ahead | undefined;
  /** The read-ahead block's memory, reused (a fresh 128 KiB buffer per read costs more than the read). */
  private aheadBuffer: Uint8Array | undefined;

  constructor(
    private readonly fs: DataFs,
    private readonly id: number,
    private readonly path: string,
    private readonly flags: OpenFlags,
  ) {}

  private check(): void {
    if (this.closed) throw new FsError('EBADF', this.path, 'handle is closed');
  }

  private checkReadable(): void {
    this.check();
    if (this.flags.write && this.flags.read === false) throw new FsError('EBADF', this.path, 'file not open for reading');
  }

  /** The block read ahead for exactly this read, if the file has not changed since; taken once. */
  private takeAhead(offset: number, length: number): Uint8Array | undefined {
    const ahead = this.ahead;
    this.ahead = undefined;
    if (!ahead || ahead.offset !== offset || ahead.length !== length) return undefined;
    return this.fs.versionOf(this.id)?.version === ahead.version ? ahead.data : undefined;
  }

  private afterRead(offset: number, length: number, got: number): void {
    const sequential = offset === this.lastEnd;
    this.lastEnd = offset + got;
    if (sequential && got === length && this.fs.readAhead) this.readNext(offset + length, length);
  }

  async read(length: number, offset: number): Promise<Uint8Array> {
    this.checkReadable();
    if (length <= 0) return EMPTY;
    const ahead = this.takeAhead(offset, length);
    // The read-ahead buffer is reused: a caller gets its own copy.
    const data = ahead ? ahead.slice() : this.fs.readAt(this.id, offset, length);
    this.afterRead(offset, length, data.length);
    return data;
  }

  /** Reads straight into the caller's memory (a FUSE reply buffer): no buffer of its own per read. */
  async readInto(target: Uint8Array, offset: number): Promise<number> {
    this.checkReadable();
    if (target.length === 0) return 0;
    const ahead = this.takeAhead(offset, target.length);
    let got: number;
    if (ahead) {
      target.set(ahead);
      got = ahead.length;
    } else {
      got = this.fs.readAtInto(this.id, offset, target);
    }
    this.afterRead(offset, target.length, got);
    return got;
  }

  /** Reads the next block once this answer is out; version and bytes come from one synchronous step. */
  private readNext(offset: number, length: number): void {
    this.fs.readAhead!(() => {
      if (this.closed || this.lastEnd !== offset) return;
      const now = this.fs.versionOf(this.id);
      if (!now || offset >= now.size) return;
      if (this.aheadBuffer?.length !== length) this.aheadBuffer = new Uint8Array(length);
      const got = this.fs.readAtInto(this.id, offset, this.aheadBuffer);
      this.ahead = { offset, length, version: now.version, data: this.aheadBuffer.subarray(0, got) };
    });
  }

  async write(data: Uint8Array, offset: number): Promise<number> {
    this.check();
    if (!this.flags.write) throw new FsError('EBADF', this.path, 'file not open for writing');
    this.fs.writeAt(this.id, this.path, this.flags.append ? 'append' : offset, data);
    return data.length;
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ahead = undefined;
    this.fs.released(this.id);
  }

  async truncate(size: number): Promise<void> {
    this.check();
    this.fs.truncateId(this.id, this.path, size);
  }

  room(): number {
    return this.fs.roomLeft();
  }

  async stat(): Promise<Stat> {
    return nodeStat(this.fs.nodeById(this.id, this.path));
  }
}
