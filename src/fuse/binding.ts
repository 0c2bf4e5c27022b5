/**
 * The fuse-native binding (libfuse 2.9 high-level API), loaded lazily so that a machine without
 * libfuse2 still runs everything else. We subclass its Fuse class for two things it lacks:
 * - the mount options: fuse-native builds `-o` from a fixed list that has no direct_io, big_writes,
 *   hard_remove, intr, negative_timeout, and drops `attr_timeout=0` (falsy); we give the whole string;
 * - fgetattr: fuse-native answers fstat(2) with getattr(path) and drops the file handle; we route it to
 *   the open handle (a view's snapshot size, a data file after rename);
 * - getxattr/listxattr: fuse-native copies values into the caller's buffer without checking its size
 *   (libfuse then sends more than the buffer holds); ours answer ERANGE like any filesystem.
 */
import { createRequire } from 'node:module';

/** A fuse-native op callback: `cb(0, value)`, `cb(-errno)`, or `cb(bytes)` for read and write. */
export type FuseCallback<T = void> = (code: number, value?: T) => void;

/** What fuse-native's getattr expects; times in milliseconds since the epoch. */
export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
}

export interface FuseStatfs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

/** The ops we implement, in fuse-native's calling convention. */
export interface FuseOps {
  getattr(path: string, cb: FuseCallback<FuseStat>): void;
  fgetattr(path: string, fd: number, cb: FuseCallback<FuseStat>): void;
  readdir(path: string, cb: (code: number, names?: string[], stats?: FuseStat[]) => void): void;
  open(path: string, flags: number, cb: FuseCallback<number>): void;
  create(path: string, mode: number, cb: FuseCallback<number>): void;
  read(path: string, fd: number, buf: Buffer, len: number, offset: number, cb: (bytesOrErr: number) => void): void;
  write(path: string, fd: number, buf: Buffer, len: number, offset: number, cb: (bytesOrErr: number) => void): void;
  flush(path: string, fd: number, cb: FuseCallback): void;
  release(path: string, fd: number, cb: FuseCallback): void;
  truncate(path: string, size: number, cb: FuseCallback): void;
  ftruncate(path: string, fd: number, size: number, cb: FuseCallback): void;
  unlink(path: string, cb: FuseCallback): void;
  mkdir(path: string, mode: number, cb: FuseCallback): void;
  rmdir(path: string, cb: FuseCallback): void;
  rename(from: string, to: string, cb: FuseCallback): void;
  chmod(path: string, mode: number, cb: FuseCallback): void;
  chown(path: string, uid: number, gid: number, cb: FuseCallback): void;
  utimens(path: string, atime: number, mtime: number, cb: FuseCallback): void;
  statfs(path: string, cb: FuseCallback<FuseStatfs>): void;
  /** The value of an extended attribute; undefined = no such attribute (ENODATA). */
  getxattr(path: string, name: string, cb: FuseCallback<Buffer | undefined>): void;
  listxattr(path: string, cb: FuseCallback<string[]>): void;
}

/** A mounted (or mountable) fuse-native filesystem. */
export interface FuseInstance {
  readonly mnt: string;
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}

export interface FuseInstanceOptions {
  /** The complete `-o` option list (without the `-o`). */
  mountOptions: string[];
}

type NativeSignal = (code: number, value?: Uint32Array | ArrayBufferLike) => void;

const ENODATA = 61;
const ERANGE = 34;

interface FuseNativeClass {
  new (mnt: string, ops: object, opts: object): FuseInstance & { ops: FuseOps };
  unmount(mnt: string, cb: (err: Error | null) => void): void;
}

export type BindingLoad = { ok: true; create: (mnt: string, ops: FuseOps, opts: FuseInstanceOptions) => FuseInstance } | { ok: false; reason: string };

let loaded: BindingLoad | undefined;

/** Loads fuse-native once; a missing libfuse2 (or binding) becomes a reason, never a crash. */
export function loadBinding(): BindingLoad {
  if (loaded) return loaded;
  let Fuse: FuseNativeClass;
  try {
    Fuse = createRequire(import.meta.url)('fuse-native') as FuseNativeClass;
  } catch (err) {
    const text = (err as Error).message ?? String(err);
    const reason = /libfuse\.so\.2/.test(text)
      ? `libfuse2 cannot be loaded (install it: apt-get install libfuse2): ${text.split("\n")[0]}`
      : `the fuse-native binding cannot be loaded: ${text.split('\n')[0]}`;
    loaded = { ok: false, reason };
    return loaded;
  }

  class AgentFuse extends Fuse {
    constructor(
      mnt: string,
      ops: FuseOps,
      private readonly mountOptions: string[],
    ) {
      // Timeouts are ours (see adapter.ts): fuse-native's would answer a blocked stream read with ETIMEDOUT.
      super(mnt, ops, { timeout: false });
    }

    _fuseOptions(): string {
      return this.mountOptions.length > 0 ? '-o' + this.mountOptions.join(',') : '';
    }

    _op_fgetattr(signal: NativeSignal, path: string, fd: number): void {
      this.ops.fgetattr(path, fd, (code, stat) => {
        if (code !== 0 || !stat) signal(code || -5);
        else signal(0, statArray(stat));
      });
    }

    _op_getxattr(signal: NativeSignal, path: string, name: string, valueBuf: Buffer): void {
      this.ops.getxattr(path, name, (code, value) => {
        if (code !== 0) return signal(code, valueBuf.buffer);
        if (!value) return signal(-ENODATA, valueBuf.buffer);
        if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer); // a size query
        if (value.length > valueBuf.length) return signal(-ERANGE, valueBuf.buffer);
        value.copy(valueBuf);
        signal(value.length, valueBuf.buffer);
      });
    }

    _op_listxattr(signal: NativeSignal, path: string, listBuf: Buffer): void {
      this.ops.listxattr(path, (code, names) => {
        if (code !== 0 || !names) return signal(code || -ENODATA, listBuf.buffer);
        const list = Buffer.from(names.map((n) => n + '\0').join(''));
        if (listBuf.length === 0) return signal(list.length, listBuf.buffer);
        if (list.length > listBuf.length) return signal(-ERANGE, listBuf.buffer);
        list.copy(listBuf);
        signal(list.length, listBuf.buffer);
      });
    }
  }

  loaded = {
    ok: true,
    create: (mnt, ops, opts) => new AgentFuse(mnt, ops, opts.mountOptions),
  };
  return loaded;
}

/** fuse-native's stat wire format (its own encoder is module-private): 18 uint32 words. */
function statArray(st: FuseStat): Uint32Array {
  const ints = new Uint32Array(18);
  const put64 = (at: number, n: number) => {
    const v = Math.max(0, Math.floor(n));
    ints[at] = v % 4294967296;
    ints[at + 1] = Math.floor(v / 4294967296);
  };
  ints[0] = st.mode;
  ints[1] = st.uid;
  ints[2] = st.gid;
  put64(3, st.size);
  ints[5] = 0; // dev
  ints[6] = st.nlink;
  ints[7] = 0; // ino: libfuse numbers nodes itself
  ints[8] = 0; // rdev
  ints[9] = st.blksize;
  put64(10, st.blocks);
  put64(12, st.atime);
  put64(14, st.mtime);
  put64(16, st.ctime);
  return ints;
}
