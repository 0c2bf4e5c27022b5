/**
 * Our FUSE binding (native/agent9_fuse.c, libfuse3's low-level API), loaded lazily so that a machine
 * without it still runs everything else. The addon posts every request to one handler on the JS thread
 * and exports the reply functions; docs/fuse-binding.md explains its threads and lifetimes.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Request codes, as native/agent9_fuse.c numbers them. */
export const Op = {
  lookup: 1,
  forget: 2,
  getattr: 3,
  setattr: 4,
  mkdir: 5,
  unlink: 6,
  rmdir: 7,
  rename: 8,
  open: 9,
  read: 10,
  write: 11,
  flush: 12,
  release: 13,
  fsync: 14,
  opendir: 15,
  readdir: 16,
  releasedir: 17,
  statfs: 18,
  getxattr: 19,
  listxattr: 20,
  create: 21,
  interrupt: 22,
  init: 23,
  exit: 24,
  // Node kinds of a local disk, numbered apart from 40 in the addon too.
  readlink: 40,
  symlink: 41,
  link: 42,
  mknod: 43,
  fallocate: 44,
} as const;

/**
 * The handler's arguments: (op, req, uid, gid, pid, ino, a, b, c, d, e), where a..e are, by op:
 * - lookup, unlink, rmdir: name
 * - forget: nlookup (req is 0: answered already)
 * - getattr, release, releasedir: fh
 * - setattr: toSet (FUSE_SET_ATTR_*), [mode, uid, gid, size, atime s, atime ns, mtime s, mtime ns], fh
 * - mkdir: name, mode, umask
 * - rename: name, newParent, newName, flags
 * - open: flags
 * - create: name, mode, flags, umask
 * - read, readdir: size, offset, fh, interrupted (already, before it reached us); read also: the
 *   file's open(2) flags as they are now (O_NONBLOCK set by fcntl after open included)
 * - write: data (a Buffer the handler owns), offset, fh
 * - flush, fsync: fh, datasync, interrupted
 * - getxattr: name, size; listxattr: size
 * - interrupt: the req being interrupted
 * - readlink: (ino only); symlink: name, target; link: newParent, newName (ino: the file)
 * - mknod: name, mode (with its S_IFMT type), rdev, umask
 * - fallocate: mode (FALLOC_FL_*), offset, length, fh
 */
export type RequestHandler = (
  op: number,
  req: number,
  uid: number,
  gid: number,
  pid: number,
  ino: number,
  a: unknown,
  b: unknown,
  c: unknown,
  d: unknown,
  e: unknown,
) => void;

/** [ino, mode, nlink, uid, gid, size, blocks, blksize, atime s, ns, mtime s, ns, ctime s, ns] */
export type StatWords = number[];

/** Open reply flags. */
export const OPEN_DIRECT_IO = 1;
export const OPEN_KEEP_CACHE = 2;
export const OPEN_NONSEEKABLE = 4;

/** The addon's exports; every reply returns 0 or a negative errno (the kernel had gone). */
export interface NativeFuse {
  mount(dir: string, options: string, handler: RequestHandler): object;
  unmount(session: object): void;
  destroy(session: object): void;
  replyErr(req: number, errno: number): number;
  replyEntry(req: number, stat: StatWords, generation: number, attrTimeout: number, entryTimeout: number): number;
  replyAttr(req: number, stat: StatWords, attrTimeout: number): number;
  replyOpen(req: number, fh: number, flags: number): number;
  replyCreate(req: number, stat: StatWords, generation: number, attrTimeout: number, entryTimeout: number, fh: number, flags: number): number;
  replyBuf(req: number, data: Uint8Array, length: number): number;
  replyWrite(req: number, count: number): number;
  replyXattr(req: number, size: number): number;
  replyReadlink(req: number, target: string): number;
  /** [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax] */
  replyStatfs(req: number, words: number[]): number;
  /** Answers with entries first.. that fit in size bytes; returns how many fitted. */
  replyDir(req: number, size: number, names: string[], inos: number[], modes: number[], first: number): number;
  notifyInvalInode(session: object, ino: number, offset: number, length: number): number;
  notifyInvalEntry(session: object, parent: number, name: string): number;
}

export type BindingLoad = { ok: true; native: NativeFuse } | { ok: false; reason: string };

/** Where setup (scripts/setup.sh, `npm install`) builds the addon: native/ of the package (src, dist or dist-bench). */
export function addonPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const gyp = join(dir, 'native', 'binding.gyp');
    if (existsSync(gyp)) return join(dir, 'native', 'build', 'Release', 'agent9_fuse.node');
    dir = dirname(dir);
  }
  return join(dir, 'native', 'build', 'Release', 'agent9_fuse.node');
}

let loaded: BindingLoad | undefined;

/** Loads the addon once; a missing build (or libfuse3) becomes a reason, never a crash. */
export function loadBinding(): BindingLoad {
  if (loaded) return loaded;
  try {
    loaded = { ok: true, native: createRequire(import.meta.url)(addonPath()) as NativeFuse };
  } catch (err) {
    const text = ((err as Error).message ?? String(err)).split('\n')[0];
    const reason = /libfuse3\.so/.test(text ?? '')
      ? `libfuse3 cannot be loaded (install it: apt-get install libfuse3-3): ${text}`
      : `the FUSE addon cannot be loaded (build it: npm run setup): ${text}`;
    loaded = { ok: false, reason };
  }
  return loaded;
}
