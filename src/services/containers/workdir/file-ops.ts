/**
 * The files/ operations on a pinned workdir. Each resolves its path with a Walk (nothing followed
 * that leads out) and then acts on what the walk holds open: a read or write reopens the very file
 * through its descriptor, a create, mkdir, unlink or rename names one entry of a directory held open
 * (the kernel never follows a last name for those). The session user's permissions are checked here
 * (access.ts), and what is created is given to that user.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  constants as K,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  mkdirSync,
  readdir,
  readSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  utimesSync,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { promisify } from 'node:util';
import { EMPTY } from '../../../fs/bytes.js';
import { FsError } from '../../../fs/errors.js';
import type { DirEntry, SetAttr, Stat } from '../../../fs/types.js';
import { canKeepOwner, chmodBits, may, mayUnlink, need, needChown, needOwner, needUnlink, newOwner, R, S_ISGID, W, X } from './user-permissions.js';
import { at, closeFd, errnoOf, lstatAt, lstatIfAny, openFd, statFd, Walk, type Dir, type Found, type Jail } from './walk.js';

const readdirP = promisify(readdir);

const MESSAGES = { ENOTDIR: 'not a directory', EISDIR: 'is a directory', EEXIST: 'file exists', ENOTEMPTY: 'directory not empty' };

/** A create that found the name taken after the walk said it was free: the whole operation runs again. */
class Raced extends Error {}
const ATTEMPTS = 4;
/** Entries of a listing looked at between two turns of the event loop. */
const LIST_BATCH = 256;

export function toStat(st: BigIntStats): Stat {
  const dir = st.isDirectory();
  const ms = (ns: bigint) => Number(ns / 1_000_000n);
  return {
    type: dir ? 'dir' : 'file',
    kind: dir ? 'dir' : 'data',
    size: dir ? 0 : Number(st.size),
    mode: Number(st.mode) & 0o7777,
    mtime: ms(st.mtimeNs),
    ctime: ms(st.ctimeNs),
    atime: ms(st.atimeNs),
    // The workdir's file system keeps nanoseconds: microseconds of mtime tell every write apart.
    version: Number(st.mtimeNs / 1000n),
    uid: Number(st.uid),
    gid: Number(st.gid),
  };
}

function existing(found: Found, path: string): { fd: number; stat: BigIntStats } {
  if (!found.node) throw new FsError('ENOENT', path, 'no such file or directory');
  return found.node;
}

/** The file a read, write or truncate may act on: a regular file. */
function regular(found: Found, path: string): { fd: number; stat: BigIntStats } {
  const node = existing(found, path);
  if (node.stat.isDirectory()) throw new FsError('EISDIR', path, 'is a directory');
  if (!node.stat.isFile()) throw new FsError('EINVAL', path, 'not a regular file');
  return node;
}

/** File contents move synchronously (memory to memory) in chunks of this size, with a turn of the event loop between. */
const CHUNK = 1024 * 1024;
const turn = () => new Promise((resolve) => setImmediate(resolve));

async function writeAll(fd: number, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length; ) {
    if (off > 0) await turn();
    off += writeSync(fd, data, off, Math.min(CHUNK, data.length - off));
  }
}

/**
 * Reads to the end, expecting `size` bytes (one byte more is asked for: a short read of a regular file
 * is its end); a file that grew past `max` meanwhile is still refused.
 */
async function readAll(fd: number, size: number, max: number, tooBig: (size: string) => FsError): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for (let total = 0; ; ) {
    if (total > 0) await turn();
    const want = Math.min(CHUNK, Math.max(size - total, 0) + 1, max - total + 1);
    const chunk = Buffer.allocUnsafe(want);
    const got = readSync(fd, chunk, 0, want, null);
    total += got;
    if (total > max) throw tooBig(`more than ${max}`);
    parts.push(chunk.subarray(0, got));
    if (got < want) return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

export class WorkdirOps {
  constructor(
    private readonly jail: Jail,
    /** The workdir's size, for the message of a full one. */
    private readonly diskMb: number,
  ) {}

  private get user() {
    return this.jail.user;
  }

  /** A system error as the caller sees it, naming `path`. */
  private fsError(err: unknown, path: string): unknown {
    if (err instanceof FsError || err instanceof Raced) return err;
    const code = errnoOf(err);
    switch (code) {
      case 'ENOENT':
      case 'ESRCH':
        return new FsError('ENOENT', path, 'no such file or directory');
      case 'ENOTDIR':
      case 'EISDIR':
      case 'EEXIST':
      case 'ENOTEMPTY':
        return new FsError(code, path, MESSAGES[code]);
      case 'ENOSPC':
      case 'EDQUOT':
        return new FsError('EFBIG', path, `no space left in the workdir (${this.diskMb} MB)`);
      case 'EACCES':
      case 'EPERM':
      case 'EROFS':
        return new FsError('EACCES', path, code === 'EROFS' ? 'read-only file system' : 'permission denied');
      case 'ELOOP':
        return new FsError('EAGAIN', path, 'the path changed while it was used; try again', { retryAfterMs: 10 });
      default:
        // Node's message without the path it names (a /proc/self/fd path of this process).
        return new FsError('EIO', path, String((err as Error).message ?? err).replace(/, \w+ '.*$/s, ''));
    }
  }

  /** Runs `fn` with a walk of its own, closed after; creates that lost a race start again. */
  private async walking<T>(path: string, fn: (w: Walk) => T | Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const walk = new Walk(this.jail, path);
      try {
        return await fn(walk);
      } catch (err) {
        if (!(err instanceof Raced)) throw this.fsError(err, path);
        if (attempt === ATTEMPTS) throw new FsError('EAGAIN', path, 'the directory kept changing while the file was made; try again', { retryAfterMs: 10 });
      } finally {
        walk.close();
      }
    }
  }

  stat(rel: string, path: string): Promise<Stat> {
    return this.walking(path, (w) => {
      // What a link leads to; a dangling one is itself (as the walk saw it: a stat of the name taken
      // apart from the walk could find the link gone and show another file's type).
      const found = w.resolve(rel);
      const stat = found.node?.stat ?? found.dangling;
      if (!stat) throw new FsError('ENOENT', path, 'no such file or directory');
      return toStat(stat);
    });
  }

  list(rel: string, path: string): Promise<DirEntry[]> {
    return this.walking(path, async (w) => {
      const node = existing(w.resolve(rel), path);
      if (!node.stat.isDirectory()) throw new FsError('ENOTDIR', path, 'not a directory');
      need(this.user, node.stat, R | X, path);
      const names = await readdirP(at(node.fd));
      const entries: DirEntry[] = [];
      for (let i = 0; i < names.length; i += LIST_BATCH) {
        // A batch at a time, then a turn of the event loop: a directory of many names stalls nothing.
        const batch = names.slice(i, i + LIST_BATCH).map((name) => this.entry(node.fd, rel, name, path));
        await turn();
        for (const e of batch) if (e) entries.push(e);
      }
      return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    });
  }

  /** One listed name: a link shows what it leads to inside the workdir, else (dangling or out) itself. */
  private entry(dir: number, rel: string, name: string, path: string): DirEntry | undefined {
    const own = lstatIfAny(dir, name); // none: removed since the directory was read
    if (!own || !own.isSymbolicLink()) return own && { name, stat: toStat(own) };
    const w = new Walk(this.jail, path);
    try {
      const found = w.resolve(rel === '' ? name : `${rel}/${name}`);
      return { name, stat: toStat(found.node?.stat ?? found.dangling ?? own) };
    } catch (err) {
      if (err instanceof FsError) return { name, stat: toStat(own) };
      throw err;
    } finally {
      w.close();
    }
  }

  read(rel: string, path: string, max: number): Promise<Uint8Array> {
    return this.walking(path, async (w) => {
      const node = regular(w.resolve(rel), path);
      need(this.user, node.stat, R, path);
      const tooBig = (size: bigint | string) => new FsError('EFBIG', path, `the file has ${size} bytes, more than the ${max} a read may take`);
      if (node.stat.size > BigInt(max)) throw tooBig(node.stat.size);
      const fd = openFd(at(node.fd), K.O_RDONLY | K.O_NOCTTY);
      try {
        return await readAll(fd, Number(node.stat.size), max, tooBig);
      } finally {
        closeFd(fd);
      }
    });
  }

  write(rel: string, path: string, data: Uint8Array, append: boolean): Promise<Stat> {
    return this.walking(path, (w) => {
      const found = w.resolve(rel);
      const { dir, name } = found;
      if (found.node) {
        const node = regular(found, path);
        need(this.user, node.stat, W, path);
        if (append) return this.inPlace(node.fd, data, K.O_WRONLY | K.O_APPEND);
        // Written aside and renamed over, a write that runs out of space leaves the old content whole;
        // where the user could not have made that copy (the directory or the owner), it is written in place.
        if (may(this.user, dir.stat, W | X) && canKeepOwner(this.user, node.stat) && mayUnlink(this.user, dir.stat, node.stat)) {
          return this.aside(dir, name, data, { uid: Number(node.stat.uid), gid: Number(node.stat.gid), mode: Number(node.stat.mode) & 0o1777 });
        }
        return this.inPlace(node.fd, data, K.O_WRONLY | K.O_TRUNC);
      }
      need(this.user, dir.stat, W | X, path);
      const owner = { ...newOwner(this.user, dir.stat), mode: 0o644 };
      return append ? this.created(dir, name, owner, data, false, path) : this.aside(dir, name, data, owner);
    });
  }

  /** Writes through the file's own descriptor (reopened: the very file the walk found). */
  private async inPlace(node: number, data: Uint8Array, flags: number): Promise<Stat> {
    const fd = openFd(at(node), flags | K.O_NOCTTY);
    try {
      await writeAll(fd, data);
      return toStat(statFd(fd));
    } finally {
      closeFd(fd);
    }
  }

  /** A new file `name` in `dir`, made with O_EXCL (so never through a link), given to its owner. */
  private async created(dir: Dir, name: string, owner: { uid: number; gid: number; mode: number }, data: Uint8Array, exclusive: boolean, path: string): Promise<Stat> {
    let fd: number;
    try {
      fd = openFd(at(dir.fd, name), K.O_WRONLY | K.O_CREAT | K.O_EXCL | K.O_NOFOLLOW | K.O_NOCTTY, 0o600);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
      if (exclusive) throw new FsError('EEXIST', path, 'file exists');
      throw new Raced();
    }
    try {
      fchownSync(fd, owner.uid, owner.gid);
      fchmodSync(fd, owner.mode);
      await writeAll(fd, data);
      return toStat(statFd(fd));
    } finally {
      closeFd(fd);
    }
  }

  /** Writes a new file beside `name` in `dir` and renames it over `name`: all or nothing. */
  private async aside(dir: Dir, name: string, data: Uint8Array, owner: { uid: number; gid: number; mode: number }): Promise<Stat> {
    const temp = `.agent9-write.${randomBytes(6).toString('hex')}`;
    const fd = openFd(at(dir.fd, temp), K.O_WRONLY | K.O_CREAT | K.O_EXCL | K.O_NOFOLLOW | K.O_NOCTTY, 0o600);
    try {
      await writeAll(fd, data);
      fchownSync(fd, owner.uid, owner.gid);
      fchmodSync(fd, owner.mode);
      renameSync(at(dir.fd, temp), at(dir.fd, name));
      return toStat(statFd(fd));
    } catch (err) {
      try {
        unlinkSync(at(dir.fd, temp));
      } catch {
        /* renamed already, or gone */
      }
      throw err;
    } finally {
      closeFd(fd);
    }
  }

  /** open(2) with O_CREAT: an exclusive create never follows a link (the kernel's rule); else the target is made. */
  create(rel: string, path: string, opts: { exclusive: boolean; truncate: boolean; mode: number }): Promise<Stat> {
    return this.walking(path, (w) => {
      const found = opts.exclusive ? w.parent(rel) : w.resolve(rel);
      if (opts.exclusive) {
        if (lstatIfAny(found.dir.fd, found.name)) throw new FsError('EEXIST', path, 'file exists');
      } else if (found.node) {
        if (found.node.stat.isDirectory()) throw new FsError('EISDIR', path, 'is a directory');
        if (!opts.truncate) return toStat(found.node.stat);
        const node = regular(found, path);
        need(this.user, node.stat, W, path);
        return this.inPlace(node.fd, EMPTY, K.O_WRONLY | K.O_TRUNC);
      }
      need(this.user, found.dir.stat, W | X, path);
      return this.created(found.dir, found.name, { ...newOwner(this.user, found.dir.stat), mode: opts.mode }, EMPTY, opts.exclusive, path);
    });
  }

  mkdir(rel: string, path: string, mode: number): Promise<void> {
    return this.walking(path, (w) => {
      const { dir, name } = w.parent(rel);
      need(this.user, dir.stat, W | X, path);
      mkdirSync(at(dir.fd, name), 0o700);
      // Owner and mode go on what is there now, opened without following: a link put in its place
      // meanwhile is left alone. (Node has no mkdirat + fchownat on one descriptor: a directory renamed
      // in between could take the new owner; only a user who may rename in `dir` could do that.)
      let fd: number;
      try {
        fd = openFd(at(dir.fd, name), K.O_RDONLY | K.O_DIRECTORY | K.O_NOFOLLOW);
      } catch {
        return;
      }
      try {
        const owner = newOwner(this.user, dir.stat);
        fchownSync(fd, owner.uid, owner.gid);
        fchmodSync(fd, (mode & 0o7777) | (Number(dir.stat.mode) & S_ISGID));
      } finally {
        closeFd(fd);
      }
    });
  }

  /** rm / rmdir of the name itself (a link goes, not what it leads to); `dir` undefined: either. */
  remove(rel: string, path: string, dirOnly: boolean | undefined): Promise<void> {
    return this.walking(path, (w) => {
      const { dir, name } = w.parent(rel);
      const own = lstatAt(dir.fd, name);
      needUnlink(this.user, dir.stat, own, path);
      if (own.isDirectory()) {
        if (dirOnly === false) throw new FsError('EISDIR', path, 'is a directory');
        rmdirSync(at(dir.fd, name));
      } else {
        if (dirOnly === true) throw new FsError('ENOTDIR', path, 'not a directory');
        unlinkSync(at(dir.fd, name));
      }
    });
  }

  /** mv within the workdir; an error names the path at fault (the source or the destination). */
  async rename(rel: string, path: string, toRel: string, toPath: string): Promise<void> {
    const to = new Walk(this.jail, toPath);
    try {
      await this.walking(path, (w) => {
        const from = w.parent(rel);
        const own = lstatAt(from.dir.fd, from.name);
        needUnlink(this.user, from.dir.stat, own, path);
        const dest = this.destination(to, toRel, toPath);
        if (own.isDirectory() && from.dir.stat.ino !== dest.dir.stat.ino) need(this.user, own, W, path); // its `..` changes
        try {
          renameSync(at(from.dir.fd, from.name), at(dest.dir.fd, dest.name));
        } catch (err) {
          throw this.renameError(err, own, dest.there, path, toPath);
        }
      });
    } finally {
      to.close();
    }
  }

  private destination(to: Walk, toRel: string, toPath: string): { dir: Dir; name: string; there: BigIntStats | undefined } {
    try {
      const { dir, name } = to.parent(toRel);
      const there = lstatIfAny(dir.fd, name);
      if (there) needUnlink(this.user, dir.stat, there, toPath);
      else need(this.user, dir.stat, W | X, toPath);
      return { dir, name, there };
    } catch (err) {
      throw this.fsError(err, toPath);
    }
  }

  private renameError(err: unknown, own: BigIntStats, there: BigIntStats | undefined, path: string, toPath: string): unknown {
    switch (errnoOf(err)) {
      case 'EISDIR':
        return new FsError('EISDIR', toPath, 'the target is a directory');
      case 'ENOTEMPTY':
      case 'EEXIST':
        return new FsError('ENOTEMPTY', toPath, 'the target directory is not empty');
      case 'ENOTDIR':
        return own.isDirectory() && there ? new FsError('ENOTDIR', toPath, 'the target is not a directory') : this.fsError(err, path);
      case 'EINVAL':
        return new FsError('EINVAL', path, 'cannot move a directory into itself');
      default:
        return this.fsError(err, path);
    }
  }

  truncate(rel: string, path: string, size: number): Promise<Stat> {
    return this.walking(path, (w) => {
      const node = regular(w.resolve(rel), path);
      need(this.user, node.stat, W, path);
      const fd = openFd(at(node.fd), K.O_WRONLY | K.O_NOCTTY);
      try {
        ftruncateSync(fd, size);
        return toStat(statFd(fd));
      } finally {
        closeFd(fd);
      }
    });
  }

  /** chmod, chown, utimes on the file a path leads to (through its descriptor, so on that very file). */
  setattr(rel: string, path: string, attrs: SetAttr): Promise<Stat> {
    return this.walking(path, (w) => {
      const node = existing(w.resolve(rel), path);
      const file = at(node.fd);
      if (attrs.uid !== undefined || attrs.gid !== undefined) {
        needChown(this.user, node.stat, attrs.uid, attrs.gid, path);
        chownSync(file, attrs.uid ?? -1, attrs.gid ?? -1);
      }
      if (attrs.mode !== undefined) {
        const st = statFd(node.fd);
        needOwner(this.user, st, path, 'change its mode');
        chmodSync(file, chmodBits(this.user, Number(st.gid), attrs.mode & 0o7777));
      }
      if (attrs.atime !== undefined || attrs.mtime !== undefined) {
        const st = statFd(node.fd);
        needOwner(this.user, st, path, 'set its times');
        utimesSync(file, (attrs.atime ?? Number(st.atimeMs)) / 1000, (attrs.mtime ?? Number(st.mtimeMs)) / 1000);
      }
      return toStat(statFd(node.fd));
    });
  }
}
