/**
 * `agentctl serve`: the agent9 server. Opens the data directory (AGENT9_HOME), the runtime and its
 * global view, and serves it over HTTP (and, with --mount DIR, as a FUSE filesystem at DIR; without
 * FUSE on the machine it says why and serves HTTP only); logs JSON lines with pino; on SIGINT/SIGTERM
 * it unmounts, stops taking requests, lets those in flight finish, ends watches cleanly, and closes the
 * database.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FsError } from '../../fs/errors.js';
import { DEFAULT_HOST, DEFAULT_PORT, SERVER_FILE } from '../../http/defaults.js';
import { agent9Home } from '../../runtime/home-config.js';
import { HomeLock } from '../../runtime/storage/home-lock.js';
import { action, usage } from '../context.js';
import { addFuseOptions, fuseOptionsOf, type FuseCliOptions } from './mount-verb.js';

interface ServeOptions extends FuseCliOptions {
  mount?: string;
  agent?: string;
  host: string;
  port: string;
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

async function serve(opts: ServeOptions): Promise<void> {
  const home = agent9Home();
  if (!/^\d{1,5}$/.test(opts.port) || Number(opts.port) > 65535) throw usage(`--port takes a port number, not '${opts.port}'`);
  const bodyLimit = opts.maxBody === undefined ? undefined : Number(opts.maxBody);
  if (bodyLimit !== undefined && !(Number.isInteger(bodyLimit) && bodyLimit > 0)) throw usage(`--max-body takes a number of bytes, not '${opts.maxBody}'`);
  const level = opts.logLevel ?? process.env['AGENT9_LOG'] ?? 'info';
  if (!LEVELS.includes(level)) throw usage(`--log-level is one of ${LEVELS.join(', ')}`);
  if (opts.agent !== undefined && opts.mount === undefined) throw usage('--agent says whose view --mount shows: it needs --mount DIR');

  // The heavy parts load only here, so every other verb starts fast.
  const [{ pino }, { Agent9, createDemoAgent, DEMO_AGENT }, { startServer, checkHost, isLoopback, execTokens }] = await Promise.all([
    import('pino'),
    import('../../server/agent9.js'),
    import('../../http/listener.js'),
  ]);
  checkHost(opts.host, !!opts.allowRemote);
  if (!isLoopback(opts.host)) {
    process.stderr.write(`agentctl: warning: listening on ${opts.host}: other machines can reach this server; every request still needs a token\n`);
  }
  mkdirSync(home, { recursive: true, mode: 0o700 });
  // config.json's mount section (who other users are on an --allow-other mount): a bad one stops the start.
  if (opts.mount !== undefined) (await import('../../fuse/index.js')).loadMountUsers(home);
  const lock = HomeLock.acquire(home, () => describeServer(home));

  const logger = pino({ level, base: { pid: process.pid } });
  // Exec programs get AGENT9_URL and an agent-scoped token; a tick that starts before the server
  // listens waits for them.
  let tokensReady: (t: ReturnType<typeof execTokens>) => void = () => undefined;
  const exec = new Promise<ReturnType<typeof execTokens>>((resolve) => (tokensReady = resolve));
  // With a mount they also get AGENT_ROOT, their directory on it.
  let mountEnv: (agentId: string) => Record<string, string> = () => ({});
  const a9 = await Agent9.open({ home, log: logger, execEnv: async (agentId) => ({ ...(await (await exec).env(agentId)), ...mountEnv(agentId) }) });
  if (opts.demo) createDemoAgent(a9);
  if (opts.agent !== undefined && !a9.runtime.agents.has(opts.agent)) {
    await a9.close();
    throw new FsError('ENOENT', `/agents/${opts.agent}`, `no agent '${opts.agent}' to mount (agentctl agents list shows them)`);
  }
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({
      home,
      storage: a9.storage,
      namespace: a9.namespace,
      tokens: a9.tokens,
      registry: a9.registry,
      host: opts.host,
      port: Number(opts.port),
      allowRemote: !!opts.allowRemote,
      logger,
      ...(bodyLimit !== undefined ? { bodyLimit } : {}),
    });
  } catch (err) {
    await a9.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new FsError('EBUSY', '/', `${opts.host}:${opts.port} is already in use (another server? try --port)`);
    if (e.code === 'EADDRNOTAVAIL') throw new FsError('EINVAL', '/', `cannot listen on ${opts.host}: no such local address`);
    throw err;
  }
  const issued = execTokens(server.tokens, server.url);
  tokensReady(issued);

  let mounted: { dir: string; unmount(): Promise<void> } | undefined;
  if (opts.mount !== undefined) {
    const fuse = await import('../../fuse/index.js');
    try {
      const m = await fuse.mountServer(a9, opts.mount, { ...fuseOptionsOf(opts), ...(opts.agent !== undefined ? { agent: opts.agent } : {}) });
      mountEnv = fuse.agentRootEnv(m, opts.agent);
      mounted = m;
      logger.info({ dir: m.dir }, 'mounted');
    } catch (err) {
      // HTTP keeps serving: the mount is a convenience, the server is not.
      const why = err instanceof fuse.FuseUnavailableError ? err.message : `cannot mount ${opts.mount}: ${(err as Error).message}`;
      logger.warn({ dir: opts.mount, err: (err as Error).message }, 'not mounted');
      process.stderr.write(`agentctl: warning: ${why}; serving HTTP only\n`);
    }
  }

  logger.info({ url: server.url, home }, 'agent9 serving');
  const tokenFile = join(home, 'admin.token');
  process.stderr.write(
    `agent9 serving ${server.url} (data in ${home})\n` +
      (mounted
        ? opts.agent === undefined
          ? `mounted at ${mounted.dir}: try ls ${mounted.dir}/agents\n`
          : `agent ${opts.agent}'s own view mounted at ${mounted.dir}: try cat ${mounted.dir}/status\n`
        : '') +
      (opts.demo
        ? `try: curl -H "Authorization: Bearer $(cat ${tokenFile})" ${server.url}/agents/${DEMO_AGENT}/status\n`
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
        await server.close();
        issued.revokeAll();
        await a9.close();
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
}

export function registerServeCommand(program: Command): void {
  const cmd = program
    .command('serve')
    .description('run the agent9 server: the global view over HTTP (data in AGENT9_HOME, default ~/.agent9)')
    .option('--host <host>', 'address to listen on', DEFAULT_HOST)
    .option('--port <port>', 'port to listen on (0 picks a free one)', String(DEFAULT_PORT))
    .option('--allow-remote', 'allow an address other machines can reach (prints a warning)')
    .option('--demo', 'create the demo agent (the echo program) when it is missing')
    .option('--max-body <bytes>', 'largest request body (default 64 MiB)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env AGENT9_LOG)')
    .option('--mount <dir>', 'also serve the global view as a FUSE filesystem at DIR (skipped, with a warning, where FUSE is missing)')
    .option('--agent <id>', "with --mount: mount this agent's own view at DIR instead of the global view");
  addFuseOptions(cmd).action(action(async (opts: ServeOptions) => serve(opts)));
}
