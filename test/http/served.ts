/**
 * The assembled server (Agent9: agents, /budget, /compute, /containers) served on a real loopback
 * socket, with what a test needs to act as a user would: requests with the admin token or an
 * agent-scoped one, and agents with their own tokens.
 */
import { startServer, type RunningServer } from '../../src/http/listener.js';
import { Agent9, type Agent9Options } from '../../src/server/agent9.js';
import { tempDir } from '../helpers.js';

export interface Served {
  a9: Agent9;
  server: RunningServer;
  /** fetch with the admin token, or `token`. */
  call(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
  /** The JSON answer of a request that must succeed ({} for an empty body). */
  ok<T = Record<string, unknown>>(path: string, init?: RequestInit & { token?: string }): Promise<T>;
  /** Creates an agent (program echo) and an agent-scoped token for it, as an admin would. */
  agentWithToken(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function serveAgent9(options: Partial<Agent9Options> = {}): Promise<Served> {
  const home = options.home ?? tempDir('agent9-served-');
  const a9 = await Agent9.open({ scheduler: false, ...options, home });
  const server = await startServer({ home, storage: a9.storage, namespace: a9.namespace, tokens: a9.tokens, registry: a9.registry, port: 0 });
  const call = (path: string, init: RequestInit & { token?: string } = {}) => {
    const { token, ...rest } = init;
    const headers = new Headers(rest.headers);
    headers.set('authorization', `Bearer ${token ?? server.adminToken}`);
    return fetch(server.url + path, { ...rest, headers });
  };
  const ok = async <T = Record<string, unknown>>(path: string, init: RequestInit & { token?: string } = {}): Promise<T> => {
    const res = await call(path, init);
    const body = await res.text();
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${body}`);
    return (body ? JSON.parse(body) : {}) as T;
  };
  return {
    a9,
    server,
    call,
    ok,
    async agentWithToken(name) {
      await ok('/agents/new', { method: 'POST', body: JSON.stringify({ name, program: 'echo' }) });
      return (await ok<{ token: string }>('/runtime/tokens/new', { method: 'POST', body: JSON.stringify({ agent: name }) })).token;
    },
    async close() {
      await server.close();
      await a9.close();
    },
  };
}
