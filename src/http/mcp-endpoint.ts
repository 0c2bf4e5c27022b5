/**
 * `/mcp`: the MCP server over streamable HTTP (the SDK's transport), rows of the route table like every
 * other route, so the bearer token is checked by the same prologue and decides the view: an admin token
 * gets the global view, an agent-scoped token its agent's namespace at `/` (src/mcp works on that view).
 *   POST /mcp     JSON-RPC messages; an `initialize` without `Mcp-Session-Id` opens a session
 *   GET /mcp      the session's stream of server messages (SSE): resource-updated notifications
 *   DELETE /mcp   ends the session
 * A session belongs to the token that opened it (another token gets 404, as for an unknown session),
 * ends when that token is revoked or expires, after IDLE_MS without a request or a stream, and at
 * shutdown; its GET stream is a long-lived response like a watch.
 */
import { randomUUID } from 'node:crypto';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { FsError } from '../fs/errors.js';
import { createMcpServer } from '../mcp/index.js';
import { isRevoked, type Revocation, type TokenInfo } from '../runtime/token-store.js';
import { McpHttpTransport } from './mcp-transport.js';
import { DOCS } from './route-docs.js';
import type { Route, RouteContext } from './routes.js';

/** Sessions open at once on one server; one more `initialize` is EAGAIN. */
export const MAX_SESSIONS = 1000;
/** A session with no request and no open stream for this long is closed. */
export const IDLE_MS = 30 * 60_000;
const SWEEP_MS = 60_000;

interface Session {
  id: string;
  transport: McpHttpTransport;
  close(): Promise<void>;
  token: TokenInfo;
  lastUsed: number;
  streams: number;
}

/** The body as text, without a copy (fastify hands it over as a Buffer). */
function utf8Text(body: Uint8Array): string {
  return Buffer.isBuffer(body) ? body.toString('utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
}

/** A JSON-RPC error answer (what MCP clients read), outside any session. */
function rpcError(ctx: RouteContext, status: number, code: number, message: string) {
  return ctx.reply
    .code(status)
    .header('cache-control', 'no-store')
    .type('application/json')
    .send(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }) + '\n');
}

export class McpSessions {
  private readonly sessions = new Map<string, Session>();
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor() {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** POST, GET and DELETE of `/mcp`. */
  async handle(ctx: RouteContext): Promise<unknown> {
    const { request, reply } = ctx;
    request.op = 'mcp';
    const version = request.headers['mcp-protocol-version'];
    if (typeof version === 'string' && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return rpcError(ctx, 400, -32000, `Bad Request: unsupported MCP-Protocol-Version ${version} (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`);
    }
    let message: unknown;
    if (request.method === 'POST') {
      try {
        message = JSON.parse(utf8Text(ctx.body)) as unknown;
      } catch {
        return rpcError(ctx, 400, -32700, 'Parse error: the body is not JSON');
      }
      if (!isJsonRpc(message)) return rpcError(ctx, 400, -32600, 'Invalid Request: not a JSON-RPC 2.0 message (or a batch of them)');
    }
    const id = request.headers['mcp-session-id'];
    let session: Session | undefined;
    if (typeof id === 'string') {
      session = this.sessions.get(id);
      // Another token's session is not this token's business: unknown, as an expired one is.
      if (!session || session.token.id !== ctx.token.id) return rpcError(ctx, 404, -32001, 'Session not found');
    } else if (request.method === 'POST' && opensSession(message)) {
      session = this.open(ctx);
    } else {
      return rpcError(ctx, 400, -32000, 'Bad Request: no Mcp-Session-Id header (a session starts with initialize)');
    }
    session.lastUsed = Date.now();
    switch (request.method) {
      case 'POST':
        await session.transport.post(reply, message);
        return reply;
      case 'GET': {
        if (!String(request.headers.accept ?? '').includes('text/event-stream')) return rpcError(ctx, 406, -32000, 'Not Acceptable: GET /mcp is an SSE stream (Accept: text/event-stream)');
        reply.hijack();
        if (!session.transport.openStream(reply.raw)) {
          reply.raw.writeHead(409, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'Conflict: this session has its stream open already' }, id: null }));
          return reply;
        }
        this.trackStream(ctx, session);
        return reply;
      }
      default:
        await session.close();
        return reply.code(200).header('mcp-session-id', session.id).send();
    }
  }

  private open(ctx: RouteContext): Session {
    if (this.sessions.size >= MAX_SESSIONS) throw new FsError('EAGAIN', '/mcp', `${MAX_SESSIONS} MCP sessions are open; close one (DELETE /mcp) or try later`);
    const server = createMcpServer({ view: ctx.view, cx: ctx.cx, ...(ctx.app.cursor ? { cursor: ctx.app.cursor } : {}) });
    const transport = new McpHttpTransport(randomUUID());
    const session: Session = {
      id: transport.sessionId,
      transport,
      token: ctx.token,
      lastUsed: Date.now(),
      streams: 0,
      close: async () => {
        this.sessions.delete(session.id);
        await server.close().catch(() => undefined);
      },
    };
    this.sessions.set(session.id, session);
    // connect() only installs the handlers and starts the transport, which has nothing to start.
    void server.connect(transport);
    return session;
  }

  /** The GET stream ends with its token (revoked, expired) and at shutdown, as a watch does: the session with it. */
  private trackStream(ctx: RouteContext, session: Session): void {
    session.streams++;
    ctx.reply.raw.once('close', () => {
      session.streams--;
      session.lastUsed = Date.now();
    });
    ctx.app.longLived.track(ctx.reply.raw, ctx.token, () => void session.close());
  }

  /** Closes the sessions of revoked tokens (their streams end through longLived too). */
  revoke(r: Revocation): void {
    for (const s of [...this.sessions.values()]) if (isRevoked(s.token, r)) void s.close();
  }

  private sweep(): void {
    const now = Date.now();
    for (const s of [...this.sessions.values()]) {
      const expired = s.token.expiresAt !== undefined && s.token.expiresAt <= now;
      if (expired || (s.streams === 0 && now - s.lastUsed > IDLE_MS)) void s.close();
    }
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
  }
}

const isInitialize = (m: unknown): boolean => (m as { method?: unknown } | null)?.method === 'initialize';

/** An initialize request (alone or in a batch) opens a session. */
function opensSession(message: unknown): boolean {
  return Array.isArray(message) ? message.some(isInitialize) : isInitialize(message);
}

/** A JSON-RPC 2.0 message or a non-empty batch of them (the SDK's Server checks each one further). */
function isJsonRpc(message: unknown): boolean {
  const one = (m: unknown) => typeof m === 'object' && m !== null && (m as { jsonrpc?: unknown }).jsonrpc === '2.0';
  return Array.isArray(message) ? message.length > 0 && message.every(one) : one(message);
}

const handle = (ctx: RouteContext) => ctx.app.mcp.handle(ctx);

/** `/mcp` in the route table (static URLs: they come before the file mapping's `/*`). */
export const mcpRoutes: readonly Route[] = [
  { method: 'POST', url: '/mcp', op: 'mcp', path: () => '/mcp', handler: handle, doc: DOCS.mcpPost },
  { method: 'GET', url: '/mcp', op: 'mcp', path: () => '/mcp', handler: handle, doc: DOCS.mcpGet },
  { method: 'DELETE', url: '/mcp', op: 'mcp', path: () => '/mcp', handler: handle, doc: DOCS.mcpDelete },
];
