/**
 * sessions/<sid>/files/<path>: the session's workdir as a real directory tree (list, stat, read, write,
 * append, truncate, mkdir, rm, rename, chmod/chown/utimes). Every operation runs inside the container
 * (providers/scripts.ts FILES_SCRIPT) as the session's user; no path, symlinks included, can leave the
 * workdir (EINVAL). A handle reads the whole file at its first read and writes it back at flush, like a
 * network file system with close-to-open consistency.
 */
import { EMPTY } from '../../fs/bytes.js';
import { FsError, type ErrorCode } from '../../fs/errors.js';
import { sliceAt } from '../../fs/handles.js';
import type { DirEntry, Handle, OpenFlags, SetAttr, Stat, WriteFileOptions } from '../../fs/types.js';
import type { ContainerEngine } from './engine.js';
import { FILES_SCRIPT } from './providers/scripts.js';
import type { RunResult } from './providers/types.js';

/** errno numbers the files script exits with. */
const EXIT_CODES: Record<number, ErrorCode> = {
  2: 'ENOENT',
  13: 'EACCES',
  17: 'EEXIST',
  20: 'ENOTDIR',
  21: 'EISDIR',
  22: 'EINVAL',
  27: 'EFBIG',
  39: 'ENOTEMPTY',
};

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

function errorOf(r: RunResult, path: string, diskMb: number): FsError {
  const stderr = new TextDecoder().decode(r.stderr).trim();
  const code = EXIT_CODES[r.exitCode];
  if (code) return new FsError(code, path, stderr || undefined);
  if (/No space left/i.test(stderr)) return new FsError('EFBIG', path, `no space left in the workdir (${diskMb} MB)`);
  if (/Read-only file system/i.test(stderr)) return new FsError('EACCES', path, 'read-only file system');
  if (/Permission denied/i.test(stderr)) return new FsError('EACCES', path, 'permission denied');
  if (r.exitCode === 126 || r.exitCode === 127) return new FsError('EIO', path, `the image cannot run /bin/sh: ${stderr}`);
  return new FsError('EIO', path, stderr || `file operation failed (exit ${r.exitCode})`);
}

/** Parses a stat line of STAT_FORMAT: raw mode (hex), size, atime, mtime, ctime, uid, gid. */
export function parseStat(line: string, path: string): Stat {
  const [modeHex, size, atime, mtime, ctime, uid, gid] = line.trim().split(/\s+/);
  const raw = Number.parseInt(modeHex ?? '', 16);
  if (!Number.isFinite(raw) || size === undefined || gid === undefined) throw new FsError('EIO', path, `unexpected stat output: ${line.slice(0, 80)}`);
  const isDir = (raw & 0o170000) === 0o040000;
  const m = Number(mtime) * 1000;
  return {
    type: isDir ? 'dir' : 'file',
    kind: isDir ? 'dir' : 'data',
    size: isDir ? 0 : Number(size),
    mode: raw & 0o7777,
    mtime: m,
    ctime: Number(ctime) * 1000,
    atime: Number(atime) * 1000,
    // The engine gives whole seconds: the version follows the mtime (and the size, for writes within one second).
    version: Number(mtime) * 1000 + (isDir ? 0 : Number(size) % 1000),
    uid: Number(uid),
    gid: Number(gid),
  };
}

/** Parses the list output: two groups (existing targets, dangling links), each names\0...\0 then stat lines\0. */
export function parseListing(out: Uint8Array, path: string): DirEntry[] {
  const dec = new TextDecoder();
  const entries: DirEntry[] = [];
  let pos = 0;
  const nextToken = (): string => {
    const end = out.indexOf(0, pos);
    if (end < 0) throw new FsError('EIO', path, 'truncated directory listing');
    const tok = dec.decode(out.subarray(pos, end));
    pos = end + 1;
    return tok;
  };
  for (let group = 0; group < 2; group++) {
    const names: string[] = [];
    for (let name = nextToken(); name !== ''; name = nextToken()) names.push(name);
    const lines = nextToken()
      .split('\n')
      .filter((l) => l.trim() !== '');
    if (lines.length !== names.length) {
      throw new FsError('EAGAIN', path, 'the directory changed while it was listed; list it again', { retryAfterMs: 10 });
    }
    names.forEach((name, i) => entries.push({ name, stat: parseStat(lines[i]!, path) }));
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export class SessionFiles {
  private readonly stats = new Map<string, Map<string, { stat: Stat; at: number }>>();

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

  private remember(sid: string, rel: string, stat: Stat): void {
    let m = this.stats.get(sid);
    if (!m) this.stats.set(sid, (m = new Map()));
    m.set(rel, { stat, at: Date.now() });
  }

  /** Runs one files-script operation in the session's container as its user. */
  async run(t: FileTarget, args: string[], opts: { stdin?: Uint8Array; maxStdout?: number } = {}): Promise<RunResult> {
    const { containerId, provider, record } = await this.engine.containerOf(t.agentId, t.sid, t.path);
    const r = await provider.run(containerId, ['/bin/sh', '-c', FILES_SCRIPT, 'agent9-files', args[0]!, record.request.workdir, t.rel, ...args.slice(1)], {
      ...(record.request.user !== undefined ? { user: record.request.user } : {}),
      ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
      ...(opts.maxStdout !== undefined ? { maxStdout: opts.maxStdout } : {}),
    });
    if (r.exitCode !== 0) throw errorOf(r, t.path, record.request.limits.disk_mb);
    return r;
  }

  private maxBytes(t: FileTarget): number {
    return this.engine.policy(t.agentId).max_file_bytes;
  }

  private statOut(r: RunResult, t: FileTarget): Stat {
    const stat = parseStat(new TextDecoder().decode(r.stdout).trim().split('\n').at(-1) ?? '', t.path);
    this.remember(t.sid, t.rel, stat);
    return stat;
  }

  async stat(t: FileTarget): Promise<Stat> {
    const hit = this.cached(t);
    if (hit) return hit;
    return this.statOut(await this.run(t, ['stat']), t);
  }

  async readdir(t: FileTarget): Promise<DirEntry[]> {
    const r = await this.run(t, ['list']);
    const entries = parseListing(r.stdout, t.path);
    for (const e of entries) this.remember(t.sid, t.rel ? `${t.rel}/${e.name}` : e.name, e.stat);
    return entries;
  }

  async readFile(t: FileTarget): Promise<Uint8Array> {
    const max = this.maxBytes(t);
    const r = await this.run(t, ['read', String(max)], { maxStdout: max });
    return r.stdout;
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
    return this.statOut(await this.run(t, ['write', opts.append ? 'append' : 'replace'], { stdin: data }), t);
  }

  async open(t: FileTarget, flags: OpenFlags): Promise<Handle> {
    let stat: Stat;
    if (flags.create) {
      if (t.rel === '') throw new FsError('EISDIR', t.path, 'is a directory');
      this.forget(t.sid);
      const mode = (flags.mode ?? 0o644) & 0o7777;
      stat = this.statOut(await this.run(t, ['create', flags.exclusive ? '1' : '0', flags.truncate ? '1' : '0', mode.toString(8)]), t);
    } else if (flags.truncate && flags.write) {
      this.forget(t.sid);
      stat = this.statOut(await this.run(t, ['truncate', '0']), t);
    } else {
      stat = await this.stat(t);
    }
    if (stat.type === 'dir') throw new FsError('EISDIR', t.path, 'is a directory');
    return new WorkdirHandle(this, t, flags, stat, this.maxBytes(t));
  }

  async mkdir(t: FileTarget, mode: number): Promise<void> {
    if (t.rel === '') throw new FsError('EEXIST', t.path, 'file exists');
    this.forget(t.sid);
    await this.run(t, ['mkdir', ((mode || 0o755) & 0o7777).toString(8)]);
  }

  async remove(t: FileTarget, dir: boolean | undefined): Promise<void> {
    if (t.rel === '') throw new FsError('EBUSY', t.path, 'cannot remove the workdir');
    this.forget(t.sid);
    await this.run(t, ['rm', dir === undefined ? 'auto' : dir ? '1' : '0']);
  }

  async rename(t: FileTarget, toRel: string): Promise<void> {
    if (t.rel === '' || toRel === '') throw new FsError('EBUSY', t.path, 'cannot rename the workdir');
    if (toRel === t.rel) return;
    if (toRel.startsWith(t.rel + '/')) throw new FsError('EINVAL', t.path, 'cannot move a directory into itself');
    this.forget(t.sid);
    await this.run(t, ['rename', toRel]);
  }

  async truncate(t: FileTarget, size: number): Promise<void> {
    if (size > this.maxBytes(t)) throw new FsError('EFBIG', t.path, `file larger than the policy's max_file_bytes (${this.maxBytes(t)})`);
    this.forget(t.sid);
    await this.run(t, ['truncate', String(Math.max(0, Math.floor(size)))]);
  }

  async setattr(t: FileTarget, attrs: SetAttr): Promise<Stat> {
    this.forget(t.sid);
    const owner = attrs.uid !== undefined || attrs.gid !== undefined ? `${attrs.uid ?? ''}:${attrs.gid ?? ''}` : '-';
    const secs = (ms: number | undefined) => (ms === undefined ? '-' : String(Math.floor(ms / 1000)));
    const r = await this.run(t, [
      'setattr',
      attrs.mode === undefined ? '-' : (attrs.mode & 0o7777).toString(8),
      owner,
      secs(attrs.atime),
      secs(attrs.mtime),
    ]);
    return this.statOut(r, t);
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
