/**
 * Streamed response bodies: a stream file read until it ends (chunked, headers sent at once). Such a
 * response is long-lived: it ends at shutdown and when the token that opened it is revoked or expires.
 * Any route that answers with a body it produces as it goes (a stream file today) sends it through here.
 */
import { Readable } from 'node:stream';
import type { Handle, Stat } from '../fs/types.js';
import { JSON_LINES } from '../fs/synthetic.js';
import { asBuffer, statHeaders } from './file-headers.js';
import type { EndResponse } from './long-lived.js';
import type { RouteContext } from './routes.js';

/** Reads `handle` from its start to its end into the response; `st` gives the headers (no ETag: it grows). */
export function sendStream({ reply, token, app }: RouteContext, handle: Handle, st: Stat, chunkBytes = 64 * 1024) {
  const { metrics } = app;
  let closed = false;
  const end: EndResponse = (reason) => {
    if (closed) return;
    closed = true;
    metrics?.streams.dec();
    void handle.close().catch(() => undefined);
    // A revoked or expired token: cut the body off (no last chunk), so the client cannot take it for the stream's end.
    if (reason) reply.raw.destroy();
  };
  app.longLived.track(reply.raw, token, end);
  metrics?.streams.inc();
  reply.raw.on('close', end);
  async function* chunks() {
    try {
      for (;;) {
        const chunk = await handle.read(chunkBytes, 0);
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
    .type(st.mediaType ?? JSON_LINES)
    .send(Readable.from(chunks(), { objectMode: false }));
  // Headers go out now, not with the first datum: a client may wait for them before it writes.
  if (!reply.raw.headersSent && reply.raw.hasHeader('x-agent9-kind')) reply.raw.flushHeaders();
  return reply;
}
