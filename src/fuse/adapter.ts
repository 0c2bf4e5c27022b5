/**
 * FUSE requests (libfuse3 low-level, through native/agent9_fuse.c) -> FileService calls. This only
 * translates: inode numbers to paths (nodes.ts), flags in, stats and bytes out, errors through
 * ERROR_TABLE. What a file does on read, write, flush and close is the Handle's (src/fs); the adapter
 * adds what only FUSE needs:
 * - the caller of each request (uid, gid, pid) in its Cx: what it creates is its own;
 * - a table of open handles (fuse file handle -> OpenFile, with the read state of the blocking kinds);
 * - a deadline for metadata operations and open, so a stuck service gives ETIMEDOUT, never a hung shell;
 * - the version and kind of a file as extended attributes (user.agent9.version, user.agent9.kind).
 */
import { FsError } from '../fs/errors.js';
import type { Cx, FileService, FsEvent, FsSpace, OpenFlags, Principal, SetAttr, Stat } from '../fs/types.js';
import { NO_LIMIT } from '../fs/types.js';
import { Op, OPEN_DIRECT_IO, OPEN_KEEP_CACHE, type NativeFuse, type RequestHandler, type StatWords } from './binding.js';
import { INTERRUPTED } from './interrupts.js';
import { childPath, NodeTable } from './nodes.js';
import { O_EXCL, O_NONBLOCK, openFlags, S_IFDIR, statWords, typeBits } from './translate.js';
import { NODE_KIND_OPS, NodeKindRequests } from './node-kinds.js';
import { OpenFile } from './open-files.js';
import { Answers } from './reply-outcomes.js';
import { Requests, type Reply } from './requests.js';
import { PendingWrites, WriteBehind } from './write-behind.js';
import { hasLimit, statfsWords } from './statfs-words.js';
import { answerBytes, XATTR_NAMES, XATTRS } from './xattrs.js';
import { ENOENT, EINTR, EIO, EBADF, EINVAL, ENOSYS, ENODATA } from './errnos.js';

const RENAME_NOREPLACE = 1;

const SET_MODE = 1 << 0;
const SET_UID = 1 << 1;
const SET_GID = 1 << 2;
const SET_SIZE = 1 << 3;
const SET_ATIME = 1 << 4;
const SET_MTIME = 1 << 5;
const SET_ATIME_NOW = 1 << 7;
const SET_MTIME_NOW = 1 << 8;

export interface AdapterOptions {
  /** Who FUSE callers act as; each request carries its own uid and gid on top. */
  principal: Principal;
  /** Owner shown for files whose service reports none (synthetic files): the mounting user. */
  owner: { uid: number; gid: number };
  /** Seconds the kernel may cache attributes and names (default 1 each). */
  attrTimeout?: number;
  entryTimeout?: number;
  /** Deadline for metadata operations and open; 0 = none. Default 30 s. */
  opTimeoutMs?: number;
  /** The space `df` shows when the service sets no limit of its own (the data directory's disk). */
  diskSpace?: () => Promise<FsSpace>;
  /** Told about failures that are not FsErrors (they reach the caller as EIO). */
  onError?: (op: string, path: string, err: unknown) => void;
  /** Hold writes to data files for at most a second (write-behind.ts); default true. */
  writeBehind?: boolean;
}

interface OpenDir {
  names: string[];
  inos: number[];
  modes: number[];
}

export class FuseAdapter {
  readonly nodes = new NodeTable();
  private requests: Requests | undefined;
  private readonly files = new Map<number, OpenFile>();
  private readonly dirs = new Map<number, OpenDir>();
  private nextFh = 1;
  private readonly answers: Answers;
  private readonly attrTimeout: number;
  private readonly entryTimeout: number;
  /** Links, special nodes and fallocate (node-kinds.ts). */
  private readonly nodeKinds: NodeKindRequests;

  constructor(
    private readonly service: FileService,
    private readonly options: AdapterOptions,
  ) {
    this.answers = new Answers(options.opTimeoutMs ?? 30_000, options.onError);
    this.attrTimeout = options.attrTimeout ?? 1;
    this.entryTimeout = options.entryTimeout ?? 1;
    this.nodeKinds = new NodeKindRequests({
      service,
      nodes: this.nodes,
      answers: this.answers,
      attrTimeout: this.attrTimeout,
      entryTimeout: this.entryTimeout,
      statWords: (ino, st) => this.stat(ino, st),
      pathOf: (ino, reply) => this.pathOf(ino, reply),
      file: (fh) => this.files.get(fh),
      afterWrites: (inos, work) => this.afterWrites(inos, work),
    });
  }

  /** The mounted session, once there is one: where cache invalidations go. */
  private session: { native: NativeFuse; handle: object } | undefined;
  /** Ends the watch that tells the kernel about changes made elsewhere. */
  private watching: AbortController | undefined;
  /** Kernel invalidations sent (for tests and status). */
  invalidations = 0;
  private readonly writes = new WriteBehind();

  /** Open handles (for tests and status). */
  get openHandles(): number {
    return this.files.size;
  }

  /** The handler the addon calls for every request of a session answered through `native`. */
  handlerFor(native: NativeFuse, onExit: () => void): RequestHandler {
    const requests = new Requests(native);
    this.requests = requests;
    return (op, req, uid, gid, pid, ino, a, b, c, d, e) => {
      if (op === Op.exit) {
        requests.end();
        onExit();
        return;
      }
      if (op === Op.forget) return this.nodes.forget(ino, a as number);
      if (op === Op.interrupt) return requests.interrupt(req);
      const interrupted = (op === Op.read && d === 1) || (op === Op.flush && c === 1);
      const reply = requests.begin(req, interrupted);
      try {
        this.dispatch(op, reply, this.cxOf(uid, gid, pid), ino, a, b, c, d, e);
      } catch (err) {
        this.answers.report('request', String(ino), err);
        reply.err(EIO);
      }
    };
  }

  /**
   * The session is mounted: from now on every change the service reports (HTTP, the runtime, another
   * mount, and this one) drops what the kernel caches of that file and name, so data files can keep
   * their pages across opens (keep_cache). Without a watch the page cache is dropped at every open.
   */
  attach(native: NativeFuse, handle: object): void {
    this.session = { native, handle };
    const { watch } = this.service;
    if (!watch) return;
    const ac = new AbortController();
    this.watching = ac;
    const cx: Cx = { principal: this.options.principal, signal: ac.signal };
    void (async () => {
      try {
        for await (const ev of watch.call(this.service, '/', undefined, cx)) this.changed(ev);
      } catch (err) {
        if (!ac.signal.aborted) this.answers.report('watch', '/', err);
      } finally {
        // Without the watch, nothing tells the kernel about changes: stop keeping pages across opens.
        if (this.watching === ac) this.watching = undefined;
      }
    })();
  }

  private changed(ev: FsEvent): void {
    const s = this.session;
    if (!s || ev.type === 'data' || ev.type === 'end') return;
    const inval = (ino: number) => {
      this.invalidations++;
      s.native.notifyInvalInode(s.handle, ino, 0, 0);
    };
    if (ev.type === 'reset') {
      for (const ino of this.nodes.inos()) inval(ino);
      return;
    }
    const ino = this.nodes.known(ev.path);
    if (ino !== undefined) inval(ino);
    if (ev.type === 'created' || ev.type === 'deleted') {
      const cut = ev.path.lastIndexOf('/');
      const parent = this.nodes.known(ev.path.slice(0, cut) || '/');
      if (parent !== undefined) {
        inval(parent);
        // A name made needs no dropping (failed lookups are not cached), and dropping the entry of a
        // directory in use cuts it off (getcwd gives ENOENT inside it); a name this mount removed is gone
        // from the kernel already and may have been made again since.
        if (ev.type === 'deleted' && !this.nodes.removedHere(ev.path)) s.native.notifyInvalEntry(s.handle, parent, ev.path.slice(cut + 1));
      }
    }
  }

  /** Closes every handle still open (at unmount): streams stop, pending messages commit. */
  async closeAll(): Promise<void> {
    await this.writes.flushAll();
    this.watching?.abort();
    this.watching = undefined;
    this.session = undefined;
    const files = [...this.files.values()];
    this.files.clear();
    this.dirs.clear();
    await Promise.all(files.map((f) => f.handle.close().catch((err: unknown) => this.answers.report('release', f.path, err))));
    this.answers.stop();
  }

  private cxOf(uid: number, gid: number, pid: number): Cx {
    return { principal: { ...this.options.principal, uid, gid }, caller: { uid, gid, pid } };
  }

  /** `work`, once the writes held for `ino` are committed (a request that must see them). */
  private afterWrites<T>(inos: Array<number | undefined>, work: () => Promise<T>): Promise<T> {
    if (!inos.some((ino) => this.writes.pending(ino))) return work();
    return Promise.all(inos.map((ino) => this.writes.settle(ino))).then(work);
  }

  // --- translation ---------------------------------------------------------------------------------

  private stat(ino: number, st: Stat): StatWords {
    return statWords(ino, st, this.options.owner);
  }

  /**
   * How the kernel should treat an open file. Data files go through the page cache (shared mmap works,
   * rereads cost nothing), kept across opens while the watch invalidates it on every change. The
   * synthetic kinds read the service on every read (direct-io): a view is computed at open, streams and
   * call answers have no size.
   */
  private openReplyFlags(f: OpenFile): number {
    if (f.kind !== 'data') return OPEN_DIRECT_IO;
    return this.watching ? OPEN_KEEP_CACHE : 0;
  }

  private openFile(path: string, ino: number, handle: OpenFile['handle'], cx: Cx, flags: number): OpenFile {
    const f = new OpenFile(path, ino, handle, cx, (flags & O_NONBLOCK) !== 0);
    if (f.kind === 'data' && this.options.writeBehind !== false) f.pending = new PendingWrites(ino, handle);
    return f;
  }

  private allocate(f: OpenFile): number {
    while (this.files.has(this.nextFh) || this.dirs.has(this.nextFh)) this.nextFh = this.nextFh >= 2 ** 52 ? 1 : this.nextFh + 1;
    const fh = this.nextFh++;
    this.files.set(fh, f);
    return fh;
  }

  /** A handle open on `ino` (a linear scan, for files whose every name is gone). */
  private openFileOf(ino: number): OpenFile | undefined {
    for (const f of this.files.values()) if (f.ino === ino && f.handle.stat) return f;
    return undefined;
  }

  private pathOf(ino: number, reply: Reply): string | undefined {
    const path = this.nodes.path(ino);
    if (path === undefined) reply.err(ENOENT);
    return path;
  }

  // --- ops -----------------------------------------------------------------------------------

  private dispatch(op: number, reply: Reply, cx: Cx, ino: number, a: unknown, b: unknown, c: unknown, d: unknown, e: unknown): void {
    switch (op) {
      case Op.lookup:
        return this.lookup(reply, cx, ino, a as string);
      case Op.getattr:
        return this.getattr(reply, cx, ino, a as number);
      case Op.setattr:
        return this.setattr(reply, cx, ino, a as number, b as number[], c as number);
      case Op.mkdir:
        return this.mkdir(reply, cx, ino, a as string, b as number);
      case Op.unlink:
      case Op.rmdir:
        return this.remove(reply, cx, ino, a as string, op === Op.rmdir);
      case Op.rename:
        return this.rename(reply, cx, ino, a as string, b as number, c as string, d as number);
      case Op.open:
        return this.open(reply, cx, ino, a as number);
      case Op.create:
        return this.create(reply, cx, ino, a as string, b as number, c as number);
      case Op.read:
        return this.read(reply, a as number, b as number, c as number, e as number | undefined);
      case Op.write:
        return this.write(reply, a as Buffer, b as number, c as number);
      case Op.flush:
        return this.flush(reply, a as number);
      case Op.fsync:
        return this.fsync(reply, a as number);
      case Op.release:
        return this.release(reply, a as number);
      case Op.opendir:
        return this.opendir(reply, cx, ino);
      case Op.readdir:
        return this.readdir(reply, a as number, b as number, c as number);
      case Op.releasedir:
        this.dirs.delete(a as number);
        return reply.ok();
      case Op.statfs:
        return this.statfs(reply, cx, ino);
      case Op.getxattr:
        return this.getxattr(reply, cx, ino, a as string, b as number);
      case Op.listxattr:
        return this.listxattr(reply, a as number);
      default:
        if (NODE_KIND_OPS.has(op)) return this.nodeKinds.dispatch(op, reply, cx, ino, a, b, c, d);
        return reply.err(ENOSYS);
    }
  }

  private lookup(reply: Reply, cx: Cx, parent: number, name: string): void {
    const dir = this.pathOf(parent, reply);
    if (dir === undefined) return;
    const path = childPath(dir, name);
    const work = this.afterWrites([this.nodes.known(path)], () => this.service.stat(path, cx));
    this.answers.within('lookup', path, reply, work, (st) => {
      reply.entry(this.stat(this.nodes.lookup(path, st), st), this.attrTimeout, this.entryTimeout);
    });
  }

  private getattr(reply: Reply, cx: Cx, ino: number, fh: number): void {
    // fstat(2) arrives without its descriptor: a file removed while open answers through an open handle.
    const f = fh ? this.files.get(fh) : this.nodes.path(ino) === undefined ? this.openFileOf(ino) : undefined;
    const path = f?.path ?? this.pathOf(ino, reply);
    if (path === undefined) return;
    const work = this.afterWrites([ino], () =>
      f?.handle.stat
        ? f.handle.stat().catch((err: unknown) => {
            if (err instanceof FsError && err.code === 'ENOSYS') return this.service.stat(path, cx);
            throw err;
          })
        : this.service.stat(path, cx),
    );
    this.answers.within('getattr', path, reply, work, (st) => reply.attr(this.stat(ino, st), this.attrTimeout));
  }

  private setattr(reply: Reply, cx: Cx, ino: number, toSet: number, v: number[], fh: number): void {
    // A file removed while open has no name left: its handle still truncates it and says its stat.
    const nameless = this.nodes.path(ino) === undefined;
    const f = fh ? this.files.get(fh) : nameless ? this.openFileOf(ino) : undefined;
    const path = this.nodes.path(ino) ?? f?.path ?? this.pathOf(ino, reply);
    if (path === undefined) return;
    const attrs: SetAttr = {};
    if (toSet & SET_MODE) attrs.mode = v[0]! & 0o7777;
    if (toSet & SET_UID) attrs.uid = v[1]!;
    if (toSet & SET_GID) attrs.gid = v[2]!;
    const now = Date.now();
    // utimensat's two times arrive apart (UTIME_OMIT: not set at all; UTIME_NOW: the server's now).
    if (toSet & SET_ATIME_NOW) attrs.atime = now;
    else if (toSet & SET_ATIME) {
      attrs.atime = v[4]! * 1000 + Math.floor(v[5]! / 1e6);
      attrs.atimeNs = v[5]! % 1e6;
    }
    if (toSet & SET_MTIME_NOW) attrs.mtime = now;
    else if (toSet & SET_MTIME) {
      attrs.mtime = v[6]! * 1000 + Math.floor(v[7]! / 1e6);
      attrs.mtimeNs = v[7]! % 1e6;
    }
    const work = this.afterWrites([ino], async () => {
      if (toSet & SET_SIZE) {
        if (f?.handle.truncate) await f.handle.truncate(v[3]!);
        else if (this.service.truncate) await this.service.truncate(path, v[3]!, cx);
        else throw new FsError('ENOSYS', path);
      }
      if (nameless && f?.handle.stat) return f.handle.stat(); // no name reaches its times and mode any more
      if (Object.keys(attrs).length > 0) {
        if (!this.service.setattr) throw new FsError('ENOSYS', path);
        return this.service.setattr(path, attrs, cx);
      }
      return this.service.stat(path, cx);
    });
    this.answers.within('setattr', path, reply, work, (st) => reply.attr(this.stat(ino, st), this.attrTimeout));
  }

  private mkdir(reply: Reply, cx: Cx, parent: number, name: string, mode: number): void {
    const dir = this.pathOf(parent, reply);
    if (dir === undefined) return;
    const path = childPath(dir, name);
    const { mkdir } = this.service;
    if (!mkdir) return reply.err(ENOSYS);
    // The kernel has applied the caller's umask to `mode` already.
    const work = mkdir.call(this.service, path, mode & 0o7777, cx).then(() => this.service.stat(path, cx));
    this.answers.within('mkdir', path, reply, work, (st) => reply.entry(this.stat(this.nodes.lookup(path, st), st), this.attrTimeout, this.entryTimeout));
  }

  private remove(reply: Reply, cx: Cx, parent: number, name: string, dir: boolean): void {
    const parentPath = this.pathOf(parent, reply);
    if (parentPath === undefined) return;
    const path = childPath(parentPath, name);
    if (!this.service.remove) return reply.err(ENOSYS);
    const { remove } = this.service;
    const work = this.afterWrites([this.nodes.known(path)], () => remove.call(this.service, path, cx, { dir }));
    this.answers.within(dir ? 'rmdir' : 'unlink', path, reply, work, () => {
      this.nodes.removed(path, dir);
      reply.ok();
    });
  }

  private rename(reply: Reply, cx: Cx, parent: number, name: string, newParent: number, newName: string, flags: number): void {
    const fromDir = this.pathOf(parent, reply);
    if (fromDir === undefined) return;
    const toDir = this.pathOf(newParent, reply);
    if (toDir === undefined) return;
    const from = childPath(fromDir, name);
    const to = childPath(toDir, newName);
    const { rename } = this.service;
    if (!rename) return reply.err(ENOSYS);
    if (flags & ~RENAME_NOREPLACE) return reply.err(EINVAL); // RENAME_EXCHANGE, WHITEOUT
    const work = this.afterWrites([this.nodes.known(from), this.nodes.known(to)], async () => {
      if (flags & RENAME_NOREPLACE) {
        const exists = await this.service.stat(to, cx).then(
          () => true,
          () => false,
        );
        if (exists) throw new FsError('EEXIST', to);
      }
      await rename.call(this.service, from, to, cx);
    });
    this.answers.within('rename', from, reply, work, () => {
      this.nodes.renamed(from, to);
      reply.ok();
    });
  }

  private opened(op: string, path: string, ino: number, cx: Cx, reply: Reply, work: Promise<OpenFile>, answer: (fh: number, f: OpenFile) => boolean): void {
    const discard = (f: OpenFile) => void f.handle.close().catch(() => undefined);
    this.answers.within(op, path, reply, work, (f) => {
      const fh = this.allocate(f);
      // The caller may be gone (interrupted open): then nobody will ever release the handle.
      if (!answer(fh, f)) {
        this.files.delete(fh);
        discard(f);
      }
    }, discard);
    void ino;
    void cx;
  }

  private open(reply: Reply, cx: Cx, ino: number, flags: number): void {
    const path = this.pathOf(ino, reply);
    if (path === undefined) return;
    const work = this.afterWrites([ino], () => this.service.open(path, openFlags(flags), cx)).then((h) => this.openFile(path, ino, h, cx, flags));
    this.opened('open', path, ino, cx, reply, work, (fh, f) => reply.open(fh, this.openReplyFlags(f)));
  }

  private create(reply: Reply, cx: Cx, parent: number, name: string, mode: number, flags: number): void {
    const dir = this.pathOf(parent, reply);
    if (dir === undefined) return;
    const path = childPath(dir, name);
    const open: OpenFlags = { ...openFlags(flags), create: true, mode: mode & 0o7777 };
    if (flags & O_EXCL) open.exclusive = true;
    const work = (async () => {
      const handle = await this.service.open(path, open, cx);
      try {
        // The new handle says what it made: a file stored only when its writer closes (a goal, a file
        // created through HTTP) exists for its handle before it exists for a stat by path.
        const st = handle.stat
          ? await handle.stat().catch((err: unknown) => {
              if (err instanceof FsError && err.code === 'ENOSYS') return this.service.stat(path, cx);
              throw err;
            })
          : await this.service.stat(path, cx);
        return { handle, st };
      } catch (err) {
        await handle.close().catch(() => undefined);
        throw err;
      }
    })();
    const discard = (r: { handle: { close(): Promise<void> } }) => void r.handle.close().catch(() => undefined);
    this.answers.within('create', path, reply, work, ({ handle, st }) => {
      const ino = this.nodes.lookup(path, st);
      const f = this.openFile(path, ino, handle, cx, flags);
      const fh = this.allocate(f);
      if (!reply.create(this.stat(ino, st), this.attrTimeout, this.entryTimeout, fh, this.openReplyFlags(f))) {
        this.files.delete(fh);
        this.nodes.forget(ino, 1);
        discard({ handle });
      }
    }, discard);
  }

  /** `flags`: the file's flags now (the addon sends them with each read); O_NONBLOCK: never wait. */
  private read(reply: Reply, size: number, offset: number, fh: number, flags: number | undefined): void {
    const f = this.files.get(fh);
    if (!f) return reply.err(EBADF);
    if (f.kind === 'data' && f.handle.readInto) {
      const buf = Buffer.allocUnsafe(size);
      const { readInto } = f.handle;
      const work = this.afterWrites([f.ino], () => readInto.call(f.handle, buf, offset));
      this.answers.settle('read', f.path, reply, work, (n) => reply.buf(buf, n));
      return;
    }
    const nonblock = flags === undefined ? f.nonblockAtOpen : (flags & O_NONBLOCK) !== 0;
    this.answers.settle('read', f.path, reply, f.read(size, offset, reply.interrupt, nonblock), (data) => {
      if (data === INTERRUPTED) return reply.err(EINTR);
      reply.buf(data, Math.min(size, data.length));
    });
  }

  private write(reply: Reply, data: Buffer, offset: number, fh: number): void {
    const f = this.files.get(fh);
    if (!f) return reply.err(EBADF);
    // The buffer was copied out of libfuse's by the addon: the handle may keep it.
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
    if (f.pending && !this.nearQuota(f.handle, bytes.length)) {
      return this.answers.settle('write', f.path, reply, this.writes.write(f.pending, bytes, offset), () => reply.written(bytes.length));
    }
    // Near a quota the write goes through (after what this file holds), so EDQUOT reaches write(2):
    // a refusal at close would be lost on tools that ignore close's errors (bash's echo).
    if (f.pending) {
      const pending = f.pending;
      const work = this.writes.sync(pending).then(() => f.handle.write(bytes, offset));
      return this.answers.settle('write', f.path, reply, work, (n) => reply.written(n));
    }
    this.answers.settle('write', f.path, reply, f.handle.write(bytes, offset), (n) => reply.written(n));
  }

  /** Whether buffering `length` more bytes could take a tree past its quota (what the mount holds counts). */
  private nearQuota(handle: { room?(): number }, length: number): boolean {
    if (!handle.room) return false;
    return this.writes.heldBytes + length > handle.room();
  }

  private flush(reply: Reply, fh: number): void {
    const f = this.files.get(fh);
    if (!f) return reply.ok();
    const { pending } = f;
    const work = pending ? this.writes.sync(pending).then(() => f.handle.flush()) : f.handle.flush();
    if (f.kind !== 'call') return this.answers.settle('flush', f.path, reply, work, () => reply.ok());
    // A call file's flush sends the request and may wait long for the answer: Ctrl-C must work.
    // (Reads wait for the same answer: the handle runs the call once.)
    this.answers.settle('flush', f.path, reply, reply.interrupt.race(work), (r) => (r === INTERRUPTED ? reply.err(EINTR) : reply.ok()));
  }

  private fsync(reply: Reply, fh: number): void {
    const f = this.files.get(fh);
    if (!f) return reply.ok();
    if (f.kind !== 'data') return reply.ok();
    const { pending } = f;
    const work = pending ? this.writes.sync(pending).then(() => f.handle.flush()) : f.handle.flush();
    this.answers.settle('fsync', f.path, reply, work, () => reply.ok());
  }

  private release(reply: Reply, fh: number): void {
    const f = this.files.get(fh);
    this.files.delete(fh);
    if (!f) return reply.ok();
    const { pending } = f;
    const work = pending
      ? this.writes.sync(pending).then(
          () => f.handle.close(),
          (err: unknown) => f.handle.close().then(() => Promise.reject(err)),
        )
      : f.handle.close();
    this.answers.settle('release', f.path, reply, work, () => reply.ok());
  }

  private opendir(reply: Reply, cx: Cx, ino: number): void {
    const path = this.pathOf(ino, reply);
    if (path === undefined) return;
    const parent = path === '/' ? '/' : path.slice(0, path.lastIndexOf('/')) || '/';
    this.answers.within('opendir', path, reply, this.service.readdir(path, cx), (entries) => {
      const listing: OpenDir = { names: ['.', '..'], inos: [ino, this.nodes.ino(parent)], modes: [S_IFDIR, S_IFDIR] };
      for (const e of entries) {
        listing.names.push(e.name);
        listing.inos.push(this.nodes.ino(childPath(path, e.name), e.stat));
        listing.modes.push(typeBits(e.stat.type));
      }
      while (this.files.has(this.nextFh) || this.dirs.has(this.nextFh)) this.nextFh++;
      const fh = this.nextFh++;
      this.dirs.set(fh, listing);
      if (!reply.open(fh, 0)) this.dirs.delete(fh);
    });
  }

  private readdir(reply: Reply, size: number, offset: number, fh: number): void {
    const d = this.dirs.get(fh);
    if (!d) return reply.err(EBADF);
    reply.dir(size, d.names, d.inos, d.modes, offset);
  }

  private statfs(reply: Reply, cx: Cx, ino: number): void {
    const path = this.nodes.path(ino) ?? '/';
    const work = (async () => {
      const own = this.service.statfs ? await this.service.statfs(path, cx) : undefined;
      // A tree without a quota of its own shows the disk the data lives on, as before.
      if (own && hasLimit(own)) return own;
      return (await this.options.diskSpace?.()) ?? own;
    })();
    this.answers.within('statfs', path, reply, work, (space) => reply.statfs(statfsWords(space ?? NO_LIMIT)));
  }

  private getxattr(reply: Reply, cx: Cx, ino: number, name: string, size: number): void {
    const attr = XATTRS[name];
    if (!attr) return reply.err(ENODATA);
    const path = this.pathOf(ino, reply);
    if (path === undefined) return;
    this.answers.within('getxattr', path, reply, this.service.stat(path, cx), (st) => answerBytes(reply, Buffer.from(attr(st)), size));
  }

  private listxattr(reply: Reply, size: number): void {
    answerBytes(reply, Buffer.from(XATTR_NAMES.map((n) => n + '\0').join('')), size);
  }
}
