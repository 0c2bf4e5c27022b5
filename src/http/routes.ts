/**
 * The route table and its one prologue. Every route is a row: method, URL pattern, the operation it
 * counts as, whether it takes a body; its handler gets the request already turned into file-system
 * terms. The prologue, the same for every route:
 *   1. the Authorization header becomes the caller (principal and its view: an agent-scoped token sees
 *      its agent's namespace at `/`, narrowed by the token's paths and read-only flag; access levels
 *      are the views' own, so every transport enforces them alike);
 *   2. the URL (or the route's fixed path) becomes the namespace path, decoded, normalised, checked;
 *   3. a body is the bytes of the file whatever its Content-Type (the header is dropped before
 *      fastify would judge it);
 *   4. whatever a handler throws becomes the JSON error of its code (the app's error handler, error-replies.ts).
 * One exception stands outside the table: the streamed call files (`/agents/import`, streaming.ts), whose
 * body must reach the handle as a stream, which fastify allows only in a scope with its own body parser;
 * they take the caller from the same Authenticator first, as the prologue does.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import type { Authenticator, Caller } from './auth.js';
import type { LongLivedResponses } from './long-lived.js';
import type { McpSessions } from './mcp-endpoint.js';
import type { RouteDoc } from './openapi.js';
import type { HttpMetrics } from './metrics.js';
import { fixedTarget, parseTarget, type Target } from './request-target.js';
import type { FrameCache } from './watch.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The namespace path the request addresses (for error bodies). */
    fsPath: string;
    /** The file operation, for metrics. */
    op: string;
    /** The Content-Type the client gave its body (kept aside: fastify must not judge it). */
    bodyType: string | undefined;
  }
}

/** What every handler shares: the app's long-lived responses, metrics and watch settings. */
export interface AppState {
  longLived: LongLivedResponses;
  metrics: HttpMetrics | undefined;
  /** The event log's newest id: where a watch without a cursor starts. */
  cursor: (() => number) | undefined;
  /** The `retry:` an SSE client waits before reconnecting. */
  retryMs: number;
  /** SSE frames of recent events, shared by this app's watches. */
  frames: FrameCache;
  /** Whether the server can serve requests (its storage open, migrated): what /readyz answers. */
  readiness: () => Readiness;
  /** The MCP sessions of `/mcp`. */
  mcp: McpSessions;
}

/** What a readiness probe learns: ready, or the reason it is not. */
export type Readiness = { ready: true } | { ready: false; reason: string };

/** A request in file-system terms, as the prologue hands it to a handler. */
export interface RouteContext extends Caller {
  request: FastifyRequest;
  reply: FastifyReply;
  /** The namespace path, whether the URL ended with `/`, and the query. */
  target: Target;
  /** The request body (empty when there is none). */
  body: Uint8Array;
  app: AppState;
}

interface RouteRow {
  method: HTTPMethods | 'MOVE';
  /** A fastify URL pattern: `/*` for the file mapping, `/agents/:id/tick` for the agent routes. */
  url: string;
  /** The operation metrics count it as; a handler that does one of several (GET lists or reads) names it. */
  op: string;
  /** The body is file content: taken as bytes whatever its Content-Type (default: every method but GET and HEAD). */
  body?: boolean;
  /** The route of `?watch=1` requests (SSE). */
  watch?: boolean;
  /** What the OpenAPI document says of it (route-docs.ts); the document lists every row either way. */
  doc?: RouteDoc;
}

/** A route of a caller: it runs after the whole prologue. */
export interface CallerRoute extends RouteRow {
  public?: false;
  /** The namespace path, for routes whose URL is not it (the agent routes); default: the URL's. */
  path?: (request: FastifyRequest) => string;
  handler(ctx: RouteContext): Promise<unknown>;
}

/** A route that needs no token and touches no file (OPTIONS, the health probes). */
export interface PublicRoute extends RouteRow {
  public: true;
  handler(ctx: { request: FastifyRequest; reply: FastifyReply; app: AppState }): Promise<unknown>;
}

export type Route = CallerRoute | PublicRoute;

const EMPTY_BODY = new Uint8Array(0);

/**
 * A body is the bytes to write whatever its Content-Type says, so the header is dropped before fastify
 * would judge it (a malformed one would otherwise be refused). It is kept aside for the one check that
 * reads it: a body declared JSON for a message or call file must be JSON (json-bodies.ts).
 */
function ignoreContentType(request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  request.bodyType = request.headers['content-type'];
  delete request.headers['content-type'];
  done();
}

/** Registers every route of the table behind the prologue. */
export function registerRoutes(app: FastifyInstance, routes: readonly Route[], auth: Authenticator, state: AppState): void {
  for (const route of routes) {
    const takesBody = route.body ?? (route.method !== 'GET' && route.method !== 'HEAD');
    const { op } = route;
    const options = {
      method: route.method,
      url: route.url,
      ...(takesBody ? { onRequest: ignoreContentType } : {}),
      ...(route.watch ? { constraints: { watch: 'yes' }, sse: 'manual' as const } : {}),
    };
    if (route.public) {
      const { handler } = route;
      app.route({ ...options, handler: async (request, reply) => ((request.op = op), handler({ request, reply, app: state })) });
      continue;
    }
    const { path, handler } = route;
    app.route({
      ...options,
      handler: async (request, reply) => {
        request.op = op;
        // Who asks comes first: a request without a valid token learns nothing about paths.
        const caller = auth.authenticate(request.headers.authorization);
        const target = path ? fixedTarget(request, path(request)) : parseTarget(request);
        const b = request.body;
        const body = b instanceof Uint8Array ? b : EMPTY_BODY;
        return handler({ request, reply, view: caller.view, cx: caller.cx, token: caller.token, target, body, app: state });
      },
    });
  }
}
