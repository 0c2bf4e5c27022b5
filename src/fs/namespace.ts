/**
 * A Namespace is a longest-prefix mount table, and itself a FileService, so namespaces nest.
 * Mounts match on segment boundaries (`/goalsX` is not under `/goals`); the root mount `/` matches
 * everything; directories leading to mount points are synthesised; `/mounts` lists the table.
 */
import { FsError, rebaseError } from './errors.js';
import { EventLog, prefixMatcher, unionMatcher, type Matcher } from './events.js';
import { isUnder, joinPath, normalizePath, relativeTo, segmentsOf } from './paths.js';
import { SyntheticFs, view } from './synthetic.js';
import { readAll, writeAll } from './ops.js';
import { MappedHandle } from './handles.js';
import type {
  Cx,
  DirEntry,
  FileService,
  FsEvent,
  FsSpace,
  Handle,
  OpenFlags,
  SetAttr,
  Stat,
  StatAndData,
  WriteFileOptions,
} from './types.js';
import { MODE, NO_LIMIT } from './types.js';

/** A service whose changes are in the event log can say which events a watch of a path sees. */
export interface WatchSource {
  watchMatcher(path: string, cx: Cx): Promise<Matcher | undefined>;
}

export function isWatchSource(s: unknown): s is WatchSource {
  return typeof (s as Partial<WatchSource>)?.watchMatcher === 'function';
}

export interface MountOptions {
  /** Label shown in /mounts (the access level). */
  access?: string;
  /** No events of this mount reach watchers of enclosing paths (Disabled mounts). */
  hidden?: boolean;
}

export interface Mount {
  readonly path: string;
  readonly service: FileService;
  readonly access: string;
  readonly hidden: boolean;
}

export interface NamespaceOptions {
  /** The event scope its services emit into (an agent id, or `server`). */
  scope?: string;
  events?: EventLog;
  name?: string;
}

const BOOT_TIME = Date.now();

function synthDirStat(): Stat {
  return { type: 'dir', kind: 'dir', size: 0, mode: MODE.dir, mtime: BOOT_TIME, ctime: BOOT_TIME, version: 0 };
}

export class Namespace implements FileService, WatchSource {
  private table: Mount[] = [];
  readonly scope: string | undefined;
  readonly events: EventLog | undefined;
  readonly serviceName: string;

  constructor(options: NamespaceOptions = {}) {
    this.scope = options.scope;
    this.events = options.events;
    this.serviceName = options.name ?? 'namespace';
    this.mount('/mounts', new SyntheticFs(view(() => this.mountsText()), 'mounts'), { access: 'ro' });
  }

  mount(path: string, service: FileService, options: MountOptions = {}): this {
    const at = normalizePath(path);
    this.table = this.table.filter((m) => m.path !== at);
    this.table.push({ path: at, service, access: options.access ?? 'rw', hidden: options.hidden ?? false });
    // Longest first; equal lengths keep mount order.
    this.table.sort((a, b) => b.path.length - a.path.length);
    return this;
  }

  unmount(path: string): boolean {
    const at = normalizePath(path);
    const before = this.table.length;
    this.table = this.table.filter((m) => m.path !== at);
    return this.table.length !== before;
  }

  mounts(): readonly Mount[] {
    return [...this.table].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  private mountsText(): string {
    return this.mounts()
      .map((m) => `${m.path} ${m.service.serviceName ?? 'service'} ${m.access}\n`)
      .join('');
  }

  /** The mount that serves `path` and the path within it; undefined when no mount covers it. */
  resolve(path: string): { mount: Mount; rel: string } | undefined {
    for (const mount of this.table) {
      if (isUnder(path, mount.path)) return { mount, rel: relativeTo(path, mount.path) };
    }
    return undefined;
  }

  /** True when a mount point lies strictly below `path`, so `path` is a directory of the namespace. */
  private leadsToMount(path: string): boolean {
    if (path === '/') return true;
    return this.table.some((m) => m.path !== path && isUnder(m.path, path));
  }

  private async run<T>(path: string, op: (service: FileService, rel: string) => Promise<T>): Promise<T> {
    const target = this.resolve(path);
    if (!target) throw new FsError('ENOENT', path, 'no such file or directory');
    try {
      return await op(target.mount.service, target.rel);
    } catch (err) {
      throw rebaseError(err, target.mount.path, target.rel);
    }
  }

  private unsupported(path: string, what: string): never {
    throw new FsError('ENOSYS', path, `${what} is not supported here`);
  }

  /** link(2), symlink(2) and mknod(2) say EPERM where a filesystem makes no such nodes. */
  private noNodes(path: string, what: string): never {
    throw new FsError('EPERM', path, `${what} cannot be made here (only in a data tree such as /memory)`);
  }

  async stat(path: string, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    const target = this.resolve(p);
    if (!target) {
      if (this.leadsToMount(p)) return synthDirStat();
      throw new FsError('ENOENT', p, 'no such file or directory');
    }
    try {
      return await target.mount.service.stat(target.rel, cx);
    } catch (err) {
      if (err instanceof FsError && (err.code === 'ENOENT' || err.code === 'ENOTDIR') && this.leadsToMount(p)) {
        return synthDirStat();
      }
      throw rebaseError(err, target.mount.path, target.rel);
    }
  }

  /** Stat plus content in one step where the serving service can (data files); else the stat alone. */
  async readStat(path: string, cx: Cx): Promise<StatAndData> {
    const p = normalizePath(path);
    const target = this.resolve(p);
    if (!target) {
      if (this.leadsToMount(p)) return { stat: synthDirStat() };
      throw new FsError('ENOENT', p, 'no such file or directory');
    }
    const service = target.mount.service;
    try {
      return service.readStat ? await service.readStat(target.rel, cx) : { stat: await service.stat(target.rel, cx) };
    } catch (err) {
      if (err instanceof FsError && (err.code === 'ENOENT' || err.code === 'ENOTDIR') && this.leadsToMount(p)) {
        return { stat: synthDirStat() };
      }
      throw rebaseError(err, target.mount.path, target.rel);
    }
  }

  async readdir(path: string, cx: Cx): Promise<DirEntry[]> {
    const p = normalizePath(path);
    const synthetic = this.leadsToMount(p);
    const byName = new Map<string, DirEntry>();
    const target = this.resolve(p);
    if (target) {
      try {
        for (const e of await target.mount.service.readdir(target.rel, cx)) byName.set(e.name, e);
      } catch (err) {
        const missing = err instanceof FsError && (err.code === 'ENOENT' || err.code === 'ENOTDIR');
        if (!(missing && synthetic)) throw rebaseError(err, target.mount.path, target.rel);
      }
    } else if (!synthetic) {
      throw new FsError('ENOENT', p, 'no such file or directory');
    }
    // Mount points below this directory shadow what the covering service has under the same name.
    for (const m of this.table) {
      if (m.path === p || !isUnder(m.path, p)) continue;
      const name = segmentsOf(relativeTo(m.path, p))[0]!;
      const isMountPoint = joinPath(p, name) === m.path;
      if (!isMountPoint && byName.get(name)?.stat.type === 'dir') continue;
      let stat = synthDirStat();
      if (isMountPoint) stat = await m.service.stat('/', cx).catch(() => synthDirStat());
      byName.set(name, { name, stat });
    }
    return [...byName.values()];
  }

  async open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    const p = normalizePath(path);
    const target = this.resolve(p);
    if (!target && this.leadsToMount(p)) throw new FsError('EISDIR', p, 'is a directory');
    return this.run(p, async (service, rel) => {
      const handle = await service.open(rel, flags, cx);
      const mountPath = this.resolve(p)!.mount.path;
      return mountPath === '/' ? handle : rebasedHandle(handle, mountPath, rel);
    });
  }

  async mkdir(path: string, mode: number, cx: Cx): Promise<void> {
    const p = normalizePath(path);
    if (this.table.some((m) => m.path === p) || (this.leadsToMount(p) && !this.resolve(p))) {
      throw new FsError('EEXIST', p, 'file exists');
    }
    return this.run(p, (s, rel) => (s.mkdir ? s.mkdir(rel, mode, cx) : this.unsupported(rel, 'mkdir')));
  }

  async remove(path: string, cx: Cx, opts?: { dir?: boolean }): Promise<void> {
    const p = normalizePath(path);
    if (this.table.some((m) => m.path === p) || p === '/') throw new FsError('EBUSY', p, 'is a mount point');
    return this.run(p, (s, rel) => (s.remove ? s.remove(rel, cx, opts) : this.unsupported(rel, 'remove')));
  }

  async rename(from: string, to: string, cx: Cx): Promise<void> {
    const a = normalizePath(from);
    const b = normalizePath(to);
    const src = this.resolve(a);
    const dst = this.resolve(b);
    if (!src) throw new FsError('ENOENT', a, 'no such file or directory');
    if (this.table.some((m) => m.path === a)) throw new FsError('EBUSY', a, 'is a mount point');
    if (!dst || dst.mount !== src.mount) throw new FsError('EXDEV', a, `cannot rename across mounts to ${b}`);
    return this.run(a, (s, rel) => (s.rename ? s.rename(rel, dst.rel, cx) : this.unsupported(rel, 'rename')));
  }

  async truncate(path: string, size: number, cx: Cx): Promise<void> {
    const p = normalizePath(path);
    return this.run(p, (s, rel) => (s.truncate ? s.truncate(rel, size, cx) : this.unsupported(rel, 'truncate')));
  }

  async setattr(path: string, attrs: SetAttr, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    return this.run(p, (s, rel) => (s.setattr ? s.setattr(rel, attrs, cx) : this.unsupported(rel, 'setattr')));
  }

  /** A new name (symlink, mknod, link) may not be a mount point or a directory leading to one. */
  private checkNewName(p: string): void {
    if (this.table.some((m) => m.path === p) || (this.leadsToMount(p) && !this.resolve(p))) throw new FsError('EEXIST', p, 'file exists');
  }

  async symlink(path: string, target: string, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    this.checkNewName(p);
    return this.run(p, (s, rel) => (s.symlink ? s.symlink(rel, target, cx) : this.noNodes(rel, 'a symbolic link')));
  }

  async readlink(path: string, cx: Cx): Promise<string> {
    const p = normalizePath(path);
    if (!this.resolve(p) && this.leadsToMount(p)) throw new FsError('EINVAL', p, 'not a symbolic link');
    return this.run(p, (s, rel) => (s.readlink ? s.readlink(rel, cx) : Promise.reject(new FsError('EINVAL', rel, 'not a symbolic link'))));
  }

  async link(from: string, to: string, cx: Cx): Promise<Stat> {
    const a = normalizePath(from);
    const b = normalizePath(to);
    const src = this.resolve(a);
    const dst = this.resolve(b);
    if (!src) throw new FsError('ENOENT', a, 'no such file or directory');
    if (this.table.some((m) => m.path === a)) throw new FsError('EPERM', a, 'a mount point cannot have another name');
    this.checkNewName(b);
    if (!dst || dst.mount !== src.mount) throw new FsError('EXDEV', b, `cannot link across mounts to ${a}`);
    return this.run(b, (s, rel) => (s.link ? s.link(src.rel, rel, cx) : this.noNodes(rel, 'a hard link')));
  }

  async mknod(path: string, type: 'fifo' | 'socket', mode: number, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    this.checkNewName(p);
    return this.run(p, (s, rel) => (s.mknod ? s.mknod(rel, type, mode, cx) : this.noNodes(rel, `a ${type === 'fifo' ? 'FIFO' : 'socket'}`)));
  }

  /** Where `path` leads once the links of the mount serving it are followed (they never leave it). */
  async realpath(path: string, followLast: boolean, cx: Cx): Promise<string> {
    const p = normalizePath(path);
    const target = this.resolve(p);
    if (!target?.mount.service.realpath) return p;
    const rel = await this.run(p, (s, r) => s.realpath!(r, followLast, cx));
    return target.mount.path === '/' ? rel : joinPath(target.mount.path, rel);
  }

  /** The space of the mount holding `path`; directories of the namespace itself have no limit. */
  async statfs(path: string, cx: Cx): Promise<FsSpace> {
    const p = normalizePath(path);
    if (!this.resolve(p)) {
      if (this.leadsToMount(p)) return NO_LIMIT;
      throw new FsError('ENOENT', p, 'no such file or directory');
    }
    return this.run(p, (s, rel) => (s.statfs ? s.statfs(rel, cx) : Promise.resolve(NO_LIMIT)));
  }

  /** Whole-file read: one step when the service offers it, else open/read/close. */
  async readFile(path: string, cx: Cx): Promise<Uint8Array> {
    const p = normalizePath(path);
    const target = this.resolve(p);
    if (!target && this.leadsToMount(p)) throw new FsError('EISDIR', p, 'is a directory');
    return this.run(p, (s, rel) => readAll(s, rel, cx));
  }

  /** Whole-file write: one step when the service offers it, else open/write/close. */
  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat> {
    const p = normalizePath(path);
    return this.run(p, async (s, rel) => {
      const st = await writeAll(s, rel, data, cx, opts);
      return st ?? s.stat(rel, cx);
    });
  }

  async watchMatcher(path: string, cx: Cx): Promise<Matcher | undefined> {
    const p = normalizePath(path);
    const parts: Matcher[] = [];
    const target = this.resolve(p);
    let inner: Matcher | undefined;
    if (target && isWatchSource(target.mount.service)) {
      try {
        inner = await target.mount.service.watchMatcher(target.rel, cx);
      } catch (err) {
        throw rebaseError(err, target.mount.path, target.rel);
      }
    }
    if (inner) {
      parts.push(prefixMatcher(inner, target!.mount.path));
    } else if (this.scope !== undefined && !target?.mount.hidden) {
      // Services of this namespace record their events in its scope under their mount paths.
      const scope = this.scope;
      parts.push({
        scopes: [scope],
        map: (rec) => (rec.scope === scope && isUnder(rec.path, p) && !this.isHidden(rec.path) ? rec.path : undefined),
      });
    }
    for (const m of this.table) {
      if (m.path === p || m === target?.mount || m.hidden || !isUnder(m.path, p) || !isWatchSource(m.service)) continue;
      const nested = await m.service.watchMatcher('/', cx).catch(() => undefined);
      if (nested) parts.push(prefixMatcher(nested, m.path));
    }
    return unionMatcher(parts);
  }

  private isHidden(path: string): boolean {
    return this.resolve(path)?.mount.hidden ?? false;
  }

  /**
   * Watches a file or a subtree: stored events after `from`, then live ones (without `from`: live from
   * this call on). Watching a stream file ends with its `end` event. A path that does not exist yet can
   * be watched (to see it created).
   */
  watch(path: string, from: number | undefined, cx: Cx): AsyncIterable<FsEvent> {
    const p = normalizePath(path);
    const given = from !== undefined;
    // Live-only watches start now, not when the caller first pulls: take the cursor at once.
    if (from === undefined && this.events) from = this.events.store.lastId();
    return {
      [Symbol.asyncIterator]: () => this.startWatch(p, from, given, cx)[Symbol.asyncIterator](),
    };
  }

  private async *startWatch(p: string, from: number | undefined, given: boolean, cx: Cx): AsyncGenerator<FsEvent> {
    // Probe access and kind the way a reader would: EACCES and friends surface here, ENOENT does not.
    const stat = await this.stat(p, cx).catch((err: unknown) => {
      if (err instanceof FsError && err.code === 'ENOENT') return undefined;
      throw err;
    });
    const matcher = await this.watchMatcher(p, cx);
    if (matcher && this.events) {
      if (stat?.kind !== 'stream') {
        yield* this.events.subscribe(matcher, from, cx.signal);
        return;
      }
      matcher.endsAt = p;
      // A finite stream (a job's) is watched from its beginning unless the caller says where.
      if (stat.finite && !given) from = stat.finite.after;
      if (!stat.finite?.ended) {
        yield* this.events.subscribe(matcher, from, cx.signal);
        return;
      }
      // One that ended is its stored events, then the end, at once.
      let ended = false;
      for await (const ev of this.events.subscribe(matcher, from, cx.signal, { replayOnly: true })) {
        if (ev.type === 'end' && ev.path === p) ended = true;
        yield ev;
      }
      // Its end was already seen (a cursor past it) or dropped by retention (a `reset` came first).
      if (!ended && !cx.signal?.aborted) yield { id: this.events.store.lastId(), type: 'end', path: p, time: Date.now(), data: { reason: 'the stream has ended' } };
      return;
    }
    const target = this.resolve(p);
    if (target?.mount.service.watch) {
      const prefix = target.mount.path;
      for await (const ev of target.mount.service.watch(target.rel, from, cx)) {
        yield { ...ev, path: prefix === '/' ? ev.path : joinPath(prefix, ev.path) };
      }
      return;
    }
    throw new FsError('ENOSYS', p, 'this path cannot be watched');
  }
}

/** A handle opened through a mount, whose errors are rebased so that messages name the full path. */
export function rebasedHandle(inner: Handle, mountPath: string, rel: string): Handle {
  return new MappedHandle(inner, (err) => rebaseError(err, mountPath, rel));
}
