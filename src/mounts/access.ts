/**
 * Access levels, enforced here at the mount layer and never inside services. A guarded service checks
 * each operation against its level before the service sees it:
 * - ReadOnly: reads, lists, stats and watches; every write is EACCES
 * - ReadWrite: everything
 * - SignOnly: only the identity files (pubkey, npub, sign, verify, encrypt, decrypt)
 * - Budgeted: everything, but every write charges a budget first (EDQUOT when over)
 * - Disabled: everything is EACCES
 * Admin-only paths (policies) can be written only by an admin principal, whatever the level.
 */
import { FsError } from '../fs/errors.js';
import { isUnder } from '../fs/paths.js';
import { readAll, writeAll } from '../fs/ops.js';
import type { Matcher } from '../fs/events.js';
import { isWatchSource, type Namespace, type WatchSource } from '../fs/namespace.js';
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

/** Charges writes to a budget; throws FsError EDQUOT when the budget cannot pay. */
export interface BudgetHook {
  charge(amountMicroUsd: number, path: string, cx: Cx): void | Promise<void>;
}

export type AccessLevel =
  | { level: 'ReadOnly' }
  | { level: 'ReadWrite' }
  | { level: 'SignOnly'; allow?: readonly string[] }
  | { level: 'Budgeted'; budget: BudgetHook; costPerWrite?: number }
  | { level: 'Disabled' };

export const ReadOnly: AccessLevel = { level: 'ReadOnly' };
export const ReadWrite: AccessLevel = { level: 'ReadWrite' };
export const SignOnly: AccessLevel = { level: 'SignOnly' };
export const Disabled: AccessLevel = { level: 'Disabled' };
export const Budgeted = (budget: BudgetHook, costPerWrite = 1): AccessLevel => ({ level: 'Budgeted', budget, costPerWrite });

const DISABLED_ROOT: Stat = { type: 'dir', kind: 'dir', size: 0, mode: 0, mtime: 0, ctime: 0, version: 0 };

export const SIGN_ONLY_FILES = ['/pubkey', '/npub', '/sign', '/verify', '/encrypt', '/decrypt'] as const;

export interface GuardOptions {
  /** Paths (relative to the mount) that only an admin may write. */
  adminWrite?: readonly string[];
}

type WriteOp = 'open' | 'mkdir' | 'remove' | 'rename' | 'truncate' | 'setattr' | 'write';

function isWriteOpen(flags: OpenFlags): boolean {
  return !!(flags.write || flags.create || flags.truncate || flags.append);
}

export function accessLabel(access: AccessLevel): string {
  switch (access.level) {
    case 'ReadOnly':
      return 'ro';
    case 'ReadWrite':
      return 'rw';
    case 'SignOnly':
      return 'sign-only';
    case 'Budgeted':
      return 'budgeted';
    case 'Disabled':
      return 'disabled';
  }
}

/** A service behind an access level. */
export class GuardedService implements FileService, WatchSource {
  readonly serviceName: string;
  watch?: (path: string, from: number | undefined, cx: Cx) => AsyncIterable<FsEvent>;

  constructor(
    private readonly inner: FileService,
    readonly access: AccessLevel,
    private readonly options: GuardOptions = {},
  ) {
    this.serviceName = inner.serviceName ?? 'service';
    if (inner.watch) {
      const innerWatch = inner.watch.bind(inner);
      this.watch = (path, from, cx) => {
        this.checkRead(path);
        return innerWatch(path, from, cx);
      };
    }
  }

  private checkRead(path: string): void {
    const { access } = this;
    if (access.level === 'Disabled') throw new FsError('EACCES', path, 'this mount is disabled');
    if (access.level === 'SignOnly' && path !== '/' && !(access.allow ?? SIGN_ONLY_FILES).includes(path)) {
      throw new FsError('EACCES', path, 'only the identity files are reachable here');
    }
  }

  private async checkWrite(path: string, cx: Cx, op: WriteOp): Promise<void> {
    this.checkRead(path);
    const { access } = this;
    if (access.level === 'ReadOnly') throw new FsError('EACCES', path, 'read-only mount');
    if (access.level === 'SignOnly' && op !== 'open') throw new FsError('EACCES', path, 'sign-only mount');
    if (!cx.principal.admin && this.options.adminWrite?.some((p) => isUnder(path, p))) {
      throw new FsError('EACCES', path, 'only an admin may write this file');
    }
    if (access.level === 'Budgeted') await access.budget.charge(access.costPerWrite ?? 1, path, cx);
  }

  private mask(path: string, stat: Stat, cx: Cx): Stat {
    const { access } = this;
    const readOnly =
      access.level === 'ReadOnly' ||
      access.level === 'Disabled' ||
      (!cx.principal.admin && !!this.options.adminWrite?.some((p) => isUnder(path, p)));
    if (access.level === 'Disabled') return { ...stat, mode: 0 };
    return readOnly ? { ...stat, mode: stat.mode & ~0o222 } : stat;
  }

  async stat(path: string, cx: Cx): Promise<Stat> {
    // The mount point of a disabled mount still shows in listings, as a directory nobody may enter.
    if (path === '/' && this.access.level === 'Disabled') return { ...DISABLED_ROOT, mtime: Date.now(), ctime: Date.now() };
    this.checkRead(path);
    return this.mask(path, await this.inner.stat(path, cx), cx);
  }

  async readdir(path: string, cx: Cx): Promise<DirEntry[]> {
    this.checkRead(path);
    let entries = await this.inner.readdir(path, cx);
    if (this.access.level === 'SignOnly') {
      const allow = this.access.allow ?? SIGN_ONLY_FILES;
      entries = entries.filter((e) => allow.includes(path === '/' ? '/' + e.name : `${path}/${e.name}`));
    }
    const base = path === '/' ? '' : path;
    return entries.map((e) => ({ name: e.name, stat: this.mask(`${base}/${e.name}`, e.stat, cx) }));
  }

  async open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    if (isWriteOpen(flags)) await this.checkWrite(path, cx, 'open');
    else this.checkRead(path);
    return this.inner.open(path, flags, cx);
  }

  async readFile(path: string, cx: Cx): Promise<Uint8Array> {
    this.checkRead(path);
    return readAll(this.inner, path, cx);
  }

  async readStat(path: string, cx: Cx): Promise<StatAndData> {
    this.checkRead(path);
    if (!this.inner.readStat) return { stat: this.mask(path, await this.inner.stat(path, cx), cx) };
    const r = await this.inner.readStat(path, cx);
    const stat = this.mask(path, r.stat, cx);
    if (stat === r.stat) return r;
    return r.data === undefined ? { stat } : { stat, data: r.data };
  }

  private need<K extends keyof FileService>(name: K, path: string): NonNullable<FileService[K]> {
    const fn = this.inner[name];
    if (typeof fn !== 'function') throw new FsError('ENOSYS', path, `${name} is not supported here`);
    return (fn as (...args: unknown[]) => unknown).bind(this.inner) as NonNullable<FileService[K]>;
  }

  async mkdir(path: string, mode: number, cx: Cx): Promise<void> {
    await this.checkWrite(path, cx, 'mkdir');
    return this.need('mkdir', path)(path, mode, cx);
  }

  async remove(path: string, cx: Cx, opts?: { dir?: boolean }): Promise<void> {
    await this.checkWrite(path, cx, 'remove');
    return this.need('remove', path)(path, cx, opts);
  }

  async rename(from: string, to: string, cx: Cx): Promise<void> {
    await this.checkWrite(from, cx, 'rename');
    this.checkRead(to);
    if (!cx.principal.admin && this.options.adminWrite?.some((p) => isUnder(to, p))) {
      throw new FsError('EACCES', to, 'only an admin may write this file');
    }
    return this.need('rename', from)(from, to, cx);
  }

  async truncate(path: string, size: number, cx: Cx): Promise<void> {
    await this.checkWrite(path, cx, 'truncate');
    return this.need('truncate', path)(path, size, cx);
  }

  async setattr(path: string, attrs: SetAttr, cx: Cx): Promise<Stat> {
    await this.checkWrite(path, cx, 'setattr');
    return this.need('setattr', path)(path, attrs, cx);
  }

  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat> {
    await this.checkWrite(path, cx, 'write');
    return (await writeAll(this.inner, path, data, cx, opts)) ?? this.inner.stat(path, cx);
  }

  async watchMatcher(path: string, cx: Cx): Promise<Matcher | undefined> {
    this.checkRead(path);
    return isWatchSource(this.inner) ? this.inner.watchMatcher(path, cx) : undefined;
  }
}

/** Mounts `service` at `path` behind an access level. */
export function mountWithAccess(
  ns: Namespace,
  path: string,
  service: FileService,
  access: AccessLevel,
  options: GuardOptions = {},
): Namespace {
  const guarded = new GuardedService(service, access, options);
  return ns.mount(path, guarded, { access: accessLabel(access), hidden: access.level === 'Disabled' });
}
