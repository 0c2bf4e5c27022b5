/**
 * The file mapping (CONTRACT.md section 9): each HTTP method on `/p` is a file operation on the
 * caller's view, one row of the route table each.
 *
 *   GET /p        read (a directory lists; a stream file streams until it ends)
 *   GET /p/       list: JSON [{name, type, kind, size, mode, mtime, ctime, version}]
 *   GET /p?watch=1  SSE watch of a file or subtree; Last-Event-ID or ?from= resumes (watch.ts)
 *   HEAD /p       stat in headers
 *   PUT /p        write the whole file (If-Match / If-None-Match guard it); PUT /p/ makes a directory
 *   POST /p       call file: the answer; message file: one message; writable view: replace
 *   POST /p?append=1  append (data file) or send one message
 *   DELETE /p     remove (a directory must be empty)
 *   MOVE /p       rename to the Destination header
 *   OPTIONS /p    the methods there are
 */
import { FsError } from '../fs/errors.js';
import { callFile, readAll, readStat, writeAll } from '../fs/ops.js';
import { normalizePath } from '../fs/paths.js';
import type { FastifyReply } from 'fastify';
import { NO_LIMIT, type Stat, type WriteFileOptions } from '../fs/types.js';
import { contentTypeOf, JSON_TYPE } from './content-type.js';
import { ALLOW } from './error-replies.js';
import { asBuffer, etagOf, httpDate, listingJson, parseMode, precondition, statHeaders, tagVersion } from './file-headers.js';
import { flag } from './request-target.js';
import type { Route, RouteContext } from './routes.js';
import { sendStream } from './streamed-body.js';
import { spaceJson } from './space-json.js';
import { sendSizedAtOpen } from './streaming.js';
import { watch } from './watch.js';

async function list({ request, reply, view, cx, target }: RouteContext) {
  request.op = 'list';
  const entries = await view.readdir(target.path, cx);
  return reply.header('cache-control', 'no-cache').header('x-agent9-type', 'dir').type(JSON_TYPE).send(listingJson(entries));
}

async function stream(ctx: RouteContext, st: Stat) {
  ctx.request.op = 'stream';
  const handle = await ctx.view.open(ctx.target.path, { read: true }, ctx.cx);
  return sendStream(ctx, handle, st);
}

/** `GET /p?statfs=1`: the space of the tree holding `p` (a quota's limit and use), as JSON. */
async function statfs({ request, reply, view, cx, target }: RouteContext) {
  request.op = 'statfs';
  const space = view.statfs ? await view.statfs(target.path, cx) : NO_LIMIT;
  return reply.header('cache-control', 'no-cache').type(JSON_TYPE).send(JSON.stringify(spaceJson(space)));
}

function readHeaders(reply: FastifyReply, st: Stat): FastifyReply {
  return reply.header('etag', etagOf(st)).header('last-modified', httpDate(st.mtime)).header('cache-control', 'no-cache');
}

async function read(ctx: RouteContext) {
  const { request, reply, view, cx, target } = ctx;
  if (flag(target.query, 'statfs')) return statfs(ctx);
  if (target.slash) return list(ctx);
  // One step for data files (stat and bytes from one snapshot, so the ETag is exactly theirs).
  const { stat: st, data } = await readStat(view, target.path, cx);
  if (st.type === 'dir') return list(ctx);
  if (st.kind === 'stream') return stream(ctx, st);
  // A view that learns its size only at open (an export) may be large: one handle, streamed when it is.
  if (st.kind === 'view' && st.size === 0 && !data) return sendSizedAtOpen(reply, view, target.path, cx, st, readHeaders);
  // Only data files have versions that are the whole truth of their content; views may not bump theirs.
  if (st.kind === 'data') {
    const inm = request.headers['if-none-match'];
    if (inm !== undefined && inm.split(',').some((tag) => tagVersion(tag) === st.version)) {
      return statHeaders(reply.code(304), st).send();
    }
  }
  // Else the stat comes first: the ETag is never newer than the bytes, so an If-Match built on it is safe.
  const bytes = data ?? (await readAll(view, target.path, cx));
  // A read carries what caching needs; HEAD carries the whole stat.
  return readHeaders(reply, st).header('content-type', contentTypeOf(target.path, bytes)).send(asBuffer(bytes));
}

async function head({ reply, view, cx, target }: RouteContext) {
  const st = await view.stat(target.path, cx);
  if (target.slash && st.type !== 'dir') throw new FsError('ENOTDIR', target.path, 'not a directory');
  statHeaders(reply, st).header('cache-control', 'no-cache');
  if (st.type === 'file' && st.kind !== 'stream') reply.header('content-length', String(st.size));
  return reply.send();
}

/** Writes the body as the whole file (or appended), guarded by If-Match / If-None-Match; 204 with the new stat. */
async function write(ctx: RouteContext, opts: WriteFileOptions) {
  const { request, reply, view, cx, target, body } = ctx;
  request.op = opts.append ? 'append' : 'write';
  const ifVersion = await precondition(request, view, target.path, cx);
  if (ifVersion !== undefined) opts.ifVersion = ifVersion;
  const st = await writeAll(view, target.path, body, cx, opts);
  if (st) statHeaders(reply, st);
  return reply.code(204).send();
}

async function put(ctx: RouteContext) {
  const { request, reply, view, cx, target, body } = ctx;
  const mode = parseMode(target.query.get('mode'), target.path);
  if (target.slash) {
    request.op = 'mkdir';
    if (body.length > 0) throw new FsError('EINVAL', target.path, 'PUT of a directory (trailing /) takes no body');
    if (!view.mkdir) throw new FsError('ENOSYS', target.path, 'mkdir is not supported here');
    await view.mkdir(target.path, mode ?? 0o755, cx);
    return reply.code(201).send();
  }
  return write(ctx, mode !== undefined ? { mode } : {});
}

/** A call's answer: `status` (200) with the bytes, or 204 when there are none. */
export async function answer(ctx: RouteContext, path: string, status = 200) {
  const { request, reply, view, cx, body } = ctx;
  request.op = 'call';
  const abort = new AbortController();
  reply.raw.on('close', () => abort.abort());
  const out = await callFile(view, path, body, { ...cx, signal: abort.signal });
  if (out.length === 0) return reply.code(204).send();
  return reply.code(status).header('cache-control', 'no-store').header('content-type', contentTypeOf(path, out)).send(asBuffer(out));
}

/**
 * With an agent token, `/agents/<id>/inbox` is where the agent sends to another agent: its own
 * `/peers/<id>/inbox` (signed, under the messaging policy), or its own `/inbox` for its own id.
 */
export function peerAlias(ctx: RouteContext): RouteContext {
  const { principal } = ctx.cx;
  if (principal.admin || principal.agentId === undefined) return ctx;
  const m = /^\/agents\/([^/]+)\/inbox$/.exec(ctx.target.path);
  if (!m) return ctx;
  const path = m[1] === principal.agentId ? '/inbox' : `/peers/${m[1]}/inbox`;
  return { ...ctx, target: { ...ctx.target, path } };
}

async function post(original: RouteContext) {
  const ctx = peerAlias(original);
  const { request, reply, view, cx, target, body } = ctx;
  if (flag(target.query, 'append')) return write(ctx, { append: true });
  const st = await view.stat(target.path, cx);
  switch (st.kind) {
    case 'call':
      return answer(ctx, target.path);
    case 'message':
    case 'stream':
      return write(ctx, { append: true });
    case 'view': {
      request.op = 'write';
      const written = await writeAll(view, target.path, body, cx);
      if (written) statHeaders(reply, written);
      return reply.code(204).send();
    }
    case 'dir':
      throw new FsError('EISDIR', target.path, 'is a directory; POST to a file in it');
    case 'data':
      throw new FsError('ENOSYS', target.path, 'POST to a data file: PUT replaces it, POST ?append=1 appends');
  }
}

async function remove({ request, reply, view, cx, target }: RouteContext) {
  const { path } = target;
  if (!view.remove) throw new FsError('ENOSYS', path, 'remove is not supported here');
  const st = await view.stat(path, cx);
  const ifVersion = await precondition(request, view, path, cx);
  if (ifVersion !== undefined && ifVersion !== st.version) throw new FsError('ESTALE', path, `version is ${st.version}`);
  await view.remove(path, cx, { dir: st.type === 'dir' });
  return reply.code(204).send();
}

async function move({ request, reply, view, cx, target }: RouteContext) {
  const { path } = target;
  const dest = request.headers['destination'];
  if (typeof dest !== 'string' || dest === '') throw new FsError('EINVAL', path, 'MOVE needs a Destination header');
  let to: string;
  try {
    to = normalizePath(decodeURIComponent(new URL(dest, 'http://agent9.invalid').pathname));
  } catch (err) {
    throw err instanceof FsError ? err : new FsError('EINVAL', path, `bad Destination '${dest}'`);
  }
  if (!view.rename) throw new FsError('ENOSYS', path, 'rename is not supported here');
  await view.rename(path, to, cx);
  return reply.code(204).send();
}

/** The file mapping's rows. `GET /*` serves reads; a `?watch=1` GET takes the watch row (a routing constraint). */
export const fileRoutes: readonly Route[] = [
  { method: 'GET', url: '/*', op: 'read', handler: read },
  { method: 'GET', url: '/*', op: 'watch', watch: true, handler: watch },
  { method: 'HEAD', url: '/*', op: 'stat', handler: head },
  { method: 'PUT', url: '/*', op: 'write', handler: put },
  { method: 'POST', url: '/*', op: 'write', handler: post },
  { method: 'DELETE', url: '/*', op: 'remove', handler: remove },
  { method: 'MOVE', url: '/*', op: 'rename', handler: move },
  { method: 'OPTIONS', url: '/*', op: 'other', public: true, handler: async ({ reply }) => reply.code(204).header('allow', ALLOW).send() },
];
