/**
 * Scoping a namespace for one caller, as a token or a mount option asks:
 * - rootAt(service, prefix): the subtree at `prefix` seen as `/` (an agent-scoped token sees
 *   `/agents/<id>` of the global view as its root; FUSE `mount --agent` does the same)
 * - restrict(service, {prefixes, readOnly}): only paths under the prefixes are reachable (EACCES
 *   elsewhere; their ancestors can be listed, showing only the way down); readOnly refuses every write.
 * Both are plain FileServices, so they stack and nest in a Namespace, and watches keep working.
 */
import { FsError, toFsError } from '../fs/errors.js';
import type { Matcher } from '../fs/events.js';
import { isWatchSource, type WatchSource } from '../fs/namespace.js';
import { MappedHandle } from '../fs/handles.js';
import { readAll, readStat, writeAll } from '../fs/ops.js';
import { isUnder, joinPath, normalizePath, relativeTo } from '../fs/paths.js';
import type {
  Cx,
  DirEntry,
  FileService,
  FsEvent,
  Handle,
  OpenFlags,
  SetAttr,
  Stat,
  StatAndData,
  WriteFileOptions,
} from '../fs/types.js';

function optional<K extends keyof FileService>(service: FileService, name: K, path: string): NonNullable<FileService[K]> {
  const fn = service[name];
  if (typeof fn !== 'function') throw new FsError('ENOSYS', path, `${String(name)} is not supported here`);
  return (fn as (...args: unknown[]) => unknown).bind(service) as NonNullable<FileService[K]>;
}

/** The subtree of `inner` at `prefix`, seen as `/`. */
export class RootedService implements FileService, WatchSource {
  readonly serviceName: string;

  constructor(
    private readonly inner: FileService,
    readonly prefix: string,
  ) {
    this.prefix = normalizePath(prefix);
    this.serviceName = inner.serviceName ?? 'rooted';
  }

  private abs(path: string): string {
    return joinPath(this.prefix, normalizePath(path));
  }

  /** A path of the inner service as this view names it (prefix stripped). */
  private local(path: string): string {
    return isUnder(path, this.prefix) ? relativeTo(path, this.prefix) : path;
  }

  private mapError = (err: unknown): FsError => {
    const e = toFsError(err, this.prefix);
    if (!e.path.startsWith('/') || !isUnder(e.path, this.prefix)) return e;
    const opts = e.retryAfterMs === undefined ? { cause: e } : { cause: e, retryAfterMs: e.retryAfterMs };
    return new FsError(e.code, this.local(e.path), e.detail, opts);
  };

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.mapError(err);
    }
  }

  stat(path: string, cx: Cx): Promise<Stat> {
    return this.run(() => this.inner.stat(this.abs(path), cx));
  }
  readdir(path: string, cx: Cx): Promise<DirEntry[]> {
    return this.run(() => this.inner.readdir(this.abs(path), cx));
  }
  open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    return this.run(async () => new MappedHandle(await this.inner.open(this.abs(path), flags, cx), this.mapError));
  }
  mkdir(path: string, mode: number, cx: Cx): Promise<void> {
    return this.run(() => optional(this.inner, 'mkdir', path)(this.abs(path), mode, cx));
  }
  remove(path: string, cx: Cx, opts?: { dir?: boolean }): Promise<void> {
    if (normalizePath(path) === '/') return Promise.reject(new FsError('EBUSY', '/', 'cannot remove the root'));
    return this.run(() => optional(this.inner, 'remove', path)(this.abs(path), cx, opts));
  }
  rename(from: string, to: string, cx: Cx): Promise<void> {
    return this.run(() => optional(this.inner, 'rename', from)(this.abs(from), this.abs(to), cx));
  }
  truncate(path: string, size: number, cx: Cx): Promise<void> {
    return this.run(() => optional(this.inner, 'truncate', path)(this.abs(path), size, cx));
  }
  setattr(path: string, attrs: SetAttr, cx: Cx): Promise<Stat> {
    return this.run(() => optional(this.inner, 'setattr', path)(this.abs(path), attrs, cx));
  }
  readFile(path: string, cx: Cx): Promise<Uint8Array> {
    return this.run(() => readAll(this.inner, this.abs(path), cx));
  }
  readStat(path: string, cx: Cx): Promise<StatAndData> {
    return this.run(() => readStat(this.inner, this.abs(path), cx));
  }
  writeFile(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat> {
    return this.run(async () => {
      const abs = this.abs(path);
      return (await writeAll(this.inner, abs, data, cx, opts)) ?? this.inner.stat(abs, cx);
    });
  }

  watch(path: string, from: number | undefined, cx: Cx): AsyncIterable<FsEvent> {
    const inner = this.inner;
    const abs = this.abs(path);
    if (!inner.watch) throw new FsError('ENOSYS', path, 'this path cannot be watched');
    const events = inner.watch(abs, from, cx);
    const { prefix, mapError } = this;
    const local = (p: string) => this.local(p);
    return {
      async *[Symbol.asyncIterator]() {
        try {
          for await (const ev of events) {
            // A reset names no file (`/`); everything else lies under the prefix by construction.
            if (ev.type === 'reset') yield { ...ev, path: '/' };
            else if (isUnder(ev.path, prefix)) yield { ...ev, path: local(ev.path) };
          }
        } catch (err) {
          throw mapError(err);
        }
      },
    };
  }

  async watchMatcher(path: string, cx: Cx): Promise<Matcher | undefined> {
    if (!isWatchSource(this.inner)) return undefined;
    const m = await this.run(() => (this.inner as unknown as WatchSource).watchMatcher(this.abs(path), cx));
    if (!m) return undefined;
    const { prefix } = this;
    const out: Matcher = {
      scopes: m.scopes,
      map: (rec) => {
        const p = m.map(rec);
        return p !== undefined && isUnder(p, prefix) ? relativeTo(p, prefix) : undefined;
      },
    };
    if (m.endsAt !== undefined && isUnder(m.endsAt, prefix)) out.endsAt = relativeTo(m.endsAt, prefix);
    return out;
  }
}

export function rootAt(service: FileService, prefix: string): FileService {
  const p = normalizePath(prefix);
  return p === '/' ? service : new RootedService(service, p);
}

export interface Restriction {
  /** Reachable subtrees; empty or absent means everything. */
  prefixes?: readonly string[];
  /** Refuse every write (open for writing, mkdir, remove, rename, truncate, setattr). */
  readOnly?: boolean;
  /** Who imposed the restriction, for error messages ("token", "mount"). */
  by?: string;
}

function isWriteOpen(flags: OpenFlags): boolean {
  return !!(flags.write || flags.create || flags.truncate || flags.append);
}

/** `inner` limited to some subtrees and/or to reading. */
export class RestrictedService implements FileService, WatchSource {
  readonly serviceName: string;
  readonly prefixes: readonly string[];
  readonly readOnly: boolean;
  private readonly by: string;

  constructor(
    private readonly inner: FileService,
    restriction: Restriction,
  ) {
    this.serviceName = inner.serviceName ?? 'restricted';
    this.prefixes = (restriction.prefixes ?? []).map((p) => normalizePath(p));
    this.readOnly = !!restriction.readOnly;
    this.by = restriction.by ?? 'scope';
  }

  private allowed(path: string): boolean {
    return this.prefixes.length === 0 || this.prefixes.some((pre) => isUnder(path, pre));
  }

  /** A directory on the way down to a reachable subtree. */
  private leadsDown(path: string): boolean {
    return this.prefixes.some((pre) => isUnder(pre, path));
  }

  private need(path: string, mode: 'read' | 'list' | 'write'): string {
    const p = normalizePath(path);
    if (mode === 'write' && this.readOnly) throw new FsError('EACCES', p, `read-only ${this.by}`);
    if (this.allowed(p)) return p;
    if (mode === 'list' && this.leadsDown(p)) return p;
    throw new FsError('EACCES', p, `outside the paths this ${this.by} may reach`);
  }

  private mask(stat: Stat): Stat {
    return this.readOnly ? { ...stat, mode: stat.mode & ~0o222 } : stat;
  }

  async stat(path: string, cx: Cx): Promise<Stat> {
    return this.mask(await this.inner.stat(this.need(path, 'list'), cx));
  }

  async readdir(path: string, cx: Cx): Promise<DirEntry[]> {
    const p = this.need(path, 'list');
    let entries = await this.inner.readdir(p, cx);
    if (!this.allowed(p)) {
      entries = entries.filter((e) => {
        const child = joinPath(p, e.name);
        return this.allowed(child) || this.leadsDown(child);
      });
    }
    return entries.map((e) => ({ name: e.name, stat: this.mask(e.stat) }));
  }

  open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    const p = this.need(path, isWriteOpen(flags) ? 'write' : 'read');
    return this.inner.open(p, flags, cx);
  }
  async mkdir(path: string, mode: number, cx: Cx): Promise<void> {
    return optional(this.inner, 'mkdir', path)(this.need(path, 'write'), mode, cx);
  }
  async remove(path: string, cx: Cx, opts?: { dir?: boolean }): Promise<void> {
    return optional(this.inner, 'remove', path)(this.need(path, 'write'), cx, opts);
  }
  async rename(from: string, to: string, cx: Cx): Promise<void> {
    return optional(this.inner, 'rename', from)(this.need(from, 'write'), this.need(to, 'write'), cx);
  }
  async truncate(path: string, size: number, cx: Cx): Promise<void> {
    return optional(this.inner, 'truncate', path)(this.need(path, 'write'), size, cx);
  }
  async setattr(path: string, attrs: SetAttr, cx: Cx): Promise<Stat> {
    return optional(this.inner, 'setattr', path)(this.need(path, 'write'), attrs, cx);
  }
  async readFile(path: string, cx: Cx): Promise<Uint8Array> {
    return readAll(this.inner, this.need(path, 'read'), cx);
  }
  async readStat(path: string, cx: Cx): Promise<StatAndData> {
    const p = this.need(path, 'list');
    // Only a readable path gives its content; a directory on the way down gives its stat.
    if (!this.allowed(p)) return { stat: this.mask(await this.inner.stat(p, cx)) };
    const r = await readStat(this.inner, p, cx);
    const stat = this.mask(r.stat);
    return r.data === undefined ? { stat } : { stat, data: r.data };
  }
  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat> {
    const p = this.need(path, 'write');
    return (await writeAll(this.inner, p, data, cx, opts)) ?? this.inner.stat(p, cx);
  }

  watch(path: string, from: number | undefined, cx: Cx): AsyncIterable<FsEvent> {
    const p = this.need(path, 'list');
    if (!this.inner.watch) throw new FsError('ENOSYS', p, 'this path cannot be watched');
    const events = this.inner.watch(p, from, cx);
    if (this.allowed(p)) return events;
    const allowed = (q: string) => this.allowed(q);
    return {
      async *[Symbol.asyncIterator]() {
        for await (const ev of events) if (ev.type === 'reset' || allowed(ev.path)) yield ev;
      },
    };
  }

  async watchMatcher(path: string, cx: Cx): Promise<Matcher | undefined> {
    const p = this.need(path, 'list');
    if (!isWatchSource(this.inner)) return undefined;
    const m = await this.inner.watchMatcher(p, cx);
    if (!m || this.allowed(p)) return m;
    return { ...m, map: (rec) => {
      const mapped = m.map(rec);
      return mapped !== undefined && this.allowed(mapped) ? mapped : undefined;
    } };
  }
}

export function restrict(service: FileService, restriction: Restriction): FileService {
  if ((restriction.prefixes ?? []).length === 0 && !restriction.readOnly) return service;
  return new RestrictedService(service, restriction);
}
