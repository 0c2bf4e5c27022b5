/**
 * The HTTP mapping of a namespace (CONTRACT.md section 9). It only translates: every request becomes
 * file operations on the caller's view of the served FileService, and every FsError becomes the status
 * ERROR_TABLE gives its code.
 *
 *   GET /p        read (a directory lists; a stream file streams until it ends)
 *   GET /p/       list: JSON [{name, type, kind, size, mode, mtime, ctime, version}]
 *   GET /p?watch=1  SSE watch of a file or subtree; Last-Event-ID or ?from= resumes
 *   HEAD /p       stat in headers
 *   PUT /p        write the whole file (If-Match / If-None-Match guard it); PUT /p/ makes a directory
 *   POST /p       call file: the answer; message file: one message; writable view: replace
 *   POST /p?append=1  append (data file) or send one message
 *   DELETE /p     remove (a directory must be empty)
 *   MOVE /p       rename to the Destination header
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyServerOptions, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { fastifySSE } from '@fastify/sse';
import { Readable } from 'node:stream';
import { FsError } from '../fs/errors.js';
import { callFile, readAll, readStat, writeAll } from '../fs/ops.js';
import { joinPath, normalizePath, validateName } from '../fs/paths.js';
import { NO_LIMIT, type Cx, type FileService, type FsEvent, type Stat, type WriteFileOptions } from '../fs/types.js';
import type { Authenticator, Caller } from './auth.js';
import { contentTypeOf, JSON_TYPE, TEXT } from './content-type.js';
import { ALLOW, httpError, sendError } from './errors.js';
import { LongLivedResponses, type EndResponse } from './long-lived.js';
import type { HttpMetrics } from './metrics.js';
import { spaceJson } from './space.js';
import { registerStreamedCalls, sendSizedAtOpen } from './streaming.js';

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
}

export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;

/**
 * SSE frames of recent events: one event fanned out to many watchers is serialised once. Keyed by id
 * and path (a watcher through an agent-scoped token sees the same event under another path).
 */
class FrameCache {
  private readonly frames = new Map<string, string>();

  of(ev: FsEvent): string {
    const key = `${ev.id} ${ev.path}`;
    let frame = this.frames.get(key);
    if (frame === undefined) {
      frame = `id: ${ev.id}\nevent: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`;
      if (this.frames.size >= 256) this.frames.delete(this.frames.keys().next().value!);
      this.frames.set(key, frame);
    }
    return frame;
  }
}

/** Resolves when a response that refused a write can take more (or is gone). */
function drained(res: import('node:http').ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
export const DEFAULT_HEARTBEAT_MS = 15_000;

declare module 'fastify' {
  interface FastifyRequest {
    /** The namespace path the request addresses (for error bodies). */
    fsPath: string;
    /** The file operation, for metrics. */
    op: string;
  }
}

/** The namespace path, whether it ended with `/`, and the query, from the raw URL. */
interface Target {
  path: string;
  slash: boolean;
  query: URLSearchParams;
}

function parseTarget(request: FastifyRequest): Target {
  const url = request.url;
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  request.fsPath = rawPath;
  let decoded = rawPath;
  if (rawPath.includes('%')) {
    try {
      decoded = decodeURIComponent(rawPath);
    } catch {
      throw new FsError('EINVAL', rawPath, 'malformed percent-encoding in the URL');
    }
    request.fsPath = decoded.replace(/\0/g, '\\0');
  }
  const path = normalizePath(decoded);
  request.fsPath = path;
  return { path, slash: path !== '/' && decoded.endsWith('/'), query: q < 0 ? NO_QUERY : new URLSearchParams(url.slice(q + 1)) };
}

/** Shared by every request without a query string (never modified). */
const NO_QUERY = new URLSearchParams();

/** `?watch=1` (or `?watch`, `?watch=true`): the request is an SSE watch. */
function isWatchUrl(url: string | undefined): boolean {
  const q = url?.indexOf('?') ?? -1;
  return q >= 0 && url!.includes('watch', q) && flag(new URLSearchParams(url!.slice(q + 1)), 'watch');
}

/**
 * Routes watch requests to their own route, so that only watches pay for the SSE machinery.
 * (find-my-way constraint: unconstrained routes take everything that is not a watch.)
 */
type ConstraintStrategy = NonNullable<NonNullable<FastifyServerOptions['routerOptions']>['constraints']>[string];
type StrategyStorage = ReturnType<ConstraintStrategy['storage']>;

const watchConstraint: ConstraintStrategy = {
  name: 'watch',
  storage() {
    const handlers = new Map<string, Parameters<StrategyStorage['set']>[1]>();
    return {
      get: (value: string) => handlers.get(value) ?? null,
      set: (value: string, store) => void handlers.set(value, store),
    };
  },
  // No value (undefined) lets the unconstrained routes match.
  deriveConstraint: (req) => (isWatchUrl(req.url) ? 'yes' : (undefined as unknown as string)),
  mustMatchWhenDerived: true,
};

/** The path an error names: the parsed one, or the best reading of the URL when parsing never ran. */
function errorPath(request: FastifyRequest): string {
  if (request.fsPath) return request.fsPath;
  const raw = (request.url ?? '/').split('?')[0]!;
  try {
    return normalizePath(decodeURIComponent(raw));
  } catch {
    return raw.replace(/\0/g, '\\0');
  }
}

/**
 * A body is the bytes to write whatever its Content-Type says, so the header is dropped before fastify
 * would judge it (a malformed one would otherwise be refused).
 */
function ignoreContentType(request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  delete request.headers['content-type'];
  done();
}

function flag(query: URLSearchParams, name: string): boolean {
  const v = query.get(name);
  return v !== null && v !== '0' && v.toLowerCase() !== 'false' && v.toLowerCase() !== 'no';
}

function bodyOf(request: FastifyRequest): Uint8Array {
  const b = request.body;
  return b instanceof Uint8Array ? b : new Uint8Array(0);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const etagOf = (st: Stat): string => `"${st.version}"`;

/** HTTP dates of recent mtimes: the same file read again formats no date. */
const httpDates = new Map<number, string>();
function httpDate(ms: number): string {
  let d = httpDates.get(ms);
  if (d === undefined) {
    d = new Date(ms).toUTCString();
    if (httpDates.size >= 1024) httpDates.clear();
    httpDates.set(ms, d);
  }
  return d;
}

/** Stat as headers, for HEAD and beside every read. */
function statHeaders(reply: FastifyReply, st: Stat): FastifyReply {
  return reply
    .header('etag', etagOf(st))
    .header('last-modified', httpDate(st.mtime))
    .header('x-agent9-type', st.type)
    .header('x-agent9-kind', st.kind)
    .header('x-agent9-size', String(st.size))
    .header('x-agent9-mode', st.mode.toString(8).padStart(4, '0'))
    .header('x-agent9-version', String(st.version))
    .header('x-agent9-mtime', String(st.mtime))
    .header('x-agent9-ctime', String(st.ctime));
}

function listingJson(entries: { name: string; stat: Stat }[]): string {
  const rows = entries
    .map((e) => ({
      name: e.name,
      type: e.stat.type,
      kind: e.stat.kind,
      size: e.stat.size,
      mode: e.stat.mode,
      mtime: e.stat.mtime,
      ctime: e.stat.ctime,
      version: e.stat.version,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return JSON.stringify(rows) + '\n';
}

/** Parses one entity tag (`"5"`, `5`); weak tags never match (If-Match uses strong comparison). */
function tagVersion(tag: string): number | undefined {
  const t = tag.trim();
  const m = /^"?(\d{1,15})"?$/.exec(t);
  return m ? Number(m[1]) : undefined;
}

/** The version a write must find, from If-Match / If-None-Match; ESTALE (412) when it cannot hold. */
async function precondition(request: FastifyRequest, view: FileService, path: string, cx: Cx): Promise<number | undefined> {
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== '*') throw new FsError('EINVAL', path, 'If-None-Match on a write must be *');
    return 0;
  }
  const ifMatch = request.headers['if-match'];
  if (ifMatch === undefined) return undefined;
  const current = await view.stat(path, cx).then(
    (st) => st.version,
    (err: unknown) => {
      if (err instanceof FsError && err.code === 'ENOENT') return undefined;
      throw err;
    },
  );
  if (ifMatch.trim() === '*') {
    if (current === undefined) throw new FsError('ESTALE', path, 'If-Match: * but the file does not exist');
    return current;
  }
  const wanted = ifMatch.split(',').map(tagVersion);
  if (current === undefined) throw new FsError('ESTALE', path, `version is none (no such file), not ${ifMatch.trim()}`);
  if (!wanted.includes(current)) throw new FsError('ESTALE', path, `version is ${current}, not ${ifMatch.trim()}`);
  return current;
}

function parseCursor(text: string | undefined | null, path: string, what: string): number | undefined {
  if (text === undefined || text === null || text === '') return undefined;
  if (!/^\d{1,15}$/.test(text.trim())) throw new FsError('EINVAL', path, `${what} must be an event id (a non-negative integer)`);
  return Number(text.trim());
}

function parseMode(text: string | null, path: string): number | undefined {
  if (text === null) return undefined;
  if (!/^0?[0-7]{3,4}$/.test(text)) throw new FsError('EINVAL', path, `mode must be octal permission bits like 0644, not '${text}'`);
  return parseInt(text, 8) & 0o7777;
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const retryMs = options.retryMs ?? 1000;
  const metrics = options.metrics;
  const auth = options.auth;
  /** Watches and streams, ended at shutdown and when their token is revoked or expires. */
  const longLived = new LongLivedResponses();
  const stopRevocations = auth.onRevoke?.((r) => longLived.revoke(r));
  const frames = new FrameCache();

  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    // Requests are counted in /runtime/metrics; a log line each would cost more than serving a small file.
    logController: new LogController({ disableRequestLogging: true }),
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
    await longLived.endAll();
    // Once they have flushed, their keep-alive sockets are idle: close them, or close() waits for them.
    app.server.closeIdleConnections();
  });

  const caller = (request: FastifyRequest): Caller => auth.authenticate(request.headers.authorization);

  // --- reads ------------------------------------------------------------------------------------

  async function list(request: FastifyRequest, reply: FastifyReply, { view, cx }: Caller, path: string) {
    request.op = 'list';
    const entries = await view.readdir(path, cx);
    return reply.header('cache-control', 'no-cache').header('x-agent9-type', 'dir').type(JSON_TYPE).send(listingJson(entries));
  }

  async function streamBody(request: FastifyRequest, reply: FastifyReply, { view, cx, token }: Caller, path: string, st: Stat) {
    request.op = 'stream';
    const handle = await view.open(path, { read: true }, cx);
    let closed = false;
    const end: EndResponse = (reason) => {
      if (closed) return;
      closed = true;
      metrics?.streams.dec();
      void handle.close().catch(() => undefined);
      // A revoked or expired token: cut the body off (no last chunk), so the client cannot take it for the stream's end.
      if (reason) reply.raw.destroy();
    };
    longLived.track(reply.raw, token, end);
    metrics?.streams.inc();
    reply.raw.on('close', end);
    async function* chunks() {
      try {
        for (;;) {
          const chunk = await handle.read(64 * 1024, 0);
          if (chunk.length === 0) return;
          yield asBuffer(chunk);
        }
      } finally {
        end();
      }
    }
    statHeaders(reply, st).removeHeader('etag');
    reply
      .header('cache-control', 'no-cache')
      .header('x-accel-buffering', 'no')
      .type(TEXT)
      .send(Readable.from(chunks(), { objectMode: false }));
    // Headers go out now, not with the first datum: a client may wait for them before it writes.
    if (!reply.raw.headersSent && reply.raw.hasHeader('x-agent9-kind')) reply.raw.flushHeaders();
    return reply;
  }

  async function statfs(request: FastifyRequest, reply: FastifyReply, { view, cx }: Caller, path: string) {
    request.op = 'statfs';
    const space = view.statfs ? await view.statfs(path, cx) : NO_LIMIT;
    return reply.header('cache-control', 'no-cache').type(JSON_TYPE).send(JSON.stringify(spaceJson(space)));
  }

  async function read(request: FastifyRequest, reply: FastifyReply, c: Caller, t: Target) {
    const { view, cx } = c;
    if (flag(t.query, 'statfs')) return statfs(request, reply, c, t.path);
    if (t.slash) return list(request, reply, c, t.path);
    // One step for data files (stat and bytes from one snapshot, so the ETag is exactly theirs).
    const { stat: st, data } = await readStat(view, t.path, cx);
    if (st.type === 'dir') return list(request, reply, c, t.path);
    if (st.kind === 'stream') return streamBody(request, reply, c, t.path, st);
    request.op = 'read';
    // A view that learns its size only at open (an export) may be large: one handle, streamed when it is.
    if (st.kind === 'view' && st.size === 0 && !data) return sendSizedAtOpen(reply, view, t.path, cx, st, readHeaders);
    // Only data files have versions that are the whole truth of their content; views may not bump theirs.
    if (st.kind === 'data') {
      const inm = request.headers['if-none-match'];
      if (inm !== undefined && inm.split(',').some((tag) => tagVersion(tag) === st.version)) {
        return statHeaders(reply.code(304), st).send();
      }
    }
    // Else the stat comes first: the ETag is never newer than the bytes, so an If-Match built on it is safe.
    const bytes = data ?? (await readAll(view, t.path, cx));
    return readHeaders(reply, st).header('content-type', contentTypeOf(t.path, bytes)).send(asBuffer(bytes));
  }

  /** A read carries what caching needs; HEAD carries the whole stat. */
  function readHeaders(reply: FastifyReply, st: Stat): FastifyReply {
    return reply.header('etag', etagOf(st)).header('last-modified', httpDate(st.mtime)).header('cache-control', 'no-cache');
  }

  async function watch(request: FastifyRequest, reply: FastifyReply, { view, cx, token }: Caller, t: Target) {
    request.op = 'watch';
    const path = t.path;
    if (!view.watch) throw new FsError('ENOSYS', path, 'this namespace cannot be watched');
    // Access errors surface as a status before the stream starts; a path that does not exist yet can be watched.
    await view.stat(path, cx).catch((err: unknown) => {
      if (!(err instanceof FsError && err.code === 'ENOENT')) throw err;
    });
    const lastEventId = request.headers['last-event-id'];
    let from = parseCursor(typeof lastEventId === 'string' ? lastEventId : undefined, path, 'Last-Event-ID');
    from ??= parseCursor(t.query.get('from'), path, 'from');
    from ??= options.cursor?.();
    const abort = new AbortController();
    const events = view.watch(path, from, { ...cx, signal: abort.signal })[Symbol.asyncIterator]();
    const sse = reply.sse;
    sse.keepAlive();
    let ended = false;
    const errorFrame = (err: unknown) => `event: error\ndata: ${JSON.stringify({ error: httpError(err, path).toJSON() })}\n\n`;
    const end: EndResponse = (reason) => {
      if (ended) return;
      ended = true;
      // A revoked or expired token: the client learns why (EAUTH) before the end.
      if (reason && sse.isConnected) reply.raw.write(errorFrame(new FsError(reason.code, path, reason.detail)));
      metrics?.watchers.dec();
      abort.abort();
      void events.return?.();
      sse.close();
    };
    longLived.track(reply.raw, token, end);
    metrics?.watchers.inc();
    sse.onClose(end);
    reply.header('x-accel-buffering', 'no').header('cache-control', 'no-cache');
    sse.sendHeaders(200);
    // The first frame names the starting cursor, so a reconnect before any event loses nothing.
    reply.raw.write(`: watching ${path}\nretry: ${retryMs}\n${from !== undefined ? `id: ${from}\n` : ''}\n`);
    try {
      for (;;) {
        const next = await events.next();
        if (next.done || !sse.isConnected) break;
        // The frame as @fastify/sse would write it, built once per event for all its watchers.
        if (!reply.raw.write(frames.of(next.value))) await drained(reply.raw);
      }
    } catch (err) {
      if (sse.isConnected && !ended) reply.raw.write(errorFrame(err));
    } finally {
      end();
    }
  }

  // --- routes -----------------------------------------------------------------------------------

  app.route({
    method: 'GET',
    url: '/*',
    handler: async (request, reply) => read(request, reply, caller(request), parseTarget(request)),
  });

  app.route({
    method: 'GET',
    url: '/*',
    constraints: { watch: 'yes' },
    sse: 'manual',
    handler: async (request, reply) => {
      const t = parseTarget(request);
      return watch(request, reply, caller(request), t);
    },
  });

  app.route({
    method: 'HEAD',
    url: '/*',
    handler: async (request, reply) => {
      const t = parseTarget(request);
      const { view, cx } = caller(request);
      request.op = 'stat';
      const st = await view.stat(t.path, cx);
      if (t.slash && st.type !== 'dir') throw new FsError('ENOTDIR', t.path, 'not a directory');
      statHeaders(reply, st).header('cache-control', 'no-cache');
      if (st.type === 'file' && st.kind !== 'stream') reply.header('content-length', String(st.size));
      return reply.send();
    },
  });

  app.route({
    method: 'PUT',
    url: '/*',
    onRequest: ignoreContentType,
    handler: async (request, reply) => {
      const t = parseTarget(request);
      const { view, cx } = caller(request);
      const body = bodyOf(request);
      const mode = parseMode(t.query.get('mode'), t.path);
      if (t.slash) {
        request.op = 'mkdir';
        if (body.length > 0) throw new FsError('EINVAL', t.path, 'PUT of a directory (trailing /) takes no body');
        if (!view.mkdir) throw new FsError('ENOSYS', t.path, 'mkdir is not supported here');
        await view.mkdir(t.path, mode ?? 0o755, cx);
        return reply.code(201).send();
      }
      request.op = 'write';
      const opts: WriteFileOptions = {};
      const ifVersion = await precondition(request, view, t.path, cx);
      if (ifVersion !== undefined) opts.ifVersion = ifVersion;
      if (mode !== undefined) opts.mode = mode;
      const st = await writeAll(view, t.path, body, cx, opts);
      if (st) statHeaders(reply, st);
      return reply.code(204).send();
    },
  });

  async function append(request: FastifyRequest, reply: FastifyReply, { view, cx }: Caller, path: string, body: Uint8Array) {
    request.op = 'append';
    const opts: WriteFileOptions = { append: true };
    const ifVersion = await precondition(request, view, path, cx);
    if (ifVersion !== undefined) opts.ifVersion = ifVersion;
    const st = await writeAll(view, path, body, cx, opts);
    if (st) statHeaders(reply, st);
    return reply.code(204).send();
  }

  /** A call's answer: 200 with the bytes, or 204 when there are none. */
  async function answer(request: FastifyRequest, reply: FastifyReply, { view, cx }: Caller, path: string, body: Uint8Array, status = 200) {
    request.op = 'call';
    const abort = new AbortController();
    reply.raw.on('close', () => abort.abort());
    const out = await callFile(view, path, body, { ...cx, signal: abort.signal });
    if (out.length === 0) return reply.code(204).send();
    return reply.code(status).header('cache-control', 'no-store').header('content-type', contentTypeOf(path, out)).send(asBuffer(out));
  }

  app.route({
    method: 'POST',
    url: '/*',
    onRequest: ignoreContentType,
    handler: async (request, reply) => {
      const t = parseTarget(request);
      const c = caller(request);
      const body = bodyOf(request);
      if (flag(t.query, 'append')) return append(request, reply, c, t.path, body);
      const st = await c.view.stat(t.path, c.cx);
      switch (st.kind) {
        case 'call':
          return answer(request, reply, c, t.path, body);
        case 'message':
        case 'stream':
          return append(request, reply, c, t.path, body);
        case 'view': {
          request.op = 'write';
          const written = await writeAll(c.view, t.path, body, c.cx);
          if (written) statHeaders(reply, written);
          return reply.code(204).send();
        }
        case 'dir':
          throw new FsError('EISDIR', t.path, 'is a directory; POST to a file in it');
        case 'data':
          throw new FsError('ENOSYS', t.path, 'POST to a data file: PUT replaces it, POST ?append=1 appends');
      }
    },
  });

  app.route({
    method: 'DELETE',
    url: '/*',
    onRequest: ignoreContentType,
    handler: async (request, reply) => {
      const t = parseTarget(request);
      const { view, cx } = caller(request);
      request.op = 'remove';
      if (!view.remove) throw new FsError('ENOSYS', t.path, 'remove is not supported here');
      const st = await view.stat(t.path, cx);
      const ifVersion = await precondition(request, view, t.path, cx);
      if (ifVersion !== undefined && ifVersion !== st.version) throw new FsError('ESTALE', t.path, `version is ${st.version}`);
      await view.remove(t.path, cx, { dir: st.type === 'dir' });
      return reply.code(204).send();
    },
  });

  app.route({
    method: 'MOVE',
    url: '/*',
    onRequest: ignoreContentType,
    handler: async (request, reply) => {
      const t = parseTarget(request);
      const { view, cx } = caller(request);
      request.op = 'rename';
      const dest = request.headers['destination'];
      if (typeof dest !== 'string' || dest === '') throw new FsError('EINVAL', t.path, 'MOVE needs a Destination header');
      let to: string;
      try {
        to = normalizePath(decodeURIComponent(new URL(dest, 'http://agent9.invalid').pathname));
      } catch (err) {
        throw err instanceof FsError ? err : new FsError('EINVAL', t.path, `bad Destination '${dest}'`);
      }
      if (!view.rename) throw new FsError('ENOSYS', t.path, 'rename is not supported here');
      await view.rename(t.path, to, cx);
      return reply.code(204).send();
    },
  });

  app.route({
    method: 'OPTIONS',
    url: '/*',
    onRequest: ignoreContentType,
    handler: async (_request, reply) => reply.code(204).header('allow', ALLOW).send(),
  });

  // Bodies streamed into their call (an import), not collected first.
  await registerStreamedCalls(app, caller);

  // --- agent routes kept for compatibility; each is a file operation on the caller's view ---------

  const agentPath = (id: string, ...rest: string[]): string => {
    validateName(id, `/agents/${id}`);
    return joinPath('/agents', id, ...rest);
  };

  app.get('/agents', async (request, reply) => {
    request.fsPath = '/agents';
    request.op = 'agents';
    const { view, cx } = caller(request);
    const entries = (await view.readdir('/agents', cx)).filter((e) => e.stat.type === 'dir');
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    const agents = await Promise.all(
      entries.map(async (e) => {
        try {
          return JSON.parse(new TextDecoder().decode(await readAll(view, agentPath(e.name, 'status'), cx))) as unknown;
        } catch (err) {
          return { id: e.name, error: httpError(err, agentPath(e.name, 'status')).toJSON() };
        }
      }),
    );
    return reply.header('cache-control', 'no-cache').type(JSON_TYPE).send(JSON.stringify(agents) + '\n');
  });

  app.post('/agents', { onRequest: ignoreContentType }, async (request, reply) => {
    request.fsPath = '/agents/new';
    const c = caller(request);
    return answer(request, reply, c, '/agents/new', bodyOf(request), 201);
  });

  app.post<{ Params: { id: string } }>('/agents/:id/tick', { onRequest: ignoreContentType }, async (request, reply) => {
    const path = agentPath(request.params.id, 'ctl');
    request.fsPath = path;
    request.op = 'agents';
    const { view, cx } = caller(request);
    await writeAll(view, path, 'tick', cx);
    return reply.code(202).send();
  });

  app.post<{ Params: { id: string } }>('/agents/:id/send', { onRequest: ignoreContentType }, async (request, reply) => {
    const path = agentPath(request.params.id, 'inbox');
    request.fsPath = path;
    request.op = 'agents';
    const { view, cx } = caller(request);
    const body = bodyOf(request);
    if (body.length === 0) throw new FsError('EINVAL', path, 'nothing to send: the body is empty');
    await writeAll(view, path, body, cx, { append: true });
    return reply.code(202).send();
  });

  return app;
}
