/**
 * FUSE ops -> FileService calls. This only translates: paths and flags in, Stat and bytes out, errors
 * through ERROR_TABLE. What a file does on read, write, flush and close is the Handle's (src/fs); the
 * adapter adds what only FUSE needs:
 * - a table of open handles (fuse file handle -> Handle) and per-handle read state for the blocking
 *   kinds: a stream read or a call answer that is still running when the reader is interrupted is
 *   kept and handed to the reader's retry (see interrupts.ts), so no datum is lost and no call runs twice;
 * - call files read their answer from the offset of the first read, because a shell reads the answer
 *   on the descriptor it wrote the request to (`exec 3<>new; echo req >&3; cat <&3` reads at the end
 *   of the request);
 * - a deadline for metadata operations and open, so a stuck service gives ETIMEDOUT, never a hung shell;
 * - the version and kind of a file as extended attributes (user.agent9.version, user.agent9.kind).
 */
import { EMPTY } from '../fs/bytes.js';
import { toFsError, FsError } from '../fs/errors.js';
import type { Cx, FileKind, FileService, Handle, OpenFlags, Principal, SetAttr, Stat } from '../fs/types.js';
import type { FuseCallback, FuseOps, FuseStat, FuseStatfs } from './binding.js';
import { INTERRUPTED, interruptCount, interruptible, type Interrupted } from './interrupts.js';
import { hasLimit, statfsOfSpace } from './space.js';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const O_ACCMODE = 0o3;
const O_WRONLY = 0o1;
const O_RDWR = 0o2;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;

const EINTR = 4;
const ENODATA = 61;
const EBADF = 9;
const ETIMEDOUT = 110;

/**
 * st_blksize. stdio, Python and coreutils size their buffers by it, and with direct_io every read(2) is
 * one FUSE request, so this keeps them at one request per 128 KiB (libfuse 2's largest read).
 */
export const BLOCK_SIZE = 128 * 1024;
const STREAM_CHUNK = 128 * 1024;

/** libfuse 2 hands UTIME_NOW and UTIME_OMIT to fuse-native as 0 s + 1073741823 ns, which it turns into 1073 ms. */
const UTIME_SPECIAL_MS = 1073;
/** chown(2) passes -1 (as uint32) for "leave unchanged". */
const UNCHANGED_ID = 0xffffffff;

export interface AdapterOptions {
  /** Who the FUSE caller is (fuse-native does not pass the caller's uid/gid). */
  principal: Principal;
  /** Owner shown for files whose service reports none (synthetic files): the mounting user. */
  owner: { uid: number; gid: number };
  /** Deadline for metadata operations and open; 0 = none. Default 30 s. */
  opTimeoutMs?: number;
  /** Numbers for statfs (df); defaults to a fixed, roomy answer. */
  statfs?: () => Promise<Partial<FuseStatfs>>;
  /** Told about failures that are not FsErrors (they reach the caller as EIO). */
  onError?: (op: string, path: string, err: unknown) => void;
}

interface OpenFile {
  readonly path: string;
  readonly handle: Handle;
  readonly kind: FileKind;
  /** Stream: the read running on the handle, bytes it returned not yet delivered, its end or error. */
  pulling?: Promise<void> | undefined;
  leftover: Uint8Array;
  ended: boolean;
  failure?: unknown;
  /** Call: the offset of the first read (the answer starts there) and the running call. */
  callBase?: number;
  answering?: Promise<void>;
}

interface Waiting {
  readonly since: number;
  expire(): void;
}

function settle(p: Promise<unknown>): Promise<void> {
  return p.then(
    () => undefined,
    () => undefined,
  );
}

export class FuseAdapter {
  readonly ops: FuseOps;
  private readonly cx: Cx;
  private readonly files = new Map<number, OpenFile>();
  private nextFd = 1;
  private readonly waiting = new Set<Waiting>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly opTimeoutMs: number;

  constructor(
    private readonly service: FileService,
    private readonly options: AdapterOptions,
  ) {
    this.cx = { principal: options.principal };
    this.opTimeoutMs = options.opTimeoutMs ?? 30_000;
    this.ops = this.makeOps();
  }

  /** Open handles (for tests and status). */
  get openHandles(): number {
    return this.files.size;
  }

  /** Closes every handle still open (at unmount): streams stop, pending messages commit. */
  async closeAll(): Promise<void> {
    const files = [...this.files.values()];
    this.files.clear();
    await Promise.all(files.map((f) => f.handle.close().catch((err: unknown) => this.report('release', f.path, err))));
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  // --- errors ---------------------------------------------------------------------------------

  /** Tells about internal failures and deadlines passed; ordinary errors (ENOENT...) are the caller's. */
  private report(op: string, path: string, err: unknown): void {
    if (err instanceof FsError && err.code !== 'EIO' && err.code !== 'ETIMEDOUT') return;
    if (this.options.onError) this.options.onError(op, path, err);
    else process.stderr.write(`agent9 fuse: ${op} ${path}: ${(err as Error)?.stack ?? String(err)}\n`);
  }

  /** The negative errno FUSE answers with, from the one table in src/fs/errors.ts. */
  private errno(op: string, path: string, err: unknown): number {
    const fsErr = toFsError(err, path);
    if (!(err instanceof FsError) || fsErr.code === 'EIO') this.report(op, path, err);
    return -fsErr.mapping.errno;
  }

  // --- deadlines --------------------------------------------------------------------------------

  /**
   * Answers `done` with the result of `work`, or with ETIMEDOUT once the deadline passed; a result
   * that arrives late goes to `onLate` (an open's handle is closed there, or it would leak).
   */
  private within<T>(op: string, path: string, work: Promise<T>, done: (code: number, value?: T) => void, onLate?: (value: T) => void): void {
    if (this.opTimeoutMs <= 0) {
      work.then(
        (v) => done(0, v),
        (err: unknown) => done(this.errno(op, path, err)),
      );
      return;
    }
    let answered = false;
    const waiting: Waiting = {
      since: Date.now(),
      expire: () => {
        if (answered) return;
        answered = true;
        done(-ETIMEDOUT);
        this.report(op, path, new FsError('ETIMEDOUT', path, `${op} took longer than ${this.opTimeoutMs} ms`));
        work.then((v) => onLate?.(v), () => undefined);
      },
    };
    this.waiting.add(waiting);
    this.sweeper ??= setInterval(() => this.sweep(), Math.min(1000, this.opTimeoutMs)).unref();
    work.then(
      (v) => {
        this.waiting.delete(waiting);
        if (answered) return;
        answered = true;
        done(0, v);
      },
      (err: unknown) => {
        this.waiting.delete(waiting);
        if (answered) return;
        answered = true;
        done(this.errno(op, path, err));
      },
    );
  }

  private sweep(): void {
    const now = Date.now();
    for (const w of this.waiting) {
      if (now - w.since < this.opTimeoutMs) continue;
      this.waiting.delete(w);
      w.expire();
    }
  }

  // --- translation ---------------------------------------------------------------------------------

  toFuseStat(st: Stat): FuseStat {
    const dir = st.type === 'dir';
    const size = dir ? 0 : st.size;
    return {
      mode: (dir ? S_IFDIR : S_IFREG) | (st.mode & 0o7777),
      uid: st.uid ?? this.options.owner.uid,
      gid: st.gid ?? this.options.owner.gid,
      size,
      nlink: dir ? 2 : 1,
      blksize: BLOCK_SIZE,
      blocks: Math.ceil(size / 512),
      atime: st.atime ?? st.mtime,
      mtime: st.mtime,
      ctime: st.ctime,
    };
  }

  private static openFlags(flags: number): OpenFlags {
    const access = flags & O_ACCMODE;
    const out: OpenFlags = { read: access !== O_WRONLY, write: access === O_WRONLY || access === O_RDWR };
    if (flags & O_APPEND) out.append = true;
    if (flags & O_TRUNC) out.truncate = true;
    return out;
  }

  private allocate(path: string, handle: Handle): number {
    // fuse-native carries handles as positive int32; 0 means "none".
    while (this.files.has(this.nextFd)) this.nextFd = this.nextFd >= 0x7fffffff ? 1 : this.nextFd + 1;
    const fd = this.nextFd;
    this.nextFd = fd >= 0x7fffffff ? 1 : fd + 1;
    this.files.set(fd, { path, handle, kind: handle.kind, leftover: EMPTY, ended: false });
    return fd;
  }

  private opened(op: string, path: string, work: Promise<Handle>, cb: FuseCallback<number>): void {
    this.within(
      op,
      path,
      work.then((h) => this.allocate(path, h)),
      cb,
      (fd) => {
        const f = this.files.get(fd);
        this.files.delete(fd);
        void f?.handle.close().catch(() => undefined);
      },
    );
  }

  // --- reads ---------------------------------------------------------------------------------

  private async readAt(f: OpenFile, length: number, offset: number, since: number): Promise<Uint8Array | Interrupted> {
    switch (f.kind) {
      case 'stream':
        return this.readStream(f, length, since);
      case 'call':
        return this.readCall(f, length, offset, since);
      default:
        return f.handle.read(length, offset);
    }
  }

  /** Streams ignore offsets: each read takes what the handle delivers next, blocking until it comes. */
  private async readStream(f: OpenFile, length: number, since: number): Promise<Uint8Array | Interrupted> {
    for (;;) {
      if (f.leftover.length > 0) {
        const out = f.leftover.subarray(0, length);
        f.leftover = f.leftover.subarray(out.length);
        return out;
      }
      if (f.failure !== undefined) {
        const err = f.failure;
        f.failure = undefined;
        throw err;
      }
      if (f.ended) return EMPTY;
      f.pulling ??= f.handle.read(STREAM_CHUNK, 0).then(
        (chunk) => {
          f.pulling = undefined;
          if (chunk.length === 0) f.ended = true;
          else f.leftover = chunk;
        },
        (err: unknown) => {
          f.pulling = undefined;
          f.failure = err;
        },
      );
      if ((await interruptible(f.pulling, since)) === INTERRUPTED) return INTERRUPTED;
    }
  }

  /** The answer is read from where the first read started; the call itself runs once per handle. */
  private async readCall(f: OpenFile, length: number, offset: number, since: number): Promise<Uint8Array | Interrupted> {
    f.callBase ??= offset;
    const at = Math.max(0, offset - f.callBase);
    f.answering ??= settle(f.handle.read(length, at));
    if ((await interruptible(f.answering, since)) === INTERRUPTED) return INTERRUPTED;
    // The handle keeps the answer (or the error): this read is served from it.
    return f.handle.read(length, at);
  }

  // --- ops -----------------------------------------------------------------------------------

  private makeOps(): FuseOps {
    const { service } = this;
    return {
      getattr: (path, cb) => {
        this.within('getattr', path, service.stat(path, this.cx), (code, st) => cb(code, st && this.toFuseStat(st)));
      },

      fgetattr: (path, fd, cb) => {
        const f = this.files.get(fd);
        const work = f?.handle.stat
          ? f.handle.stat().catch((err: unknown) => {
              if (err instanceof FsError && err.code === 'ENOSYS') return service.stat(path, this.cx);
              throw err;
            })
          : service.stat(path, this.cx);
        this.within('fgetattr', path, work, (code, st) => cb(code, st && this.toFuseStat(st)));
      },

      readdir: (path, cb) => {
        const work = Promise.all([service.stat(path, this.cx), service.readdir(path, this.cx)]);
        this.within('readdir', path, work, (code, result) => {
          if (code !== 0 || !result) return cb(code);
          const [self, entries] = result;
          const dirStat = this.toFuseStat(self);
          const names = ['.', '..'];
          const stats = [dirStat, dirStat];
          for (const e of entries) {
            names.push(e.name);
            stats.push(this.toFuseStat(e.stat));
          }
          cb(0, names, stats);
        });
      },

      open: (path, flags, cb) => this.opened('open', path, service.open(path, FuseAdapter.openFlags(flags), this.cx), cb),

      create: (path, mode, cb) => {
        // fuse-native passes no open flags here; the kernel already refused O_EXCL on an existing name.
        const flags: OpenFlags = { read: true, write: true, create: true, mode: mode & 0o7777 };
        this.opened('create', path, service.open(path, flags, this.cx), cb);
      },

      read: (path, fd, buf, len, offset, cb) => {
        const f = this.files.get(fd);
        if (!f) return cb(-EBADF);
        if (f.kind === 'data' && f.handle.readInto) {
          // Straight into libfuse's reply buffer (it stays ours until cb).
          f.handle.readInto(buf.subarray(0, len), offset).then(cb, (err: unknown) => cb(this.errno('read', path, err)));
          return;
        }
        const since = interruptCount();
        this.readAt(f, len, offset, since).then(
          (data) => {
            if (data === INTERRUPTED) return cb(-EINTR);
            const n = Math.min(len, data.length);
            if (n > 0) buf.set(n === data.length ? data : data.subarray(0, n));
            cb(n);
          },
          (err: unknown) => cb(this.errno('read', path, err)),
        );
      },

      write: (path, fd, buf, len, offset, cb) => {
        const f = this.files.get(fd);
        if (!f) return cb(-EBADF);
        // The buffer is libfuse's and is gone after we answer: the handle gets its own copy.
        f.handle.write(new Uint8Array(buf.subarray(0, len)), offset).then(
          (n) => cb(n),
          (err: unknown) => cb(this.errno('write', path, err)),
        );
      },

      flush: (path, fd, cb) => {
        const f = this.files.get(fd);
        if (!f) return cb(0);
        const work = f.handle.flush();
        if (f.kind !== 'call') {
          work.then(
            () => cb(0),
            (err: unknown) => cb(this.errno('flush', path, err)),
          );
          return;
        }
        // A call file's flush sends the request and may wait long for the answer: Ctrl-C must work.
        // (Reads wait for the same answer: the handle runs the call once.)
        interruptible(work, interruptCount()).then(
          (r) => cb(r === INTERRUPTED ? -EINTR : 0),
          (err: unknown) => cb(this.errno('flush', path, err)),
        );
      },

      release: (path, fd, cb) => {
        const f = this.files.get(fd);
        this.files.delete(fd);
        if (!f) return cb(0);
        f.handle.close().then(
          () => cb(0),
          (err: unknown) => cb(this.errno('release', path, err)),
        );
      },

      truncate: (path, size, cb) => {
        const work = service.truncate ? service.truncate(path, size, this.cx) : Promise.reject(new FsError('ENOSYS', path));
        this.within('truncate', path, work, cb);
      },

      ftruncate: (path, fd, size, cb) => {
        const f = this.files.get(fd);
        let work: Promise<void>;
        if (f?.handle.truncate) work = f.handle.truncate(size);
        else if (service.truncate) work = service.truncate(path, size, this.cx);
        else work = Promise.reject(new FsError('ENOSYS', path));
        this.within('ftruncate', path, work, cb);
      },

      unlink: (path, cb) => this.within('unlink', path, this.remove(path, false), cb),
      rmdir: (path, cb) => this.within('rmdir', path, this.remove(path, true), cb),

      mkdir: (path, mode, cb) => {
        const work = service.mkdir ? service.mkdir(path, mode & 0o7777, this.cx) : Promise.reject(new FsError('ENOSYS', path));
        this.within('mkdir', path, work, cb);
      },

      rename: (from, to, cb) => {
        const work = service.rename ? service.rename(from, to, this.cx) : Promise.reject(new FsError('ENOSYS', from));
        this.within('rename', from, work, cb);
      },

      chmod: (path, mode, cb) => this.within('chmod', path, this.setattr(path, { mode: mode & 0o7777 }), cb),

      chown: (path, uid, gid, cb) => {
        const attrs: SetAttr = {};
        if (uid !== UNCHANGED_ID) attrs.uid = uid;
        if (gid !== UNCHANGED_ID) attrs.gid = gid;
        this.within('chown', path, this.setattr(path, attrs), cb);
      },

      utimens: (path, atime, _mtime, cb) => {
        // fuse-native passes the access time twice (its mtime argument is a copy of atime), so both times
        // take it; UTIME_NOW (touch) arrives as a fixed small value and means now.
        const t = atime === UTIME_SPECIAL_MS ? Date.now() : atime;
        this.within('utimens', path, this.setattr(path, { atime: t, mtime: t }), cb);
      },

      getxattr: (path, name, cb) => {
        const attr = XATTRS[name];
        if (!attr) return cb(-ENODATA);
        this.within('getxattr', path, service.stat(path, this.cx), (code, st) => cb(code, st && Buffer.from(attr(st))));
      },

      listxattr: (_path, cb) => cb(0, XATTR_NAMES),

      statfs: (path, cb) => this.within('statfs', path, this.statfs(path), cb),
    };
  }

  /** The service's space for the path (an agent's memory quota); else the mount's default (the disk). */
  private async statfs(path: string): Promise<FuseStatfs> {
    const space = this.service.statfs ? await this.service.statfs(path, this.cx) : undefined;
    if (space && hasLimit(space)) return { ...DEFAULT_STATFS, ...statfsOfSpace(space) };
    return { ...DEFAULT_STATFS, ...(await this.options.statfs?.()) };
  }

  private remove(path: string, dir: boolean): Promise<void> {
    if (!this.service.remove) return Promise.reject(new FsError('ENOSYS', path));
    return this.service.remove(path, this.cx, { dir });
  }

  private async setattr(path: string, attrs: SetAttr): Promise<void> {
    if (!this.service.setattr) throw new FsError('ENOSYS', path);
    await this.service.setattr(path, attrs, this.cx);
  }
}

/**
 * Extended attributes that show what FUSE's stat cannot: the version (the HTTP ETag, Plan 9's qid.vers)
 * and the file kind. `getfattr -n user.agent9.version FILE`, or os.getxattr in Python.
 */
const XATTRS: Record<string, (st: Stat) => string> = {
  'user.agent9.version': (st) => String(st.version),
  'user.agent9.kind': (st) => st.kind,
};
const XATTR_NAMES = Object.keys(XATTRS);

const DEFAULT_STATFS: FuseStatfs = {
  bsize: 4096,
  frsize: 4096,
  blocks: 1 << 28,
  bfree: 1 << 27,
  bavail: 1 << 27,
  files: 1 << 24,
  ffree: 1 << 23,
  favail: 1 << 23,
  fsid: 0x61393639, // "a969"
  flag: 0,
  namemax: 255,
};
