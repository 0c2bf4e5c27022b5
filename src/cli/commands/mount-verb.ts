/**
 * `agentctl mount DIR [--agent ID]`: mounts a running server's global view at DIR through its HTTP API
 * (with `--agent ID`, that agent's own view, acting as the agent through an agent-scoped token minted for
 * the mount and revoked at unmount), until SIGINT or SIGTERM. `agentctl serve --mount DIR` mounts inside
 * the server process instead.
 */
import { mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { FsError, isErrorCode } from '../../fs/errors.js';
import { callFile } from '../../fs/ops.js';
import { utf8 } from '../../fs/bytes.js';
import type { FileService } from '../../fs/types.js';
import { action, commandOf, contextOf, usage } from '../context.js';

export interface FuseCliOptions {
  attrTimeout?: string;
  entryTimeout?: string;
  allowOther?: boolean;
}

interface MountOptions extends FuseCliOptions {
  agent?: string;
}

/** The mount options shared by `mount` and `serve --mount`, checked. */
export function fuseOptionsOf(opts: FuseCliOptions): { attrTimeout?: number; entryTimeout?: number; allowOther?: boolean } {
  const seconds = (flag: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!(Number.isFinite(n) && n >= 0 && n <= 3600)) throw usage(`${flag} takes seconds (0 to 3600), not '${v}'`);
    return n;
  };
  const out: { attrTimeout?: number; entryTimeout?: number; allowOther?: boolean } = {};
  const attr = seconds('--attr-timeout', opts.attrTimeout);
  const entry = seconds('--entry-timeout', opts.entryTimeout);
  if (attr !== undefined) out.attrTimeout = attr;
  if (entry !== undefined) out.entryTimeout = entry;
  if (opts.allowOther) out.allowOther = true;
  return out;
}

/**
 * Makes the mount point (and its parents) one directory at a time, or fails with the reason naming the
 * path. Node's recursive mkdir never returns where the file system refuses a name with ENOENT (under
 * /proc or /sys), and a file in the way should read "not a directory", not "file already exists".
 * A dead FUSE mount at DIR (ENOTCONN) is left to the mount, which clears it.
 */
export async function ensureMountPoint(dir: string): Promise<void> {
  const at = resolve(dir);
  const parts = at.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = '/' + parts.slice(0, i).join('/');
    try {
      await mkdir(p);
      continue;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        if (code === 'ENOENT') throw new FsError('ENOENT', p, `cannot make the mount point ${at}: the file system there refuses new names`);
        throw new FsError(isErrorCode(code) ? code : 'EIO', p, `cannot make the mount point ${at}: ${(err as Error).message}`);
      }
    }
    try {
      if (!(await stat(p)).isDirectory()) throw new FsError('ENOTDIR', p, p === at ? 'not a directory: a mount point must be one' : `not a directory, so the mount point ${at} cannot be made`);
    } catch (err) {
      if (err instanceof FsError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTCONN' || code === 'ECONNABORTED') continue; // a dead FUSE mount: the mount clears it
      throw new FsError(isErrorCode(code) ? code : 'EIO', p, `cannot mount at ${at}: ${(err as Error).message}`);
    }
  }
}

export function addFuseOptions(cmd: Command): Command {
  return cmd
    .option('--attr-timeout <seconds>', 'how long the kernel may cache stat results (default 1)')
    .option('--entry-timeout <seconds>', 'how long the kernel may cache name lookups (default 1)')
    .option('--allow-other', 'let other users reach the mount (needs user_allow_other in /etc/fuse.conf)');
}

async function mount(dir: string, opts: MountOptions, cmd: Command): Promise<void> {
  const fuseOptions = fuseOptionsOf(opts);
  const ctx = contextOf(cmd);
  const [{ mountNamespace, unmountOnSignals, FuseUnavailableError }, { HttpFileService }] = await Promise.all([
    import('../../fuse/index.js'),
    import('../../http/client.js'),
  ]);
  // Fails early, with the server's own words, when it is not there or the token is refused.
  await ctx.client.stat('/', ctx.cx);
  await ensureMountPoint(dir);

  let service: FileService = ctx.client;
  let revoke: (() => Promise<void>) | undefined;
  if (opts.agent !== undefined) {
    await ctx.client.stat(`/agents/${opts.agent}`, ctx.cx);
    let minted: { id: string; token: string };
    try {
      const request = JSON.stringify({ name: `mount ${opts.agent} at ${dir}`, agent: opts.agent });
      minted = JSON.parse(utf8(await callFile(ctx.client, '/runtime/tokens/new', request, ctx.cx))) as { id: string; token: string };
    } catch (err) {
      if (err instanceof FsError && err.code === 'EACCES') {
        throw new FsError('EACCES', '/runtime/tokens/new', '--agent needs the admin token (with an agent token, mount without --agent)');
      }
      throw err;
    }
    service = new HttpFileService({ url: ctx.endpoint, token: minted.token });
    revoke = () => ctx.client.remove!(`/runtime/tokens/${minted.id}`, ctx.cx).catch(() => undefined);
  }

  let mounted;
  try {
    mounted = await mountNamespace(service, dir, fuseOptions);
  } catch (err) {
    await revoke?.();
    if (err instanceof FuseUnavailableError) throw new FsError('ENOSYS', dir, err.message);
    throw err;
  }
  unmountOnSignals(async (signal) => {
    await revoke?.();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
  const what = opts.agent === undefined ? ctx.endpoint : `agent ${opts.agent} of ${ctx.endpoint}`;
  process.stderr.write(`agent9: ${what} mounted at ${mounted.dir} (Ctrl-C unmounts)\n`);
}

export function registerMountCommand(program: Command): void {
  addFuseOptions(
    program
      .command('mount')
      .description("mount a running server's files at DIR (the global view; --agent ID: that agent's own view)")
      .argument('<dir>', 'the directory to mount at (created if missing)')
      .option('--agent <id>', "mount this agent's own view, acting as the agent"),
  ).action(action(async (dir: string, opts: MountOptions, ...rest: unknown[]) => mount(dir, opts, commandOf(rest))));
}
