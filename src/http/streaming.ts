/**
 * Views, and bodies too large to hold in both directions (CONTRACT section 12):
 * - a view is read through one handle: its snapshot's stat gives the ETag (so it is exactly the bytes'
 *   version, and If-None-Match answers 304 on it) and the Content-Length; one whose size is known only
 *   once opened (stat says 0, e.g. /agents/<id>/export) is, beyond STREAM_VIEW_BYTES, sent as it is read;
 * - the request body of a streamed call file (/agents/import) is written to the call's handle chunk by
 *   chunk as it arrives, instead of being collected first (no body limit: the call bounds what it takes).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { concatBytes } from '../fs/bytes.js';
import type { Cx, FileService, Handle, ReadOptions, Stat } from '../fs/types.js';
import { contentTypeOf } from './content-type.js';
import type { DocumentedRoute } from './openapi.js';
import { DOCS } from './route-docs.js';
import { tagVersion } from './file-headers.js';

/** Views up to this size are read whole and sent in one piece (the ETag and type as for any file). */
export const STREAM_VIEW_BYTES = 1024 * 1024;
const READ_CHUNK = 256 * 1024;

async function readRest(handle: Handle, offset: number, first: Uint8Array[], opts?: ReadOptions): Promise<Uint8Array> {
  const parts = [...first];
  let total = parts.reduce((n, p) => n + p.length, 0);
  for (let at = offset; ; ) {
    const chunk = await handle.read(READ_CHUNK, at, opts);
    if (chunk.length === 0) break;
    parts.push(Buffer.from(chunk));
    at += chunk.length;
    total += chunk.length;
  }
  return concatBytes(parts, total);
}

/** True when an `If-None-Match` names this version (0, no version at all, never matches). */
export function noneMatch(request: FastifyRequest, version: number): boolean {
  const inm = request.headers['if-none-match'];
  return version !== 0 && inm !== undefined && inm.split(',').some((tag) => tagVersion(tag) === version);
}

/**
 * GET (or HEAD) of a view through one handle: 304 when If-None-Match names its snapshot's version,
 * else the snapshot whole when small, or streamed from the handle with its Content-Length. `headers`
 * puts a stat on the reply (the snapshot's, from fstat, over `st`). A HEAD reads no more than the
 * snapshot the open took and sends no body. A view not ready at open (a running job's result) is read
 * with `opts` (how long it may wait).
 */
export async function sendView(
  request: FastifyRequest,
  reply: FastifyReply,
  view: FileService,
  path: string,
  cx: Cx,
  st: Stat,
  headers: (reply: FastifyReply, st: Stat) => FastifyReply,
  opts: ReadOptions = {},
): Promise<FastifyReply> {
  const handle = await view.open(path, { read: true }, cx);
  let handed = false;
  // A client that goes away while the read waits ends the wait (closing the handle aborts it).
  const gone = () => void handle.close().catch(() => undefined);
  if (opts.waitMs) reply.raw.on('close', gone);
  try {
    const snap = handle.stat ? { ...st, ...(await handle.stat()) } : st;
    if (noneMatch(request, snap.version)) return headers(reply.code(304), snap).send();
    const size = handle.stat ? snap.size : undefined;
    if (size === undefined || size <= STREAM_VIEW_BYTES) {
      const bytes = await readRest(handle, 0, [], opts);
      // After a wait, the headers say what the content is now (its version moved with it).
      const now = opts.waitMs && handle.stat ? { ...snap, ...(await handle.stat()) } : snap;
      return headers(reply, { ...now, size: bytes.length })
        .header('content-type', contentTypeOf(path, bytes, bytes.length, now.mediaType))
        .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }
    const type = contentTypeOf(path, new Uint8Array(0), 0, snap.mediaType);
    if (request.method === 'HEAD') return headers(reply, snap).header('content-type', type).header('content-length', String(size)).send();
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      void handle.close().catch(() => undefined);
    };
    async function* chunks() {
      try {
        for (let at = 0; at < size!; ) {
          const chunk = await handle.read(READ_CHUNK, at);
          if (chunk.length === 0) break;
          at += chunk.length;
          yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        }
      } finally {
        close();
      }
    }
    reply.raw.on('close', close);
    handed = true;
    return headers(reply, snap).header('content-type', type).header('content-length', String(size)).send(Readable.from(chunks()));
  } finally {
    reply.raw.off('close', gone);
    if (!handed) await handle.close().catch(() => undefined);
  }
}

/** Call files whose request is streamed into the handle rather than collected (paths in the caller's view). */
export const STREAMED_CALLS = ['/agents/import'] as const;

/** The streamed call files as routes: registered here, outside the table, and described with it (openapi.ts). */
export const STREAMED_CALL_ROUTES: readonly DocumentedRoute[] = STREAMED_CALLS.flatMap((url) =>
  (['POST', 'PUT'] as const).map((method) => ({ method, url, op: 'call', doc: DOCS.importAgent })),
);

/**
 * POST and PUT of the streamed call files: each body chunk is written to the handle as it arrives
 * (awaited, so a slow import slows the sender), then the answer is read on the same handle. A client
 * that goes away mid-body closes the handle, which abandons the call.
 */
export async function registerStreamedCalls(
  app: FastifyInstance,
  caller: (request: FastifyRequest) => { view: FileService; cx: Cx },
): Promise<void> {
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    for (const url of STREAMED_CALLS) {
      scope.route({
        method: STREAMED_CALL_ROUTES.filter((r) => r.url === url).map((r) => r.method as 'POST' | 'PUT'),
        url,
        onRequest: (request, _reply, done) => {
          // Whatever its Content-Type says, the body is the request's bytes.
          request.headers['content-type'] = 'application/octet-stream';
          done();
        },
        handler: async (request, reply) => {
          request.fsPath = url;
          request.op = 'call';
          const { view, cx } = caller(request);
          const abort = new AbortController();
          reply.raw.on('close', () => abort.abort());
          const handle = await view.open(url, { read: true, write: true }, { ...cx, signal: abort.signal });
          try {
            const body = request.body as Readable | undefined;
            let offset = 0;
            if (body) {
              for await (const chunk of body as AsyncIterable<Buffer>) {
                offset += await handle.write(chunk, offset);
              }
            }
            const out = await readRest(handle, 0, []);
            if (out.length === 0) return reply.code(204).send();
            return reply.code(200).header('cache-control', 'no-store').header('content-type', contentTypeOf(url, out)).send(Buffer.from(out.buffer, out.byteOffset, out.byteLength));
          } finally {
            await handle.close().catch(() => undefined);
          }
        },
      });
    }
  });
}
