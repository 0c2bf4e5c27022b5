/**
 * Access levels (src/fs/access-levels.ts), enforced here at the mount layer and never inside services:
 * a guarded service checks each operation against its level before the service sees it. The levels are
 * re-exported so that one import mounts a service behind one.
 */
import { FsError } from '../fs/errors.js';
import { isUnder } from '../fs/paths.js';
import { ForwardingService, type OpInfo } from '../fs/forwarding.js';
import type { Namespace } from '../fs/namespace.js';
import type { Cx, DirEntry, FileService, Stat } from '../fs/types.js';
import { accessLabel, SIGN_ONLY_FILES, type AccessLevel, type GuardOptions } from '../fs/access-levels.js';

export * from '../fs/access-levels.js';

const DISABLED_ROOT: Stat = { type: 'dir', kind: 'dir', size: 0, mode: 0, mtime: 0, ctime: 0, version: 0 };

/** A service behind an access level: a few hooks on the forwarding base. */
export class GuardedService extends ForwardingService {
  constructor(
    inner: FileService,
    readonly access: AccessLevel,
    private readonly options: GuardOptions = {},
  ) {
    super(inner);
  }

  private adminOnly(path: string, cx: Cx): boolean {
    return !cx.principal.admin && !!this.options.adminWrite?.some((p) => isUnder(path, p));
  }

  private checkRead(path: string): void {
    const { access } = this;
    if (access.level === 'Disabled') throw new FsError('EACCES', path, 'this mount is disabled');
    if (access.level === 'SignOnly' && path !== '/' && !(access.allow ?? SIGN_ONLY_FILES).includes(path)) {
      throw new FsError('EACCES', path, 'only the identity files are reachable here');
    }
  }

  protected override before(info: OpInfo, path: string, cx: Cx): void | Promise<void> {
    this.checkRead(path);
    if (info.kind !== 'write') return;
    const { access } = this;
    if (access.level === 'ReadOnly') throw new FsError('EACCES', path, 'read-only mount');
    if (access.level === 'SignOnly' && info.op !== 'open') throw new FsError('EACCES', path, 'sign-only mount');
    if (this.adminOnly(path, cx)) throw new FsError('EACCES', path, 'only an admin may write this file');
    // The destination of a rename (the source of a link) is checked, not charged: it is one write.
    if (access.level === 'Budgeted' && info.op !== 'rename-to' && info.op !== 'link-from') return access.budget.charge(access.costPerWrite ?? 1, path, cx);
  }

  protected override outwardStat(path: string, stat: Stat, cx: Cx): Stat {
    const { access } = this;
    if (access.level === 'Disabled') return { ...stat, mode: 0 };
    const readOnly = access.level === 'ReadOnly' || this.adminOnly(path, cx);
    return readOnly ? { ...stat, mode: stat.mode & ~0o222 } : stat;
  }

  protected override outwardEntries(path: string, entries: DirEntry[], cx: Cx): DirEntry[] {
    if (this.access.level === 'SignOnly') {
      const allow = this.access.allow ?? SIGN_ONLY_FILES;
      entries = entries.filter((e) => allow.includes(path === '/' ? '/' + e.name : `${path}/${e.name}`));
    }
    return super.outwardEntries(path, entries, cx);
  }

  override async stat(path: string, cx: Cx): Promise<Stat> {
    // The mount point of a disabled mount still shows in listings, as a directory nobody may enter.
    if (path === '/' && this.access.level === 'Disabled') return { ...DISABLED_ROOT, mtime: Date.now(), ctime: Date.now() };
    return super.stat(path, cx);
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
