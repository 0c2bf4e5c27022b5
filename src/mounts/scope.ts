/**
 * Scoping a namespace for one caller, as a token or a mount option asks:
 * - rootAt(service, prefix): the subtree at `prefix` seen as `/` (an agent-scoped token sees
 *   `/agents/<id>` of the global view as its root; FUSE `mount --agent` does the same)
 * - restrict(service, {prefixes, readOnly}): only paths under the prefixes are reachable (EACCES
 *   elsewhere; their ancestors can be listed, showing only the way down); readOnly refuses every write.
 * Both are plain FileServices, so they stack and nest in a Namespace, and watches keep working.
 */
import { FsError } from '../fs/errors.js';
import type { Matcher } from '../fs/events.js';
import { ForwardingService, type OpInfo } from '../fs/forwarding.js';
import { isUnder, joinPath, normalizePath, relativeTo } from '../fs/paths.js';
import { withPlace, type Cx, type DirEntry, type FileService, type FsEvent, type Handle, type OpenFlags, type Stat } from '../fs/types.js';

/** The subtree of `inner` at `prefix`, seen as `/`. */
export class RootedService extends ForwardingService {
  readonly prefix: string;

  constructor(inner: FileService, prefix: string) {
    super(inner, inner.serviceName ?? 'rooted');
    this.prefix = normalizePath(prefix);
  }

  protected override inward(path: string): string {
    return joinPath(this.prefix, path);
  }

  /** A path of the inner service as this view names it (prefix stripped). */
  protected override outward(path: string): string {
    return isUnder(path, this.prefix) ? relativeTo(path, this.prefix) : path;
  }

  protected override before(info: OpInfo, path: string): void {
    if (info.op === 'remove' && path === '/') throw new FsError('EBUSY', '/', 'cannot remove the root');
  }

  /** What a call opened here answers names its files as this view does (the prefix stripped). */
  override open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    return super.open(path, flags, withPlace(cx, (p) => this.outward(p)));
  }

  protected override outwardEvent(ev: FsEvent): FsEvent | undefined {
    // A reset names no file (`/`); everything else lies under the prefix by construction.
    if (ev.type === 'reset') return { ...ev, path: '/' };
    return isUnder(ev.path, this.prefix) ? { ...ev, path: relativeTo(ev.path, this.prefix) } : undefined;
  }

  protected override outwardMatcher(m: Matcher): Matcher {
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

/** `inner` limited to some subtrees and/or to reading. */
export class RestrictedService extends ForwardingService {
  readonly prefixes: readonly string[];
  readonly readOnly: boolean;
  private readonly by: string;

  constructor(inner: FileService, restriction: Restriction) {
    super(inner, inner.serviceName ?? 'restricted');
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

  protected override before(info: OpInfo, path: string): void {
    if (info.kind === 'write' && this.readOnly) throw new FsError('EACCES', path, `read-only ${this.by}`);
    if (this.allowed(path)) return;
    if (info.kind === 'list' && this.leadsDown(path)) return;
    throw new FsError('EACCES', path, `outside the paths this ${this.by} may reach`);
  }

  /** Only a reachable path gives its content; a directory on the way down gives its stat. */
  protected override mayRead(path: string): boolean {
    return this.allowed(path);
  }

  protected override outwardStat(_path: string, stat: Stat): Stat {
    return this.readOnly ? { ...stat, mode: stat.mode & ~0o222 } : stat;
  }

  protected override outwardEntries(path: string, entries: DirEntry[], cx: Cx): DirEntry[] {
    if (!this.allowed(path)) {
      entries = entries.filter((e) => {
        const child = joinPath(path, e.name);
        return this.allowed(child) || this.leadsDown(child);
      });
    }
    return super.outwardEntries(path, entries, cx);
  }

  protected override outwardEvent(ev: FsEvent): FsEvent | undefined {
    return ev.type === 'reset' || this.allowed(ev.path) ? ev : undefined;
  }

  protected override outwardMatcher(m: Matcher): Matcher {
    if (this.prefixes.length === 0) return m;
    return {
      ...m,
      map: (rec) => {
        const mapped = m.map(rec);
        return mapped !== undefined && this.allowed(mapped) ? mapped : undefined;
      },
    };
  }
}

export function restrict(service: FileService, restriction: Restriction): FileService {
  if ((restriction.prefixes ?? []).length === 0 && !restriction.readOnly) return service;
  return new RestrictedService(service, restriction);
}
