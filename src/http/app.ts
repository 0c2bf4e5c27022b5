/**
 * The HTTP mapping of a namespace (CONTRACT.md section 9). It only translates: every request becomes
 * file operations on the caller's view of the served FileService, and every FsError becomes the status
 * ERROR_TABLE gives its code. The routes are a table (file-routes.ts, agent-routes.ts) behind one
 * prologue (routes.ts); this file sets up fastify around them: body parsing, errors, metrics, shutdown.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { fastifySSE } from '@fastify/sse';
import { FsError } from '../fs/errors.js';
import { agentRoutes } from './agent-routes.js';
import type { Authenticator } from './auth.js';
import { corsHook, type CorsConfig } from './cors.js';
import { httpError, sendError } from './error-replies.js';
import { fileRoutes } from './file-routes.js';
import { LongLivedResponses } from './long-lived.js';
import { McpSessions, mcpRoutes } from './mcp-endpoint.js';
import type { HttpMetrics } from './metrics.js';
import { errorPath, watchConstraint } from './request-target.js';
import { healthRoutes } from './health.js';
import { registerRoutes, type AppState, type Readiness, type Route } from './routes.js';
import { FrameCache } from './watch.js';
import { registerStreamedCalls, STREAMED_CALL_ROUTES } from './streaming.js';
import { openApiDocument } from './openapi.js';
import { DOCS } from './route-docs.js';
import { agent9Version } from '../runtime/version.js';

export interface AppOptions {
  /** Turns the Authorization header into the caller's principal and view of the namespace. */
  auth: Authenticator;
  /**
   * The newest event id of the event log. A watch started without a cursor starts from it, so its
   * first SSE frame can carry `id:` and a client that reconnects before any event loses nothing.
   */
  cursor?: () => number;
  metrics?: HttpMetrics;
  /** A pino logger (fastify's); default: none. */
  logger?: FastifyBaseLogger;
  /** SSE heartbeat comment interval (default 15 s). */
  heartbeatMs?: number;
  /** Largest request body in bytes (default 64 MiB); larger gets 413 EFBIG. */
  bodyLimit?: number;
  /** The `retry:` an SSE client waits before reconnecting (default 1 s). */
  retryMs?: number;
  /** Whether the server can serve (storage open, migrated), for /readyz; default: always. */
  readiness?: () => Readiness;
  /** The origins whose pages may call the API (CORS); default: none. */
  cors?: CorsConfig;
}

export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;
export const DEFAULT_HEARTBEAT_MS = 15_000;

/** The OpenAPI document of every route (the table and the streamed call files), made once, when first asked for. */
let openApiText: string | undefined;
export function openApiJson(): string {
  openApiText ??= JSON.stringify(openApiDocument([...ROUTES, ...STREAMED_CALL_ROUTES], agent9Version()), null, 2) + '\n';
  return openApiText;
}

const openApiRoute: Route = {
  method: 'GET',
  url: '/openapi.json',
  op: 'openapi',
  public: true,
  doc: DOCS.openapi,
  handler: async ({ reply }) => reply.header('cache-control', 'no-cache').type('application/json').send(openApiJson()),
};

/** Every route the app serves: the health probes, this API's document, MCP and the agent routes (more specific URLs), and the file mapping. */
export const ROUTES: readonly Route[] = [...healthRoutes, openApiRoute, ...mcpRoutes, ...agentRoutes, ...fileRoutes];

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const metrics = options.metrics;
  const auth = options.auth;
  /** Watches and streams, ended at shutdown and when their token is revoked or expires. */
  const longLived = new LongLivedResponses();
  const mcp = new McpSessions();
  const stopRevocations = auth.onRevoke?.((r) => {
    longLived.revoke(r);
    mcp.revoke(r);
  });
  const state: AppState = {
    longLived,
    metrics,
    cursor: options.cursor,
    retryMs: options.retryMs ?? 1000,
    frames: new FrameCache(),
    readiness: options.readiness ?? (() => ({ ready: true })),
    mcp,
  };

  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    // Requests are counted in /runtime/metrics; a log line each would cost more than serving a small file.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request: only a 5xx logs (with its path and code), and a pino child each
    // request would cost every request what only that one needs.
    childLoggerFactory: (logger) => logger,
    exposeHeadRoutes: false,
    bodyLimit,
    routerOptions: { maxParamLength: 500, constraints: { watch: watchConstraint } },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    frameworkErrors: (err, request, reply) => {
      void sendError(request, reply, httpError(err, errorPath(request)));
    },
  });
  app.decorateRequest('fsPath', '');
  app.decorateRequest('op', 'other');
  app.decorateRequest('bodyType', undefined);
  app.addHttpMethod('MOVE', { hasBody: true });

  await app.register(fastifySSE, { heartbeatInterval: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS });

  // Bodies are bytes for the file they are written to, whatever their Content-Type says.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err, request, reply) => sendError(request, reply, httpError(err, errorPath(request))));
  app.setNotFoundHandler((request, reply) => {
    sendError(request, reply, new FsError('ENOSYS', errorPath(request), `method ${request.method} is not supported`));
  });

  if (metrics) {
    app.addHook('onResponse', (request, reply, done) => {
      metrics.record(request.method, request.op, reply.statusCode, reply.elapsedTime);
      done();
    });
  }

  // Watches and streams would keep the server open forever: end them first, cleanly.
  app.addHook('preClose', async () => {
    // Requests in flight when shutdown began leave idle keep-alive sockets behind as they finish:
    // close those until the server is closed (close() waits for every socket).
    const sweeper = setInterval(() => app.server.closeIdleConnections(), 25);
    sweeper.unref();
    app.server.once('close', () => clearInterval(sweeper));
    stopRevocations?.();
    await Promise.all([longLived.endAll(), mcp.closeAll()]);
    // Once they have flushed, their keep-alive sockets are idle: close them, or close() waits for them.
    app.server.closeIdleConnections();
  });

  // CORS headers go on every answer to a listed origin, errors and streams too: before any route runs.
  const cors = options.cors && corsHook(options.cors);
  if (cors) app.addHook('onRequest', cors);

  registerRoutes(app, ROUTES, auth, state);
  // Bodies streamed into their call (an import), not collected first: a scope with its own body parser.
  await registerStreamedCalls(app, (request) => auth.authenticate(request.headers.authorization));
  return app;
}
