/**
 * Mounting a FileService (the global view, or one agent's view) at a directory: checks that FUSE can
 * work here, clears a stale mount left by a crash, mounts with the options agent9 relies on, and
 * unmounts on request, on SIGINT/SIGTERM (when asked) and, as a last resort, at process exit.
 *
 * Mount options, and why:
 * - direct_io: every read and write goes to the service. Synthetic files read fully whatever size they
 *   report (streams and call answers have none), and no read is ever served from a stale page cache
 *   after a change made elsewhere (HTTP, the runtime). fuse-native cannot set it per open, so it applies
 *   to every file. Large sequential reads are about as fast as through the page cache (the bench's
 *   design check, within the noise of a shared machine); reads of a few KiB each cost one request each,
 *   which st_blksize = 128 KiB steers stdio, Python and coreutils away from.
 * - attr_timeout / entry_timeout (default 1 s) with negative_timeout=0: stat and lookups are cached for
 *   at most that long; new names are seen at once. This is the staleness bound in CONTRACT.md.
 * - big_writes: writes of up to 128 KiB per request instead of 4 KiB.
 * - atomic_o_trunc: `>` is one open with O_TRUNC, not a truncate and then an open (one request less,
 *   and a Budgeted mount charges `echo x > f` once, as it does a PUT).
 * - hard_remove: unlinking an open file removes it (libfuse would otherwise rename it to .fuse_hidden*).
 * - intr, intr_signal=SIGURG: a reader blocked on a stream can be interrupted (interrupts.ts).
 * - auto_unmount: if the serving process dies (even by SIGKILL), fusermount unmounts the directory.
 * - default_permissions: the kernel checks modes and owners like on any filesystem.
 */
import { execFile } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile, stat, statfs } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { FileService, Principal } from '../fs/types.js';
import { FuseAdapter, type AdapterOptions } from './adapter.js';
import { loadBinding, type FuseInstance } from './binding.js';
import { acquireInterrupts, releaseInterrupts, INTERRUPT_SIGNAL } from './interrupts.js';

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
  if (!(await fusermountPath())) return 'fusermount is not installed (apt-get install fuse3)';
  const binding = loadBinding();
  if (!binding.ok) return binding.reason;
  return undefined;
}

let fusermountCache: string | null | undefined;

/** fusermount (libfuse 2's name, a link to fusermount3 on Debian) or fusermount3, from PATH. */
export async function fusermountPath(): Promise<string | undefined> {
  if (fusermountCache !== undefined) return fusermountCache ?? undefined;
  const dirs = (process.env['PATH'] ?? '/usr/bin:/bin').split(delimiter).filter(Boolean);
  for (const name of ['fusermount', 'fusermount3']) {
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

class MountHandle implements FuseMount {
  mounted = false;
  private unmounting: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    readonly options: readonly string[],
    readonly adapter: FuseAdapter,
    private readonly fuse: FuseInstance,
  ) {}

  start(): Promise<void> {
    return new Promise((done, fail) => {
      this.fuse.mount((err) => {
        if (err) return fail(new Error(`cannot mount ${this.dir}: ${err.message}`));
        this.mounted = true;
        done();
      });
    });
  }

  unmount(): Promise<void> {
    this.unmounting ??= this.stop();
    return this.unmounting;
  }

  private async stop(): Promise<void> {
    if (this.mounted) {
      // fuse-native unmounts with `fusermount -uz` (lazy) and then lets its thread go.
      await new Promise<void>((done) => this.fuse.unmount(() => done()));
      if ((await mountedType(this.dir))?.startsWith('fuse')) await lazyUnmount(this.dir);
    }
    this.mounted = false;
    active.delete(this.dir);
    await this.adapter.closeAll();
    releaseInterrupts();
    if (active.size === 0) process.off('exit', unmountAllAtExit);
  }
}

/** Last resort when the process exits with mounts still up: detach them (no answer needed from us). */
function unmountAllAtExit(): void {
  for (const dir of active.keys()) spawnSync('fusermount', ['-u', '-z', dir], { stdio: 'ignore', timeout: 3000 });
}

/** The -o list for a mount with these options. */
export function mountOptionList(opts: MountNamespaceOptions = {}): string[] {
  const list = [
    'fsname=agent9',
    'subtype=agent9',
    'direct_io',
    'big_writes',
    'atomic_o_trunc',
    'hard_remove',
    'intr',
    `intr_signal=${osConstants.signals[INTERRUPT_SIGNAL]}`,
    'auto_unmount',
    'default_permissions',
    `attr_timeout=${opts.attrTimeout ?? 1}`,
    `entry_timeout=${opts.entryTimeout ?? 1}`,
    'negative_timeout=0',
  ];
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
  };
  if (opts.opTimeoutMs !== undefined) adapterOptions.opTimeoutMs = opts.opTimeoutMs;
  if (opts.onError) adapterOptions.onError = opts.onError;
  const statfsDir = opts.statfsOf;
  if (statfsDir) adapterOptions.statfs = () => diskSpace(statfsDir);
  const adapter = new FuseAdapter(service, adapterOptions);

  const options = mountOptionList(opts);
  const handle = new MountHandle(at, options, adapter, binding.create(at, adapter.ops, { mountOptions: options }));
  // The interrupt handler must be in place before libfuse looks for one at mount time.
  acquireInterrupts();
  try {
    await handle.start();
  } catch (err) {
    releaseInterrupts();
    throw err;
  }
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

async function diskSpace(dir: string) {
  const s = await statfs(dir);
  const clamp = (n: number) => Math.min(0xffffffff, Math.max(0, Math.floor(n)));
  // Keep the byte counts right when the block count needs scaling to fit 32 bits.
  const scale = Math.max(1, Math.ceil(s.blocks / 0xffffffff));
  return {
    bsize: s.bsize * scale,
    frsize: s.bsize * scale,
    blocks: clamp(s.blocks / scale),
    bfree: clamp(s.bfree / scale),
    bavail: clamp(s.bavail / scale),
    files: clamp(s.files),
    ffree: clamp(s.ffree),
    favail: clamp(s.ffree),
  };
}
