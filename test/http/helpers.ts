/** Servers for HTTP tests: the conformance fixture served on a real loopback socket (port 0). */
import { buildFixtureWithGoals } from '../conformance/fixture-goals.js';
import { Storage, type StorageOptions } from '../../src/runtime/storage/index.js';
import { RuntimeStore } from '../../src/runtime/agent-store/index.js';
import { createRegistry, processMetricsRegistry, registerStorageMetrics } from '../../src/runtime/prometheus-registry.js';
import { TokenStore } from '../../src/runtime/token-store.js';
import { loadTokenConfig } from '../../src/runtime/token-rules.js';
import { mountServerFiles } from '../../src/mounts/global-view.js';
import { serverMigrations } from '../../src/server/capabilities.js';
import { startServer, type RunningServer } from '../../src/http/listener.js';
import type { Namespace } from '../../src/fs/namespace.js';
import { tempDir } from '../helpers.js';

export interface FixtureServer {
  home: string;
  storage: Storage;
  ns: Namespace;
  server: RunningServer;
  url: string;
  token: string;
  /** fetch against the server with the admin token (or `token: null` for none). */
  req(path: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
  close(): Promise<void>;
}

export interface FixtureServerOptions {
  home?: string;
  port?: number;
  heartbeatMs?: number;
  bodyLimit?: number;
  retryMs?: number;
  storage?: StorageOptions;
}

export async function startFixtureServer(options: FixtureServerOptions = {}): Promise<FixtureServer> {
  const home = options.home ?? tempDir('agent9-http-');
  const storage = Storage.open(home, { ...options.storage, migrations: serverMigrations() });
  const ns = buildFixtureWithGoals(storage);
  // What the assembly gives a served global view: /runtime/tokens and /runtime/metrics.
  const tokens = new TokenStore(storage, loadTokenConfig(home));
  const registry = createRegistry({ processMetrics: false });
  registerStorageMetrics(registry, storage);
  mountServerFiles(ns, { tokens, metrics: [registry, processMetricsRegistry()] });
  const server = await startServer({
    home,
    storage,
    namespace: ns,
    tokens,
    registry,
    port: options.port ?? 0,
    ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
    ...(options.bodyLimit !== undefined ? { bodyLimit: options.bodyLimit } : {}),
    ...(options.retryMs !== undefined ? { retryMs: options.retryMs } : {}),
  });
  let closed = false;
  return {
    home,
    storage,
    ns,
    server,
    url: server.url,
    token: server.adminToken,
    req(path, init = {}) {
      const { token, ...rest } = init;
      const headers = new Headers(rest.headers);
      const t = token === undefined ? server.adminToken : token;
      if (t !== null && !headers.has('authorization')) headers.set('authorization', `Bearer ${t}`);
      return fetch(server.url + path, { ...rest, headers });
    },
    async close() {
      if (closed) return;
      closed = true;
      await server.close();
      tokens.close();
      storage.close();
    },
  };
}

/**
 * Registers stand-in agents in the agent table (the fixture serves data trees at /agents/<id>, not the
 * runtime), so that tokens can be scoped to them: a token of an agent needs the agent.
 */
export function registerAgents(storage: Storage, ...ids: string[]): void {
  const store = new RuntimeStore(storage.db);
  for (const id of ids) {
    store.insertAgent({ id, state: 'active', program: '{"type":"echo"}', env: '{}', limits: '{}', schedule: '{}', inbox_policy: '{}', created_at: Date.now() });
  }
}
