/**
 * The one forwarding base: a FileService that passes every operation to an inner one, with hooks for
 * what a wrapper changes (gVisor's p9 templates in spirit). Access levels, rooted views and token
 * restrictions (src/mounts) are each a few hooks on it, so an operation added to FileService is
 * forwarded here once, and every wrapper gets it.
 *
 * Per operation the base: normalises the path, asks `before` (which may refuse, charge or rewrite),
 * maps the path inward (`inward`), calls the inner service (ENOSYS naming the path when it lacks the
 * method), and maps what comes back: errors (`outwardError`), stats (`outwardStat`), listings
 * (`outwardEntries`), handles (their errors), watch events (`outwardEvent`) and watch matchers.
 */
import { FsError, toFsError } from './errors.js';
import { NO_LIMIT } from './types.js';
import type { Matcher } from './events.js';
import { MappedHandle } from './handles.js';
import { isWatchSource, type WatchSource } from './namespace.js';
import { readAll, readStat, writeAll } from './ops.js';
import { normalizePath } from './paths.js';
import type { Cx, DirEntry, FileService, FsEvent, FsSpace, Handle, OpenFlags, SetAttr, Stat, StatAndData, WriteFileOptions } from './types.js';

/** What an operation does to the path it names, as a wrapper judges it. */
export type AccessKind = 'list' | 'read' | 'write';

/** One operation, as `before` sees it. */
export interface OpInfo {
  op:
    | 'stat'
    | 'readdir'
    | 'open'
    | 'mkdir'
    | 'remove'
    | 'rename'
    | 'rename-to'
    | 'truncate'
    | 'setattr'
    | 'readFile'
    | 'readStat'
    | 'writeFile'
    | 'watch'
    | 'statfs'
    | 'symlink'
    | 'readlink'
    | 'link'
    | 'link-from'
    | 'mknod'
    | 'realpath';
  /**
   * list: stat, readdir, readStat, watch, statfs, realpath; read: open for reading, readFile, readlink;
   * write: the rest (`link-from`, the file a hard link names, is a write: the new name writes it too).
   */
  kind: AccessKind;
  flags?: OpenFlags;
}

export function isWriteOpen(flags: OpenFlags): boolean {
  return !!(flags.write || flags.create || flags.truncate || flags.append);
}

const INFO = {
  stat: { op: 'stat', kind: 'list' },
  readdir: { op: 'readdir', kind: 'list' },
  readStat: { op: 'readStat', kind: 'list' },
  watch: { op: 'watch', kind: 'list' },
  statfs: { op: 'statfs', kind: 'list' },
  readFile: { op: 'readFile', kind: 'read' },
  mkdir: { op: 'mkdir', kind: 'write' },
  remove: { op: 'remove', kind: 'write' },
  rename: { op: 'rename', kind: 'write' },
  renameTo: { op: 'rename-to', kind: 'write' },
  truncate: { op: 'truncate', kind: 'write' },
  setattr: { op: 'setattr', kind: 'write' },
  writeFile: { op: 'writeFile', kind: 'write' },
  symlink: { op: 'symlink', kind: 'write' },
  readlink: { op: 'readlink', kind: 'read' },
  link: { op: 'link', kind: 'write' },
  linkFrom: { op: 'link-from', kind: 'write' },
  mknod: { op: 'mknod', kind: 'write' },
  realpath: { op: 'realpath', kind: 'list' },
} as const satisfies Record<string, OpInfo>;

export abstract class ForwardingService implements FileService, WatchSource {
  readonly serviceName: string;

  constructor(
    protected readonly inner: FileService,
    serviceName?: string,
  ) {
    this.serviceName = serviceName ?? inner.serviceName ?? 'service';
  }

  // --- hooks ------------------------------------------------------------------------------------

  /**
   * Checks an operation before the inner service sees it (throw to refuse). `path` is normalised. A
   * promise is awaited (a budget charge); a check that returns nothing costs no turn of the microtask queue.
   */
  protected before(_info: OpInfo, _path: string, _cx: Cx): void | Promise<void> {}

  /** The inner service's path for a path of this view. */
  protected inward(path: string): string {
    return path;
  }

  /** A path of the inner service as this view names it (errors and events). */
  protected outward(innerPath: string): string {
    return innerPath;
  }

  /** An error of the inner service as this view reports it (by default: its path mapped outward). */
  protected outwardError(err: unknown, path: string): FsError {
    const e = toFsError(err, path);
    if (!e.path.startsWith('/')) return e;
    const mapped = this.outward(e.path);
    if (mapped === e.path) return e;
    const opts = e.retryAfterMs === undefined ? { cause: e } : { cause: e, retryAfterMs: e.retryAfterMs };
    return new FsError(e.code, mapped, e.detail, opts);
  }

  /** A stat as this view shows it (`path` is this view's). */
  protected outwardStat(_path: string, stat: Stat, _cx: Cx): Stat {
    return stat;
  }

  /** A listing as this view shows it: by default each stat through outwardStat. */
  protected outwardEntries(path: string, entries: DirEntry[], cx: Cx): DirEntry[] {
    const base = path === '/' ? '' : path;
    return entries.map((e) => {
      const stat = this.outwardStat(`${base}/${e.name}`, e.stat, cx);
      return stat === e.stat ? e : { name: e.name, stat };
    });
  }

  /** A watch event as this view shows it; undefined drops it. */
  protected outwardEvent(ev: FsEvent): FsEvent | undefined {
    return ev;
  }

  /** The content a readStat may give for `path` (false: only the stat, e.g. a directory on the way down). */
  protected mayRead(_path: string): boolean {
    return true;
  }

  /** A watch matcher of the inner service as this view applies it. */
  protected outwardMatcher(m: Matcher): Matcher {
    return m;
  }

  // --- the operations -------------------------------------------------------------------------

  /** Runs one forwarded operation with its errors mapped outward. */
  protected async forward<T>(path: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.outwardError(err, path);
    }
  }

  /** The inner service's method; ENOSYS naming the path when it has none (EPERM for the node makers, as link(2) says). */
  private method<K extends keyof FileService>(name: K, path: string): NonNullable<FileService[K]> {
    const fn = this.inner[name];
    if (typeof fn !== 'function') {
      if (name === 'symlink' || name === 'link' || name === 'mknod') throw new FsError('EPERM', path, `a ${String(name)} cannot be made here (only in a data tree such as /memory)`);
      throw new FsError('ENOSYS', path, `${String(name)} is not supported here`);
    }
    return (fn as (...args: unknown[]) => unknown).bind(this.inner) as NonNullable<FileService[K]>;
  }

  async stat(path: string, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    const checked = this.before(INFO.stat, p, cx);
    if (checked) await checked;
    return this.outwardStat(p, await this.forward(p, () => this.inner.stat(this.inward(p), cx)), cx);
  }

  async readdir(path: string, cx: Cx): Promise<DirEntry[]> {
    const p = normalizePath(path);
    const checked = this.before(INFO.readdir, p, cx);
    if (checked) await checked;
    return this.outwardEntries(p, await this.forward(p, () => this.inner.readdir(this.inward(p), cx)), cx);
  }

  async open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    const p = normalizePath(path);
    const checked = this.before({ op: 'open', kind: isWriteOpen(flags) ? 'write' : 'read', flags }, p, cx);
    if (checked) await checked;
    const handle = await this.forward(p, () => this.inner.open(this.inward(p), flags, cx));
    return this.wrapHandle(handle, p);
  }

  /** Handles keep reporting errors as this view names paths. */
  protected wrapHandle(handle: Handle, path: string): Handle {
    if (this.inward(path) === path) return handle;
    return new MappedHandle(handle, (err) => this.outwardError(err, path));
  }

  async mkdir(path: string, mode: number, cx: Cx): Promise<void> {
    const p = normalizePath(path);
    const checked = this.before(INFO.mkdir, p, cx);
    if (checked) await checked;
    return this.forward(p, () => this.method('mkdir', p)(this.inward(p), mode, cx));
  }

  async remove(path: string, cx: Cx, opts?: { dir?: boolean }): Promise<void> {
    const p = normalizePath(path);
    const checked = this.before(INFO.remove, p, cx);
    if (checked) await checked;
    return this.forward(p, () => this.method('remove', p)(this.inward(p), cx, opts));
  }

  async rename(from: string, to: string, cx: Cx): Promise<void> {
    const f = normalizePath(from);
    const t = normalizePath(to);
    const checkedFrom = this.before(INFO.rename, f, cx);
    if (checkedFrom) await checkedFrom;
    const checkedTo = this.before(INFO.renameTo, t, cx);
    if (checkedTo) await checkedTo;
    return this.forward(f, () => this.method('rename', f)(this.inward(f), this.inward(t), cx));
  }

  async truncate(path: string, size: number, cx: Cx): Promise<void> {
    const p = normalizePath(path);
    const checked = this.before(INFO.truncate, p, cx);
    if (checked) await checked;
    return this.forward(p, () => this.method('truncate', p)(this.inward(p), size, cx));
  }

  async setattr(path: string, attrs: SetAttr, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    const checked = this.before(INFO.setattr, p, cx);
    if (checked) await checked;
    return this.outwardStat(p, await this.forward(p, () => this.method('setattr', p)(this.inward(p), attrs, cx)), cx);
  }

  async readFile(path: string, cx: Cx): Promise<Uint8Array> {
    const p = normalizePath(path);
    const checked = this.before(INFO.readFile, p, cx);
    if (checked) await checked;
    return this.forward(p, () => readAll(this.inner, this.inward(p), cx));
  }

  async readStat(path: string, cx: Cx): Promise<StatAndData> {
    const p = normalizePath(path);
    const checked = this.before(INFO.readStat, p, cx);
    if (checked) await checked;
    if (!this.mayRead(p)) return { stat: this.outwardStat(p, await this.forward(p, () => this.inner.stat(this.inward(p), cx)), cx) };
    const r = await this.forward(p, () => readStat(this.inner, this.inward(p), cx));
    const stat = this.outwardStat(p, r.stat, cx);
    if (stat === r.stat) return r;
    return r.data === undefined ? { stat } : { stat, data: r.data };
  }

  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    const checked = this.before(INFO.writeFile, p, cx);
    if (checked) await checked;
    const inner = this.inward(p);
    const st = await this.forward(p, async () => (await writeAll(this.inner, inner, data, cx, opts)) ?? this.inner.stat(inner, cx));
    return this.outwardStat(p, st, cx);
  }

  async symlink(path: string, target: string, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    const checked = this.before(INFO.symlink, p, cx);
    if (checked) await checked;
    return this.outwardStat(p, await this.forward(p, () => this.method('symlink', p)(this.inward(p), target, cx)), cx);
  }

  async readlink(path: string, cx: Cx): Promise<string> {
    const p = normalizePath(path);
    const checked = this.before(INFO.readlink, p, cx);
    if (checked) await checked;
    return this.forward(p, () => this.method('readlink', p)(this.inward(p), cx));
  }

  async link(from: string, to: string, cx: Cx): Promise<Stat> {
    const f = normalizePath(from);
    const t = normalizePath(to);
    const checkedFrom = this.before(INFO.linkFrom, f, cx);
    if (checkedFrom) await checkedFrom;
    const checkedTo = this.before(INFO.link, t, cx);
    if (checkedTo) await checkedTo;
    return this.outwardStat(t, await this.forward(t, () => this.method('link', t)(this.inward(f), this.inward(t), cx)), cx);
  }

  async mknod(path: string, type: 'fifo' | 'socket', mode: number, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    const checked = this.before(INFO.mknod, p, cx);
    if (checked) await checked;
    return this.outwardStat(p, await this.forward(p, () => this.method('mknod', p)(this.inward(p), type, mode, cx)), cx);
  }

  /** Where `path` leads, as this view names it (a service that keeps no links: the path itself). */
  async realpath(path: string, followLast: boolean, cx: Cx): Promise<string> {
    const p = normalizePath(path);
    const checked = this.before(INFO.realpath, p, cx);
    if (checked) await checked;
    const inner = this.inner;
    if (!inner.realpath) return p;
    return this.outward(await this.forward(p, () => inner.realpath!(this.inward(p), followLast, cx)));
  }

  async statfs(path: string, cx: Cx): Promise<FsSpace> {
    const p = normalizePath(path);
    const checked = this.before(INFO.statfs, p, cx);
    if (checked) await checked;
    const inner = this.inner;
    return this.forward(p, () => (inner.statfs ? inner.statfs(this.inward(p), cx) : Promise.resolve(NO_LIMIT)));
  }

  watch(path: string, from: number | undefined, cx: Cx): AsyncIterable<FsEvent> {
    const p = normalizePath(path);
    // Refusals of a read check surface at the call, as a stat's would; an async check (none of the
    // wrappers' list checks is) runs before the first event.
    const check = this.before(INFO.watch, p, cx);
    // Awaited at the first pull; never an unhandled rejection if nobody pulls.
    if (check instanceof Promise) check.catch(() => undefined);
    const inner = this.inner;
    if (!inner.watch) throw new FsError('ENOSYS', p, 'this path cannot be watched');
    const events = async function* (this: ForwardingService): AsyncGenerator<FsEvent> {
      await check;
      try {
        for await (const ev of inner.watch!(this.inward(p), from, cx)) {
          const out = this.outwardEvent(ev);
          if (out) yield out;
        }
      } catch (err) {
        throw this.outwardError(err, p);
      }
    };
    return { [Symbol.asyncIterator]: () => events.call(this) };
  }

  async watchMatcher(path: string, cx: Cx): Promise<Matcher | undefined> {
    const p = normalizePath(path);
    const checked = this.before(INFO.watch, p, cx);
    if (checked) await checked;
    if (!isWatchSource(this.inner)) return undefined;
    const inner = this.inner;
    const m = await this.forward(p, () => inner.watchMatcher(this.inward(p), cx));
    return m && this.outwardMatcher(m);
  }
}
