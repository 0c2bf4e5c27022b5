/**
 * Serving a namespace over HTTP: the admin token file on first start, the fastify app, the listening
 * socket, and `$AGENT9_HOME/server.json` so that agentctl on this machine finds the URL without flags.
 * What the namespace holds (`/runtime/tokens`, `/runtime/metrics`) is the assembly's business.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { FsError } from '../fs/errors.js';
import type { Namespace } from '../fs/namespace.js';
import type { Storage } from '../runtime/storage/index.js';
import type { TokenStore } from '../runtime/token-store.js';
import { buildApp } from './app.js';
import { TokenAuthenticator } from './auth.js';
import { loadCorsConfig, type CorsConfig } from './cors.js';
import { HttpMetrics } from './metrics.js';

import { DEFAULT_HOST, DEFAULT_PORT, SERVER_FILE } from './defaults.js';

export { DEFAULT_HOST, DEFAULT_PORT, SERVER_FILE };

export interface ServerOptions {
  /** AGENT9_HOME: where admin.token and server.json live. */
  home: string;
  storage: Storage;
  /** The namespace to serve (the global view). */
  namespace: Namespace;
  /** The tokens requests are checked against: the same store the namespace's /runtime/tokens manages. */
  tokens: TokenStore;
  /** The registry the HTTP figures go into (the one /runtime/metrics reads). */
  registry: Registry;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Listening on a non-loopback address must be asked for. */
  allowRemote?: boolean;
  logger?: FastifyBaseLogger;
  heartbeatMs?: number;
  bodyLimit?: number;
  retryMs?: number;
  /** The origins allowed to call from a browser; default: `http.cors` of `<home>/config.json` (none). */
  cors?: CorsConfig;
}

/**
 * Environment for exec programs: the server's URL and a token scoped to the agent (it sees its own
 * namespace at `/`). One token per agent per server run, renewed before it expires; `revokeAll` at
 * shutdown.
 */
export function execTokens(tokens: TokenStore, url: string, preferredTtlMs = 24 * 3600_000) {
  const ttlMs = Math.min(preferredTtlMs, tokens.maxTtlMs);
  // Those a crashed run left behind expire; then they go.
  tokens.purgeExpired(EXEC_TOKEN_PREFIX);
  const issued = new Map<string, { token: string; id: string; expiresAt: number }>();
  return {
    env: async (agentId: string): Promise<Record<string, string>> => {
      let t = issued.get(agentId);
      if (!t || t.expiresAt - Date.now() < ttlMs / 4 || !tokens.get(t.id)) {
        if (t) tokens.revoke(t.id);
        const { token, info } = tokens.create({ name: `${EXEC_TOKEN_PREFIX}${agentId}`, agent: agentId, ttlMs });
        t = { token, id: info.id, expiresAt: info.expiresAt! };
        issued.set(agentId, t);
      }
      return { AGENT9_URL: url, AGENT9_TOKEN: t.token };
    },
    revokeAll(): void {
      for (const t of issued.values()) tokens.revoke(t.id);
      issued.clear();
    },
  };
}

const EXEC_TOKEN_PREFIX = 'exec ';

export interface RunningServer {
  url: string;
  app: FastifyInstance;
  tokens: TokenStore;
  adminToken: string;
  registry: Registry;
  /** Ends watches and streams cleanly, lets in-flight requests finish, stops listening. */
  close(): Promise<void>;
}

/** True for 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

export function checkHost(host: string, allowRemote: boolean): void {
  if (!isLoopback(host) && !allowRemote) {
    throw new FsError(
      'EPERM',
      '/',
      `refusing to listen on ${host}, which other machines can reach; pass --allow-remote to do it anyway (every request still needs a token)`,
    );
  }
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? DEFAULT_HOST;
  checkHost(host, !!options.allowRemote);
  if (!isLoopback(host)) {
    options.logger?.warn({ host }, `listening on ${host}: reachable from other machines; keep tokens secret and prefer TLS in front`);
  }
  const { storage, namespace, tokens, registry } = options;
  const admin = tokens.ensureAdminToken(options.home);
  if (admin.created) options.logger?.info({ file: admin.file }, 'created the admin token');

  const metrics = new HttpMetrics(registry);
  // A bad `http` section stops the start here, before anything listens.
  const cors = options.cors ?? loadCorsConfig(options.home);

  const app = await buildApp({
    auth: new TokenAuthenticator(tokens, namespace),
    cursor: () => storage.eventStore.lastId(),
    readiness: () => storage.readiness(),
    cors,
    metrics,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
    ...(options.bodyLimit !== undefined ? { bodyLimit: options.bodyLimit } : {}),
    ...(options.retryMs !== undefined ? { retryMs: options.retryMs } : {}),
  });
  await app.listen({ host, port: options.port ?? DEFAULT_PORT });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? DEFAULT_PORT);
  const urlHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const url = `http://${urlHost === '0.0.0.0' ? '127.0.0.1' : urlHost === '[::]' ? '[::1]' : urlHost}:${port}`;
  const serverFile = join(options.home, SERVER_FILE);
  writeFileSync(serverFile, JSON.stringify({ url, pid: process.pid, started_at: Date.now() }) + '\n', { mode: 0o644 });

  let closing: Promise<void> | undefined;
  return {
    url,
    app,
    tokens,
    adminToken: admin.token,
    registry,
    close() {
      closing ??= (async () => {
        await app.close();
        try {
          const written = JSON.parse(readFileSync(serverFile, 'utf8')) as { pid?: number };
          if (written.pid === process.pid) rmSync(serverFile, { force: true });
        } catch {
          /* already gone */
        }
      })();
      return closing;
    },
  };
}
