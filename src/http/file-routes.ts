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
 * GET, HEAD, PUT and appends follow symbolic links within their data tree; `?nofollow=1`, `PUT
 * ?symlink=1`, `?link=/q` and `?mknod=` are links' own (link-routes.ts).
 */
import { FsError } from '../fs/errors.js';
import { callFile, readAll, readStat, writeAll } from '../fs/ops.js';
import { normalizePath } from '../fs/paths.js';
import type { FastifyReply } from 'fastify';
import { NO_LIMIT, type FileKind, type Stat, type WriteFileOptions } from '../fs/types.js';
import { EMPTY } from '../fs/bytes.js';
import { JSON_LINES } from '../fs/synthetic.js';
import { contentTypeOf, JSON_TYPE, SNIFF_BYTES, typedWithoutContent } from './content-type.js';
import { ALLOW, sendError } from './error-replies.js';
import { asBuffer, etagOf, httpDate, listingJson, parseMode, precondition, statHeaders } from './file-headers.js';
import { chooseRange } from './ranges.js';
import { checkDeclaredJson } from './json-bodies.js';
import { flag, waitOf } from './request-target.js';
import { DOCS } from './route-docs.js';
import { following, isLinkStat, makeNode, sendLinkTarget } from './link-routes.js';
import type { Route, RouteContext } from './routes.js';
import { sendStream } from './streamed-body.js';
import { spaceJson } from './space-json.js';
import { noneMatch, sendView } from './streaming.js';
import { watch } from './watch.js';
import { answerWrite, receiving } from './write-answers.js';

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

/** A data file's bytes, whole or the part its Range asks for (206, or 416 past the end). */
function sendData(ctx: RouteContext, st: Stat, bytes: Uint8Array) {
  const { request, reply, target } = ctx;
  readHeaders(reply, st).header('accept-ranges', 'bytes').header('content-type', contentTypeOf(target.path, bytes, bytes.length, st.mediaType));
  const range = chooseRange(request, { ...st, size: bytes.length });
  if (range === 'unsatisfiable') {
    reply.header('content-range', `bytes */${bytes.length}`);
    return sendError(request, reply, new FsError('EINVAL', target.path, `range not satisfiable: the file has ${bytes.length} bytes`), 416);
  }
  if (range === undefined) return reply.send(asBuffer(bytes));
  return reply
    .code(206)
    .header('content-range', `bytes ${range.start}-${range.end}/${bytes.length}`)
    .send(asBuffer(bytes.subarray(range.start, range.end + 1)));
}

async function read(ctx: RouteContext) {
  const { request, reply, view, cx, target } = ctx;
  if (flag(target.query, 'statfs')) return statfs(ctx);
  const waitMs = waitOf(target.query, target.path);
  if (target.slash) return list(ctx);
  const nofollow = flag(target.query, 'nofollow');
  // One step for data files (stat and bytes from one snapshot, so the ETag is exactly theirs).
  let path = target.path;
  const { stat: st, data } = nofollow
    ? await readStat(view, path, cx)
    : await following(view, path, cx, (p) => readStat(view, (path = p), cx), (r) => isLinkStat(r.stat));
  if (st.type === 'symlink') return sendLinkTarget(ctx, st);
  if (st.type === 'dir') return list({ ...ctx, target: { ...target, path } });
  if (st.kind === 'stream') return stream(ctx, st);
  // A view (or an inbox) through one handle: the ETag is its snapshot's version (a digest of it when it
  // keeps none). One not ready yet (a running job's result) is waited for up to `?wait=SECONDS`.
  if (st.kind === 'view' || st.kind === 'message') {
    return sendView(request, reply, view, path, cx, st, readHeaders, st.kind === 'view' ? { waitMs: waitMs ?? 0 } : {});
  }
  if (st.kind === 'data' && noneMatch(request, st.version)) return statHeaders(reply.code(304), st).send();
  // Else the stat comes first: the ETag is never newer than the bytes, so an If-Match built on it is safe.
  const bytes = data ?? (await readAll(view, path, cx));
  if (st.kind === 'data') return sendData(ctx, st, bytes);
  return readHeaders(reply, st).header('content-type', contentTypeOf(path, bytes, bytes.length, st.mediaType)).send(asBuffer(bytes));
}

/** HEAD of a data file: GET's headers, typed by no more of the content than GET's typing reads. */
async function headData({ reply, view, cx, target }: RouteContext, st: Stat) {
  const sniffed = st.size === 0 || typedWithoutContent(target.path, st.mediaType) ? EMPTY : await readAll(view, target.path, cx, SNIFF_BYTES);
  return statHeaders(reply, st)
    .header('cache-control', 'no-cache')
    .header('accept-ranges', 'bytes')
    .header('content-type', contentTypeOf(target.path, sniffed, st.size, st.mediaType))
    .header('content-length', String(st.size))
    .send();
}

/**
 * HEAD: the whole stat as headers (X-Agent9-*), and the headers a GET would send: Content-Type and
 * Content-Length (a view's from its snapshot, a listing's of its JSON), ETag and Last-Modified.
 * Streams and call files are not read (a GET of one follows the stream, or makes a call).
 */
async function head(ctx: RouteContext) {
  const { request, reply, view, cx, target } = ctx;
  let path = target.path;
  const st = flag(target.query, 'nofollow')
    ? await view.stat(path, cx)
    : await following(view, path, cx, (p) => view.stat((path = p), cx), isLinkStat);
  if (target.slash && st.type !== 'dir') throw new FsError('ENOTDIR', target.path, 'not a directory');
  const withStat = (r: FastifyReply, s: Stat) => statHeaders(r, s).header('cache-control', 'no-cache');
  // A listing's type, without its length (RFC 9110 lets a HEAD leave it out): a HEAD does not list.
  if (st.type === 'dir') return withStat(reply, st).type(JSON_TYPE).send();
  // A link itself (?nofollow=1), a FIFO or a socket: its stat only, there is nothing of it to read here.
  if (st.type !== 'file') return withStat(reply, st).header('content-length', String(st.size)).send();
  switch (st.kind) {
    case 'data':
      return headData({ ...ctx, target: { ...target, path } }, st);
    case 'view':
      return sendView(request, reply, view, path, cx, st, withStat);
    case 'stream':
      return withStat(reply, st).removeHeader('etag').type(st.mediaType ?? JSON_LINES).send();
    case 'message':
      // One with a read side (the inbox) reads as a view; a write-only one (ctl) has only its stat.
      try {
        return await sendView(request, reply, view, path, cx, st, withStat);
      } catch (err) {
        if (!(err instanceof FsError && (err.code === 'EACCES' || err.code === 'EBADF'))) throw err;
        return withStat(reply, st).header('content-length', String(st.size)).send();
      }
    default:
      return withStat(reply, st).header('content-length', String(st.size)).send();
  }
}

/**
  * Writes the body as the whole file (or appended), guarded by If-Match / If-None-Match, through a
  * symbolic link to where it leads; the new stat as headers, and the answer of write-answers.ts (a
  * receipt, 201 for a new data file, else 204).
  */
async function write(ctx: RouteContext, opts: WriteFileOptions, kind?: FileKind) {
  const { request, reply, view, target, body } = ctx;
  request.op = opts.append ? 'append' : 'write';
  await checkDeclaredJson(ctx, target.path, kind);
  const { cx, receipt } = receiving(ctx.cx);
  // An If-Match names the version of the file a link leads to (the one a GET gave): compare with that one.
  let start = target.path;
  if (request.headers['if-match'] !== undefined && view.realpath) start = await view.realpath(start, true, cx).catch(() => start);
  const st = await following(view, start, cx, async (path) => {
    const ifVersion = await precondition(request, view, path, cx);
    return writeAll(view, path, body, cx, ifVersion === undefined ? opts : { ...opts, ifVersion });
  });
  return answerWrite(reply, st, receipt());
}

async function put(ctx: RouteContext) {
  const { request, reply, view, cx, target, body } = ctx;
  const mode = parseMode(target.query.get('mode'), target.path);
  if (await makeNode(ctx, mode)) return reply;
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
  await checkDeclaredJson(ctx, path, 'call');
  const abort = new AbortController();
  reply.raw.on('close', () => abort.abort());
  const out = await callFile(view, path, body, { ...cx, signal: abort.signal });
  if (out.length === 0) return reply.code(204).send();
  return reply.code(status).header('cache-control', 'no-store').header('content-type', contentTypeOf(path, out)).send(asBuffer(out));
}

async function post(ctx: RouteContext) {
  const { request, reply, view, cx, target, body } = ctx;
  if (flag(target.query, 'append')) return write(ctx, { append: true });
  const st = await view.stat(target.path, cx);
  switch (st.kind) {
    case 'call':
      return answer(ctx, target.path);
    case 'message':
    case 'stream':
      return write(ctx, { append: true }, st.kind);
    case 'view': {
      request.op = 'write';
      const answering = receiving(cx);
      return answerWrite(reply, await writeAll(view, target.path, body, answering.cx), answering.receipt());
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
  { method: 'GET', url: '/*', op: 'read', handler: read, doc: DOCS.read },
  { method: 'GET', url: '/*', op: 'watch', watch: true, handler: watch, doc: DOCS.watch },
  { method: 'HEAD', url: '/*', op: 'stat', handler: head, doc: DOCS.stat },
  { method: 'PUT', url: '/*', op: 'write', handler: put, doc: DOCS.put },
  { method: 'POST', url: '/*', op: 'write', handler: post, doc: DOCS.post },
  { method: 'DELETE', url: '/*', op: 'remove', handler: remove, doc: DOCS.remove },
  { method: 'MOVE', url: '/*', op: 'rename', handler: move, doc: DOCS.move },
  { method: 'OPTIONS', url: '/*', op: 'other', public: true, doc: DOCS.options, handler: async ({ reply }) => reply.code(204).header('allow', ALLOW).send() },
];
