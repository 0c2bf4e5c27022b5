/**
 * Mounting a FileService (the global view, or one agent's view) at a directory: checks that FUSE can
 * work here, clears a stale mount left by a crash, mounts with the options agent9 relies on (through our
 * libfuse3 addon, binding.ts), and unmounts on request, on SIGINT/SIGTERM (when asked) and, as a last
 * resort, at process exit.
 *
 * Mount options, and why:
 * - max_read=1 MiB: reads of up to 1 MiB per request (the addon's init asks for the same max_write and
 *   readahead; the two must agree or the kernel refuses every request).
 * - auto_unmount: if the serving process dies (even by SIGKILL), fusermount3 unmounts the directory.
 * - default_permissions: the kernel checks modes and owners like on any filesystem.
 * - attribute and entry timeouts (default 1 s) are given per answer by the adapter: stat and lookups
 *   are cached for at most that long, and failed lookups not at all (new names are seen at once). This
 *   is the staleness bound in CONTRACT.md.
 * Which files use the page cache and which are direct-io is decided per open (adapter.ts).
 */
import { execFile } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile, stat, statfs, writeFile } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import type { FileService, FsSpace, Principal } from '../fs/types.js';
import { FuseAdapter, type AdapterOptions } from './adapter.js';
import { loadBinding, type NativeFuse } from './binding.js';

export interface MountNamespaceOptions {
  /** Who FUSE callers act as; default: the mounting user, as admin (the server operator). */
  principal?: Principal;
  /** Seconds stat results are cached by the kernel (default 1). */
  attrTimeout?: number;
  /** Seconds name lookups are cached by the kernel (default 1). */
  entryTimeout?: number;
  /** Let other users reach the mount (needs user_allow_other in /etc/fuse.conf unless root). */
  allowOther?: boolean;
  /** Deadline for metadata operations and open, in ms (default 30 000; 0 = none). */
  opTimeoutMs?: number;
  /** Directory whose filesystem `df` reports (the data directory). */
  statfsOf?: string;
  /** libfuse debug output on stderr. */
  debug?: boolean;
  onError?: AdapterOptions['onError'];
}

export class FuseUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(`FUSE is not available: ${reason}`);
    this.name = 'FuseUnavailableError';
  }
}

export interface FuseMount {
  readonly dir: string;
  /** The -o options it was mounted with. */
  readonly options: readonly string[];
  readonly adapter: FuseAdapter;
  readonly mounted: boolean;
  unmount(): Promise<void>;
}

const active = new Map<string, MountHandle>();

/** Why FUSE cannot work on this machine, or undefined when it can. */
export async function fuseUnavailableReason(device = '/dev/fuse'): Promise<string | undefined> {
  try {
    const st = await stat(device);
    if (!st.isCharacterDevice()) return `${device} is not the FUSE device (not a character device)`;
    await access(device, fsConstants.R_OK | fsConstants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      return `${device} does not exist (load the fuse kernel module, or start the container with --device /dev/fuse --cap-add SYS_ADMIN)`;
    }
    if (code === 'EACCES' || code === 'EPERM') return `no permission to open ${device}`;
    return `${device}: ${(err as Error).message}`;
  }
  if (!(await fusermountPath())) return 'fusermount3 is not installed (apt-get install fuse3)';
  const binding = loadBinding();
  if (!binding.ok) return binding.reason;
  return undefined;
}

let fusermountCache: string | null | undefined;

/** fusermount3 (or fusermount, the same program on Debian), from PATH. */
export async function fusermountPath(): Promise<string | undefined> {
  if (fusermountCache !== undefined) return fusermountCache ?? undefined;
  const dirs = (process.env['PATH'] ?? '/usr/bin:/bin').split(delimiter).filter(Boolean);
  for (const name of ['fusermount3', 'fusermount']) {
    for (const d of dirs) {
      const candidate = join(d, name);
      try {
        await access(candidate, fsConstants.X_OK);
        fusermountCache = candidate;
        return candidate;
      } catch {
        /* next */
      }
    }
  }
  fusermountCache = null;
  return undefined;
}

function run(cmd: string, args: string[], timeoutMs = 5000): Promise<{ code: number; stderr: string }> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      done({ code, stderr: String(stderr).trim() });
    });
  });
}

/** The filesystem type mounted exactly at `dir`, from /proc/self/mountinfo (undefined when none). */
export async function mountedType(dir: string): Promise<string | undefined> {
  let info: string;
  try {
    info = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  let found: string | undefined;
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 0 || fields.length < 5) continue;
    const point = fields[4]!.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    if (point === dir) found = fields[sep + 1]; // the last entry wins: it is the top of the stack
  }
  return found;
}

/**
 * Lets the kernel read ahead a whole request (1 MiB) on the mount, not its default 128 KiB: sequential
 * reads of data files then come in requests of MAX_REQUEST. Only root may; others keep the default.
 * The device number comes from /proc/self/mountinfo: the mount itself must not be touched from here.
 */
async function raiseReadahead(dir: string): Promise<void> {
  try {
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    let device: string | undefined;
    for (const line of info.split('\n')) {
      const fields = line.split(' ');
      const point = fields[4]?.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
      if (point === dir) device = fields[2];
    }
    if (device) await writeFile(`/sys/class/bdi/${device}/read_ahead_kb`, String(MAX_REQUEST / 1024));
  } catch {
    /* not root, or no such knob: the default readahead */
  }
}

/** Whether a FUSE mount at `dir` answers: probed from a child process, never from ours. */
async function mountAnswers(dir: string): Promise<{ alive: boolean; detail: string }> {
  const r = await run('stat', ['-c', '%i', dir], 3000);
  return { alive: r.code === 0, detail: r.stderr };
}

/**
 * Clears what a crashed server left at `dir`: a FUSE mount nobody serves ("Transport endpoint is not
 * connected"). A mount that still answers belongs to a live server and is left alone (an error).
 * Returns true when something was cleared.
 */
export async function clearStaleMount(dir: string): Promise<boolean> {
  const at = resolve(dir);
  const type = await mountedType(at);
  if (type === undefined) return false;
  if (!type.startsWith('fuse')) throw new Error(`${at} is already a mount point (${type}); choose an empty directory`);
  if (active.has(at)) throw new Error(`${at} is already mounted by this process`);
  const probe = await mountAnswers(at);
  if (probe.alive) {
    throw new Error(`${at} is already mounted by a running FUSE server; stop it or run 'fusermount -u ${at}' first`);
  }
  await lazyUnmount(at);
  if ((await mountedType(at))?.startsWith('fuse')) throw new Error(`${at}: could not clear the stale mount (${probe.detail})`);
  return true;
}

/** Detaches the mount at once, whatever holds it (MNT_DETACH); needs no answer from the server. */
async function lazyUnmount(dir: string): Promise<void> {
  const fusermount = (await fusermountPath()) ?? 'fusermount';
  const r = await run(fusermount, ['-u', '-z', dir]);
  if (r.code !== 0 && (await mountedType(dir)) !== undefined) {
    // Root can also do it without the helper.
    await run('umount', ['-l', dir]);
  }
}

/** How long an unmount waits for the session loop to end before leaving it to the process exit. */
const EXIT_WAIT_MS = 3000;

class MountHandle implements FuseMount {
  mounted = false;
  private unmounting: Promise<void> | undefined;
  private session: object | undefined;
  private exited = false;
  private onExited: (() => void) | undefined;

  constructor(
    readonly dir: string,
    readonly options: readonly string[],
    readonly adapter: FuseAdapter,
    private readonly native: NativeFuse,
  ) {}

  start(): void {
    const handler = this.adapter.handlerFor(this.native, () => this.ended());
    try {
      this.session = this.native.mount(this.dir, this.options.join(','), handler);
    } catch (err) {
      throw new Error(`cannot mount ${this.dir}: ${(err as Error).message}`);
    }
    this.adapter.attach(this.native, this.session);
    this.mounted = true;
  }

  /** The session loop ended (our unmount, or someone else's `fusermount -u`): free the session. */
  private ended(): void {
    this.exited = true;
    if (this.session) this.native.destroy(this.session);
    this.onExited?.();
    if (!this.unmounting) void this.unmount();
  }

  unmount(): Promise<void> {
    this.unmounting ??= this.stop();
    return this.unmounting;
  }

  private async stop(): Promise<void> {
    if (this.mounted && this.session && !this.exited) {
      const exited = new Promise<void>((done) => {
        this.onExited = done;
        setTimeout(done, EXIT_WAIT_MS).unref();
      });
      this.native.unmount(this.session);
      if ((await mountedType(this.dir))?.startsWith('fuse')) await lazyUnmount(this.dir);
      await exited;
    } else if ((await mountedType(this.dir))?.startsWith('fuse')) {
      await lazyUnmount(this.dir);
    }
    this.mounted = false;
    active.delete(this.dir);
    await this.adapter.closeAll();
    if (active.size === 0) process.off('exit', unmountAllAtExit);
  }
}

/** Last resort when the process exits with mounts still up: detach them (no answer needed from us). */
function unmountAllAtExit(): void {
  for (const dir of active.keys()) spawnSync('fusermount3', ['-u', '-z', dir], { stdio: 'ignore', timeout: 3000 });
}

/** The largest read and write request, in bytes. */
export const MAX_REQUEST = 1024 * 1024;

/** The -o list for a mount with these options. */
export function mountOptionList(opts: MountNamespaceOptions = {}): string[] {
  const list = ['fsname=agent9', 'subtype=agent9', `max_read=${MAX_REQUEST}`, 'auto_unmount', 'default_permissions'];
  if (opts.allowOther) list.push('allow_other');
  if (opts.debug) list.push('debug');
  return list;
}

/**
 * Mounts `service` at `dir` and resolves once the kernel has the mount. Throws FuseUnavailableError
 * (with the reason) when FUSE cannot work here; the caller decides to carry on without it.
 * Never touch the mount synchronously from this process: its requests are served by this event loop.
 */
export async function mountNamespace(service: FileService, dir: string, opts: MountNamespaceOptions = {}): Promise<FuseMount> {
  const reason = await fuseUnavailableReason();
  if (reason) throw new FuseUnavailableError(reason);
  const binding = loadBinding();
  if (!binding.ok) throw new FuseUnavailableError(binding.reason);

  const at = resolve(dir);
  await clearStaleMount(at);
  await mkdir(at, { recursive: true });

  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const adapterOptions: AdapterOptions = {
    principal: opts.principal ?? { id: `fuse:${uid}`, admin: true, uid, gid },
    owner: { uid, gid },
    attrTimeout: opts.attrTimeout ?? 1,
    entryTimeout: opts.entryTimeout ?? 1,
  };
  if (opts.opTimeoutMs !== undefined) adapterOptions.opTimeoutMs = opts.opTimeoutMs;
  if (opts.onError) adapterOptions.onError = opts.onError;
  const statfsDir = opts.statfsOf;
  if (statfsDir) adapterOptions.diskSpace = () => diskSpace(statfsDir);
  const adapter = new FuseAdapter(service, adapterOptions);

  const handle = new MountHandle(at, mountOptionList(opts), adapter, binding.native);
  handle.start();
  await raiseReadahead(at);
  if (active.size === 0) process.on('exit', unmountAllAtExit);
  active.set(at, handle);
  return handle;
}

/** The mounts this process serves. */
export function activeMounts(): FuseMount[] {
  return [...active.values()];
}

/** Unmounts everything this process mounted. */
export async function unmountAll(): Promise<void> {
  await Promise.all([...active.values()].map((m) => m.unmount()));
}

/**
 * Unmounts everything on SIGINT or SIGTERM, then calls `then` (default: exit with 130 or 143).
 * Returns a function that removes the handlers.
 */
export function unmountOnSignals(then?: (signal: NodeJS.Signals) => void | Promise<void>): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    void unmountAll()
      .catch((err: unknown) => process.stderr.write(`agent9 fuse: unmount failed: ${(err as Error).message}\n`))
      .then(async () => {
        if (then) await then(signal);
        else process.exit(signal === 'SIGINT' ? 130 : 143);
      });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/** The space of the filesystem holding `dir`. */
async function diskSpace(dir: string): Promise<FsSpace> {
  const s = await statfs(dir);
  return {
    totalBytes: s.blocks * s.bsize,
    usedBytes: (s.blocks - s.bfree) * s.bsize,
    freeBytes: s.bavail * s.bsize,
    files: s.files - s.ffree,
  };
}
