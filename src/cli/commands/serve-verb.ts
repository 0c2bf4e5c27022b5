/**
 * `agentctl serve`: the agent9 server. Opens the data directory (AGENT9_HOME), the runtime and its
 * global view, and serves it over HTTP (and, with --mount DIR, as a FUSE filesystem at DIR); logs JSON
 * lines with pino; on SIGINT/SIGTERM it unmounts, stops taking requests, lets those in flight finish,
 * ends watches cleanly, and closes the database.
 *
 * What can refuse a start is checked before the server is loaded (flags, the address, the data
 * directory's lock): a refusal then costs a Node start-up, not the whole server's. A mount that cannot
 * be made stops the start with its reason, before anything listens, unless --mount-optional says HTTP
 * alone will do.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FsError, isErrorCode } from '../../fs/errors.js';
import { DEFAULT_HOST, DEFAULT_PORT, SERVER_FILE } from '../../http/defaults.js';
import { checkHost, isLoopback } from '../../http/host-check.js';
import type { RunningServer } from '../../http/listener.js';
import type { Agent9 } from '../../server/agent9.js';
import { agent9Home } from '../../runtime/home-config.js';
import { HomeLock } from '../../runtime/storage/home-lock.js';
import { action, usage } from '../context.js';
import { addFuseOptions, ensureMountPoint, fuseOptionsOf, type FuseCliOptions } from './mount-verb.js';

interface ServeOptions extends FuseCliOptions {
  mount?: string;
  mountOptional?: boolean;
  agent?: string;
  host: string;
  port?: string;
  allowRemote?: boolean;
  demo?: boolean;
  maxBody?: string;
  logLevel?: string;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Who serves `home`, from the server.json it wrote (for the EBUSY message only: the lock decides). */
function describeServer(home: string): string | undefined {
  try {
    const other = JSON.parse(readFileSync(join(home, SERVER_FILE), 'utf8')) as { pid?: unknown; url?: unknown };
    return `pid ${String(other.pid)} at ${String(other.url)}`;
  } catch {
    return undefined;
  }
}

/** The port from `--port`, else AGENT9_PORT, else 7070. */
export function portOf(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const text = flag ?? env['AGENT9_PORT'] ?? String(DEFAULT_PORT);
  const where = flag !== undefined ? '--port' : 'AGENT9_PORT';
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw usage(`${where} takes a port number (0 picks a free one), not '${text}'`);
  return Number(text);
}

/** Why a mount could not be made, as the error agentctl ends with. */
function mountFailure(err: unknown, dir: string, unavailable: (e: unknown) => boolean): FsError {
  const hint = ' (serve HTTP alone: drop --mount, or add --mount-optional)';
  if (err instanceof FsError) return new FsError(err.code, err.path, err.detail + hint);
  const message = (err as Error).message ?? String(err);
  if (unavailable(err)) return new FsError('ENOSYS', dir, message + hint);
  const code = (err as { code?: unknown }).code;
  return new FsError(isErrorCode(code) ? code : 'EIO', dir, message.replace(/^cannot mount [^:]*: /, '') + hint);
}

async function serve(opts: ServeOptions): Promise<void> {
  const home = agent9Home();
  const port = portOf(opts.port);
  const bodyLimit = opts.maxBody === undefined ? undefined : Number(opts.maxBody);
  if (bodyLimit !== undefined && !(Number.isInteger(bodyLimit) && bodyLimit > 0)) throw usage(`--max-body takes a number of bytes, not '${opts.maxBody}'`);
  const level = opts.logLevel ?? process.env['AGENT9_LOG'] ?? 'info';
  if (!LEVELS.includes(level)) throw usage(`--log-level is one of ${LEVELS.join(', ')}`);
  if (opts.agent !== undefined && opts.mount === undefined) throw usage('--agent says whose view --mount shows: it needs --mount DIR');
  if (opts.mountOptional && opts.mount === undefined) throw usage('--mount-optional goes with --mount DIR');
  const fuseOptions = fuseOptionsOf(opts);
  checkHost(opts.host, !!opts.allowRemote);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const lock = HomeLock.acquire(home, () => describeServer(home));

  let a9: Agent9 | undefined;
  let mounted: { dir: string; unmount(): Promise<void> } | undefined;
  let server: RunningServer | undefined;
  const giveUp = async (err: unknown): Promise<never> => {
    await mounted?.unmount().catch(() => undefined);
    await server?.close().catch(() => undefined);
    await a9?.close().catch(() => undefined);
    lock.release();
    throw err;
  };
  try {
    // The heavy parts load only now, so every other verb, and a refused start, is quick.
    const [{ pino }, { Agent9, createDemoAgent, DEMO_AGENT }, { startServer, execTokens }] = await Promise.all([
      import('pino'),
      import('../../server/agent9.js'),
      import('../../http/listener.js'),
    ]);
    if (!isLoopback(opts.host)) {
      process.stderr.write(`agentctl: warning: listening on ${opts.host}: other machines can reach this server; every request still needs a token\n`);
    }
    const logger = pino({ level, base: { pid: process.pid } });
    // Exec programs get AGENT9_URL and an agent-scoped token; a tick that starts before the server
    // listens waits for them.
    let tokensReady: (t: ReturnType<typeof execTokens>) => void = () => undefined;
    const exec = new Promise<ReturnType<typeof execTokens>>((resolve) => (tokensReady = resolve));
    // With a mount they also get AGENT_ROOT, their directory on it.
    let mountEnv: (agentId: string) => Record<string, string> = () => ({});
    const opened = await Agent9.open({ home, log: logger, execEnv: async (agentId) => ({ ...(await (await exec).env(agentId)), ...mountEnv(agentId) }) });
    a9 = opened;
    if (opts.demo) createDemoAgent(opened);
    if (opts.agent !== undefined && !opened.runtime.agents.has(opts.agent)) {
      throw new FsError('ENOENT', `/agents/${opts.agent}`, `no agent '${opts.agent}' to mount (agentctl agents list shows them)`);
    }

    // The mount before the listener: a start that fails for its mount has served nothing.
    if (opts.mount !== undefined) {
      const fuse = await import('../../fuse/index.js');
      try {
        await ensureMountPoint(opts.mount);
        const m = await fuse.mountServer(opened, opts.mount, { ...fuseOptions, ...(opts.agent !== undefined ? { agent: opts.agent } : {}) });
        mountEnv = fuse.agentRootEnv(m, opts.agent);
        mounted = m;
        logger.info({ dir: m.dir }, 'mounted');
      } catch (err) {
        const failure = mountFailure(err, opts.mount, (e) => e instanceof fuse.FuseUnavailableError);
        if (!opts.mountOptional) throw failure;
        logger.warn({ dir: opts.mount, err: (err as Error).message }, 'not mounted');
        process.stderr.write(`agentctl: warning: ${(err as Error).message}; serving HTTP only (--mount-optional)\n`);
      }
    }

    try {
      server = await startServer({
        home,
        storage: opened.storage,
        namespace: opened.namespace,
        tokens: opened.tokens,
        registry: opened.registry,
        host: opts.host,
        port,
        allowRemote: !!opts.allowRemote,
        logger,
        ...(bodyLimit !== undefined ? { bodyLimit } : {}),
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EADDRINUSE') throw new FsError('EBUSY', '/', `${opts.host}:${port} is already in use (another server? try --port or AGENT9_PORT)`);
      if (e.code === 'EADDRNOTAVAIL') throw new FsError('EINVAL', '/', `cannot listen on ${opts.host}: no such local address`);
      throw err;
    }
    const running = server;
    const issued = execTokens(running.tokens, running.url);
    tokensReady(issued);

    logger.info({ url: running.url, home }, 'agent9 serving');
    const tokenFile = join(home, 'admin.token');
    process.stderr.write(
      `agent9 serving ${running.url} (data in ${home})\n` +
        (mounted
          ? opts.agent === undefined
            ? `mounted at ${mounted.dir}: try ls ${mounted.dir}/agents\n`
            : `agent ${opts.agent}'s own view mounted at ${mounted.dir}: try cat ${mounted.dir}/status\n`
          : '') +
        (opts.demo
          ? `try: curl -H "Authorization: Bearer $(cat ${tokenFile})" ${running.url}/agents/${DEMO_AGENT}/status\n`
          : `admin token: ${tokenFile}\n`),
    );

    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting at once');
        process.exit(130);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down: finishing requests in flight, ending watches');
      void (async () => {
        try {
          await mounted?.unmount();
          await running.close();
          issued.revokeAll();
          await opened.close();
          lock.release();
          logger.info('stopped');
          process.exit(0);
        } catch (err) {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        }
      })();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } catch (err) {
    await giveUp(err);
  }
}

export function registerServeCommand(program: Command): void {
  const cmd = program
    .command('serve')
    .description('run the agent9 server: the global view over HTTP (data in AGENT9_HOME, default ~/.agent9)')
    .option('--host <host>', 'address to listen on', DEFAULT_HOST)
    .option('--port <port>', `port to listen on (0 picks a free one; env AGENT9_PORT, default ${DEFAULT_PORT})`)
    .option('--allow-remote', 'allow an address other machines can reach (prints a warning)')
    .option('--demo', 'create the demo agent (the echo program) when it is missing')
    .option('--max-body <bytes>', 'largest request body (default 64 MiB)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env AGENT9_LOG)')
    .option('--mount <dir>', 'also serve the global view as a FUSE filesystem at DIR (the start fails when it cannot be made)')
    .option('--mount-optional', 'with --mount: when the mount cannot be made, say why and serve HTTP only')
    .option('--agent <id>', "with --mount: mount this agent's own view at DIR instead of the global view");
  addFuseOptions(cmd).action(action(async (opts: ServeOptions) => serve(opts)));
}
