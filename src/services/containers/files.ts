/**
 * sessions/<sid>/files/<path>: the session's workdir as a real directory tree (list, stat, read, write,
 * append, truncate, mkdir, rm, rename, chmod/chown/utimes), with the permissions of the session's user;
 * no path, symlinks included, can leave the workdir (EINVAL). A handle reads the whole file at its first
 * read and writes it back at flush, like a network file system with close-to-open consistency.
 *
 * Every operation acts from the host on the container's workdir (workdir/pin.ts: opened through
 * /proc/<pid>/root of the container's init), walking each path one name at a time with O_NOFOLLOW and
 * acting on the descriptors the walk holds (workdir/walk.ts, ops.ts). Why this way:
 * - A check that runs before the use, apart from it (the shell script run inside the container that
 *   this replaces: `readlink -f`, then `cat`), loses to a command swapping a directory for a link in
 *   between: 2 of 300 racing reads returned the container's /etc/passwd, and listings showed /etc.
 *   Any image must do, and busybox offers nothing but /bin/sh to do better with inside.
 * - A native helper run inside (openat2 with RESOLVE_BENEATH) would have to get there: the root is
 *   read-only, `docker cp` cannot write into a tmpfs, and a mount from the host is what sessions must
 *   not have. It would still cost a `docker exec` per operation.
 * - From the host the walk is race-free and needs no process: an operation takes about 1 ms where the
 *   exec took about 150 ms (measured on the development machine). The host side is root, so the user's
 *   permissions are applied here (workdir/user-permissions.ts, from the init's credentials).
 * An engine on another machine has no /proc here: files/ is ENOSYS there.
 */
import { EMPTY } from '../../fs/bytes.js';
import { FsError } from '../../fs/errors.js';
import { sliceAt } from '../../fs/handles.js';
import type { DirEntry, Handle, OpenFlags, SetAttr, Stat, WriteFileOptions } from '../../fs/types.js';
import type { ContainerEngine } from './engine.js';
import type { ContainerProvider } from './providers/types.js';
import { WorkdirOps } from './workdir/file-ops.js';
import { ContainerProcs, type PinnedWorkdir } from './workdir/pin.js';

/** A stat cached from a listing is reused for this long (the `ls -l` pattern: readdir, then stat each). */
const STAT_CACHE_MS = 1000;

export interface FileTarget {
  agentId: string;
  sid: string;
  /** Relative to the workdir, no leading slash; '' is the workdir itself. */
  rel: string;
  /** The path as the caller named it (for errors). */
  path: string;
}

export class SessionFiles {
  private readonly stats = new Map<string, Map<string, { stat: Stat; at: number }>>();
  private readonly procs = new ContainerProcs();

  constructor(private readonly engine: ContainerEngine) {
    engine.onExecActivity((sid) => this.forget(sid));
  }

  forget(sid: string): void {
    this.stats.delete(sid);
  }

  private cached(t: FileTarget): Stat | undefined {
    const hit = this.stats.get(t.sid)?.get(t.rel);
    if (hit && Date.now() - hit.at < STAT_CACHE_MS) return hit.stat;
    return undefined;
  }

  private remember(sid: string, rel: string, stat: Stat): Stat {
    let m = this.stats.get(sid);
    if (!m) this.stats.set(sid, (m = new Map()));
    m.set(rel, { stat, at: Date.now() });
    return stat;
  }

  /** Runs one operation on the session's workdir, opened from the host for it and closed after. */
  private async withWorkdir<T>(t: FileTarget, op: (ops: WorkdirOps) => Promise<T>): Promise<T> {
    const { containerId, provider, record } = await this.engine.containerOf(t.agentId, t.sid, t.path);
    const pinned = await this.pin(t, containerId, provider, record.request.workdir);
    try {
      return await op(new WorkdirOps(pinned.jail, record.request.limits.disk_mb));
    } finally {
      pinned.close();
    }
  }

  private async pin(t: FileTarget, containerId: string, provider: ContainerProvider, workdir: string): Promise<PinnedWorkdir> {
    const elsewhere = () =>
      new FsError('ENOSYS', t.path, `files/ needs the container engine on this machine; ${provider.info().endpoint} runs the containers elsewhere`);
    if (!provider.initPid) throw elsewhere();
    const notRunning = () => new FsError('ENOENT', t.path, `the container of session ${t.sid} is not running: its files went with it`);
    let pinned = this.procs.pin(containerId, workdir, t.path);
    if (pinned === 'unknown' || pinned === 'gone') {
      const pid = await provider.initPid(containerId);
      if (pid === undefined) throw notRunning();
      pinned = this.procs.pin(containerId, workdir, t.path, pid);
    }
    // Gone right after the engine named it: it ended meanwhile, or it is a process of another machine.
    if (pinned === 'gone' && (await provider.initPid(containerId)) === undefined) throw notRunning();
    if (typeof pinned === 'string') throw elsewhere();
    return pinned;
  }

  private maxBytes(t: FileTarget): number {
    return this.engine.policy(t.agentId).max_file_bytes;
  }

  async stat(t: FileTarget): Promise<Stat> {
    const hit = this.cached(t);
    if (hit) return hit;
    return this.remember(t.sid, t.rel, await this.withWorkdir(t, (w) => w.stat(t.rel, t.path)));
  }

  async readdir(t: FileTarget): Promise<DirEntry[]> {
    const entries = await this.withWorkdir(t, (w) => w.list(t.rel, t.path));
    for (const e of entries) this.remember(t.sid, t.rel ? `${t.rel}/${e.name}` : e.name, e.stat);
    return entries;
  }

  async readFile(t: FileTarget): Promise<Uint8Array> {
    const max = this.maxBytes(t);
    return this.withWorkdir(t, (w) => w.read(t.rel, t.path, max));
  }

  async writeFile(t: FileTarget, data: Uint8Array, opts: WriteFileOptions): Promise<Stat> {
    if (t.rel === '') throw new FsError('EISDIR', t.path, 'is a directory');
    const max = this.maxBytes(t);
    if (data.length > max) throw new FsError('EFBIG', t.path, `file larger than the policy's max_file_bytes (${max})`);
    if (opts.ifVersion !== undefined) {
      this.forget(t.sid);
      const current = await this.stat(t).then(
        (s) => s.version,
        (err: unknown) => {
          if (err instanceof FsError && err.code === 'ENOENT') return 0;
          throw err;
        },
      );
      if (current !== opts.ifVersion) throw new FsError('ESTALE', t.path, `version is ${current}, not ${opts.ifVersion}`);
    }
    this.forget(t.sid);
    return this.remember(t.sid, t.rel, await this.withWorkdir(t, (w) => w.write(t.rel, t.path, data, !!opts.append)));
  }

  async open(t: FileTarget, flags: OpenFlags): Promise<Handle> {
    let stat: Stat;
    if (flags.create) {
      if (t.rel === '') throw new FsError('EISDIR', t.path, 'is a directory');
      this.forget(t.sid);
      const mode = (flags.mode ?? 0o644) & 0o7777;
      const opts = { exclusive: !!flags.exclusive, truncate: !!flags.truncate, mode };
      stat = this.remember(t.sid, t.rel, await this.withWorkdir(t, (w) => w.create(t.rel, t.path, opts)));
    } else if (flags.truncate && flags.write) {
      this.forget(t.sid);
      stat = this.remember(t.sid, t.rel, await this.withWorkdir(t, (w) => w.truncate(t.rel, t.path, 0)));
    } else {
      stat = await this.stat(t);
    }
    if (stat.type === 'dir') throw new FsError('EISDIR', t.path, 'is a directory');
    return new WorkdirHandle(this, t, flags, stat, this.maxBytes(t));
  }

  async mkdir(t: FileTarget, mode: number): Promise<void> {
    if (t.rel === '') throw new FsError('EEXIST', t.path, 'file exists');
    this.forget(t.sid);
    await this.withWorkdir(t, (w) => w.mkdir(t.rel, t.path, (mode || 0o755) & 0o7777));
  }

  async remove(t: FileTarget, dir: boolean | undefined): Promise<void> {
    if (t.rel === '') throw new FsError('EBUSY', t.path, 'cannot remove the workdir');
    this.forget(t.sid);
    await this.withWorkdir(t, (w) => w.remove(t.rel, t.path, dir));
  }

  /** `toPath` is the destination as the caller named it: errors about the destination name it. */
  async rename(t: FileTarget, toRel: string, toPath: string): Promise<void> {
    if (t.rel === '') throw new FsError('EBUSY', t.path, 'cannot rename the workdir');
    if (toRel === '') throw new FsError('EBUSY', toPath, 'cannot replace the workdir');
    if (toRel === t.rel) return;
    if (toRel.startsWith(t.rel + '/')) throw new FsError('EINVAL', t.path, 'cannot move a directory into itself');
    this.forget(t.sid);
    await this.withWorkdir(t, (w) => w.rename(t.rel, t.path, toRel, toPath));
  }

  async truncate(t: FileTarget, size: number): Promise<void> {
    if (size > this.maxBytes(t)) throw new FsError('EFBIG', t.path, `file larger than the policy's max_file_bytes (${this.maxBytes(t)})`);
    this.forget(t.sid);
    await this.withWorkdir(t, (w) => w.truncate(t.rel, t.path, Math.max(0, Math.floor(size))));
  }

  async setattr(t: FileTarget, attrs: SetAttr): Promise<Stat> {
    this.forget(t.sid);
    return this.remember(t.sid, t.rel, await this.withWorkdir(t, (w) => w.setattr(t.rel, t.path, attrs)));
  }
}

/**
 * An open file of a workdir. Reads take the whole file once (at the first read); writes go to that copy
 * and are written back at flush (append mode sends only what was appended).
 */
class WorkdirHandle implements Handle {
  readonly kind = 'data' as const;
  private content: Uint8Array | undefined;
  private length = 0;
  private appended: Uint8Array[] = [];
  private dirty = false;
  private closed = false;

  constructor(
    private readonly files: SessionFiles,
    private readonly target: FileTarget,
    private readonly flags: OpenFlags,
    private stat0: Stat,
    private readonly maxBytes: number,
  ) {
    if (stat0.size === 0) {
      this.content = new Uint8Array(0);
      this.length = 0;
    }
  }

  private async load(): Promise<void> {
    if (this.content !== undefined) return;
    const data = await this.files.readFile(this.target);
    this.content = data;
    this.length = data.length;
  }

  private check(): void {
    if (this.closed) throw new FsError('EBADF', this.target.path, 'handle is closed');
  }

  async read(length: number, offset: number): Promise<Uint8Array> {
    this.check();
    if (this.flags.write && this.flags.read === false) throw new FsError('EBADF', this.target.path, 'file not open for reading');
    if (this.flags.append && this.appended.length > 0) await this.flush();
    await this.load();
    return length <= 0 ? EMPTY : sliceAt(this.content!.subarray(0, this.length), length, offset);
  }

  async write(data: Uint8Array, offset: number): Promise<number> {
    this.check();
    if (!this.flags.write) throw new FsError('EBADF', this.target.path, 'file not open for writing');
    if (this.flags.append) {
      const pending = this.appended.reduce((n, p) => n + p.length, 0);
      if (this.stat0.size + pending + data.length > this.maxBytes) this.tooBig();
      this.appended.push(data.slice());
      this.dirty = true;
      return data.length;
    }
    await this.load();
    const end = offset + data.length;
    if (end > this.maxBytes) this.tooBig();
    this.ensure(end);
    this.content!.set(data, offset);
    this.length = Math.max(this.length, end);
    this.dirty = true;
    return data.length;
  }

  private tooBig(): never {
    throw new FsError('EFBIG', this.target.path, `file larger than the policy's max_file_bytes (${this.maxBytes})`);
  }

  private ensure(size: number): void {
    const buf = this.content!;
    if (size <= buf.length) return;
    const grown = new Uint8Array(Math.min(this.maxBytes, Math.max(size, buf.length * 2, 4096)));
    grown.set(buf.subarray(0, this.length));
    this.content = grown;
  }

  async flush(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    if (this.flags.append) {
      const parts = this.appended;
      this.appended = [];
      const data = Buffer.concat(parts);
      this.stat0 = await this.files.writeFile(this.target, data, { append: true });
      this.content = undefined;
      return;
    }
    this.stat0 = await this.files.writeFile(this.target, this.content!.slice(0, this.length), {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
    }
  }

  async truncate(size: number): Promise<void> {
    this.check();
    if (size > this.maxBytes) this.tooBig();
    if (this.flags.append && this.appended.length > 0) await this.flush();
    await this.load();
    this.ensure(size);
    if (size > this.length) this.content!.fill(0, this.length, size);
    this.length = size;
    this.dirty = true;
    if (this.flags.append) {
      // Append mode writes only new bytes: a truncate goes to the file right away.
      this.dirty = false;
      await this.files.truncate(this.target, size);
    }
  }

  async stat(): Promise<Stat> {
    if (this.dirty && !this.flags.append) return { ...this.stat0, size: this.length };
    return this.stat0;
  }
}
