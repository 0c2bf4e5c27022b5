/**
 * Resolving a path beneath a directory without ever letting the kernel follow a link: Node has no
 * openat2(RESOLVE_BENEATH), so every component is opened on its own, as `/proc/self/fd/<dir>/<name>`
 * with O_PATH|O_NOFOLLOW (the kernel resolves the name in that very directory, whatever was renamed
 * meanwhile, and a link opens as the link). A link is read and its target walked the same way, here,
 * component by component, and only as long as it stays beneath; `..` goes back to the directory the walk
 * came through (an open descriptor), never to the kernel's idea of the parent. What a walk answers is
 * open descriptors, so the operation that follows acts on the very file that was checked: a container
 * swapping a directory for a link between the check and the use finds nothing left to race.
 */
import { closeSync, constants as K, fstatSync, lstatSync, openSync, readlinkSync, type BigIntStats } from 'node:fs';
import { FsError } from '../../../fs/errors.js';
import { may, X, type Identity } from './user-permissions.js';

/** open(2)'s O_PATH on Linux (Node does not export it): a descriptor that pins a name without opening it. */
export const O_PATH = 0o10000000;
/** As the kernel's MAXSYMLINKS. */
const MAX_LINKS = 40;
/** Directories held open by one walk at most (the depth of a path), so a hostile tree cannot use up descriptors. */
const MAX_DEPTH = 256;
/** Components one walk takes at most, links' targets included: a walk is synchronous, this bounds its time. */
const MAX_STEPS = 4096;

/** The path of `name` in the directory open as `fd` (the descriptor's own path without a name). */
export function at(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/*
 * The walk's calls are synchronous on purpose: they touch only procfs and the container's tmpfs (never a
 * FUSE mount: a container can mount nothing), O_PATH opens never block (not even on a FIFO), and each
 * takes microseconds where a trip through libuv's thread pool takes a hundred or more. The contents of
 * files are read and written asynchronously (ops.ts).
 */
export function openFd(path: string, flags: number, mode = 0o600): number {
  return openSync(path, flags, mode);
}

export function statFd(fd: number): BigIntStats {
  return fstatSync(fd, { bigint: true });
}

/** lstat of a name in an open directory. */
export function lstatAt(dir: number, name: string): BigIntStats {
  return lstatSync(at(dir, name), { bigint: true });
}

/** lstat of a name in an open directory, or undefined when there is none. */
export function lstatIfAny(dir: number, name: string): BigIntStats | undefined {
  return lstatSync(at(dir, name), { bigint: true, throwIfNoEntry: false });
}

export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

export function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** A directory of a walk: an O_PATH descriptor, its stat, and its name in its parent. */
export interface Dir {
  fd: number;
  stat: BigIntStats;
  name: string;
}

/** The tree a walk may not leave. */
export interface Jail {
  /** An O_PATH descriptor of its top directory (owned by the caller). */
  fd: number;
  /** Where that directory is in the container, as components ([] is the container's root). */
  where: readonly string[];
  /** The user whose search permission each directory walked through needs. */
  user: Identity;
  /** The device of the tree, when it is one file system (a tmpfs workdir): anything else met is refused. */
  dev?: bigint;
  /** Links are followed only in directories of this device (the image's read-only root: the session makes none there). */
  linksOn?: bigint;
}

/**
 * Where a walk ended: the directory holding the last name, that name, and the file itself when it
 * exists. The name is '' only for the top of the jail (then `dir` is the top as well).
 */
export interface Found {
  dir: Dir;
  name: string;
  /** The file (never a link) when it exists: an O_PATH descriptor, valid until the walk is closed. */
  node?: { fd: number; stat: BigIntStats };
  /** The names of the directories from the top down to `dir`: its canonical path. */
  names: string[];
  /** When the file does not exist because the last name is a dangling link: that link, as it was opened. */
  dangling?: BigIntStats;
}

/** One or more walks beneath a jail; close() closes every descriptor they opened. */
export class Walk {
  private readonly opened = new Set<number>();
  private top: BigIntStats | undefined;

  constructor(
    private readonly jail: Jail,
    /** The path as the caller named it, for errors. */
    private readonly path: string,
  ) {}

  close(): void {
    for (const fd of this.opened) closeFd(fd);
    this.opened.clear();
  }

  /** Takes a descriptor this walk opened out of its care: close() leaves it open. */
  keep(fd: number): number {
    this.opened.delete(fd);
    return fd;
  }

  /** The directory holding the last name of `rel` (links before it followed), and that name. */
  parent(rel: string): Found {
    return this.walk(rel, false);
  }

  /** `rel` with every link followed, the last one too: the file when it exists, else where it would be made. */
  resolve(rel: string): Found {
    return this.walk(rel, true);
  }

  private outside(): FsError {
    return new FsError('EINVAL', this.path, 'the path leads outside the workdir');
  }

  private openHere(path: string): number {
    const fd = openFd(path, O_PATH | K.O_NOFOLLOW);
    this.opened.add(fd);
    return fd;
  }

  private drop(fd: number): void {
    if (fd === this.jail.fd || !this.opened.delete(fd)) return;
    closeFd(fd);
  }

  private walk(rel: string, followLast: boolean): Found {
    const { jail } = this;
    this.top ??= statFd(jail.fd);
    const root: Dir = { fd: jail.fd, stat: this.top, name: '' };
    let stack: Dir[] = [root];
    /** While a link's target is outside the jail: its lexical place in the container, a prefix of `where`. */
    let outside: string[] | undefined;
    const rest = rel.split('/');
    let links = 0;
    let steps = 0;
    /** The link met last in the last place (its target is what is left to walk). */
    let lastLink: BigIntStats | undefined;
    const enter = (place: string[]) => {
      outside = place.length === jail.where.length ? undefined : place;
      if (!outside) stack = [root];
    };
    while (rest.length > 0) {
      const c = rest.shift()!;
      if (c === '' || c === '.') continue;
      if (++steps > MAX_STEPS) throw new FsError('ENAMETOOLONG', this.path, `more than ${MAX_STEPS} names to walk`);
      if (outside) {
        // Coming back in is the only way on: through the jail's own (link-free) canonical path.
        if (c === '..') outside.pop();
        else if (jail.where[outside.length] === c) outside.push(c);
        else throw this.outside();
        enter(outside);
        continue;
      }
      if (c === '..') {
        if (stack.length > 1) this.drop(stack.pop()!.fd);
        else if (jail.where.length > 0) enter(jail.where.slice(0, -1));
        continue;
      }
      const dir = stack.at(-1)!;
      if (!may(jail.user, dir.stat, X)) throw new FsError('EACCES', this.path, 'permission denied');
      const last = rest.every((r) => r === '' || r === '.');
      const names = stack.slice(1).map((d) => d.name);
      if (last && !followLast) return { dir, name: c, names };
      let fd: number;
      try {
        fd = this.openHere(at(dir.fd, c));
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err;
        if (last) return { dir, name: c, names, ...(lastLink ? { dangling: lastLink } : {}) };
        throw new FsError('ENOENT', this.path, 'no such file or directory');
      }
      const st = statFd(fd);
      if (jail.dev !== undefined && st.dev !== jail.dev) throw this.outside();
      if (st.isSymbolicLink()) {
        this.drop(fd);
        if (jail.linksOn !== undefined && dir.stat.dev !== jail.linksOn) throw new FsError('EINVAL', this.path, 'the path goes through a link the session made');
        if (last) lastLink = st;
        if (++links > MAX_LINKS) throw new FsError('EINVAL', this.path, 'too many levels of symbolic links');
        let target: string;
        try {
          target = readlinkSync(at(dir.fd, c));
        } catch (err) {
          // Replaced since it was opened: take the name again.
          if (errnoOf(err) !== 'EINVAL' && errnoOf(err) !== 'ENOENT') throw err;
          rest.unshift(c);
          continue;
        }
        rest.unshift(...target.split('/'));
        if (target.startsWith('/')) enter([]);
        continue;
      }
      if (st.isDirectory()) {
        if (stack.length > MAX_DEPTH) throw new FsError('ENAMETOOLONG', this.path, `more than ${MAX_DEPTH} directories deep`);
        stack.push({ fd, stat: st, name: c });
        if (last) return { dir, name: c, node: { fd, stat: st }, names };
        continue;
      }
      if (last) return { dir, name: c, node: { fd, stat: st }, names };
      throw new FsError('ENOTDIR', this.path, 'not a directory');
    }
    if (outside) throw this.outside();
    // The path ended at a directory without a last name (the top itself, or a link to `.` or `..`).
    const node = stack.at(-1)!;
    const names = stack.slice(1, -1).map((d) => d.name);
    return { dir: stack.at(-2) ?? node, name: node.name, node: { fd: node.fd, stat: node.stat }, names };
  }
}
