/**
 * `GET /p?watch=1`: an SSE watch of a file or subtree. `Last-Event-ID` (or `?from=`) resumes after an
 * event id; without one the watch starts at the event log's newest id, which its first frame names, so
 * a client that reconnects before any event loses nothing. The watch is long-lived: it ends at shutdown
 * and when its token is revoked or expires (with an `error` frame saying why).
 */
import { FsError } from '../fs/errors.js';
import type { FsEvent } from '../fs/types.js';
import { httpError } from './error-replies.js';
import { parseCursor } from './file-headers.js';
import type { EndResponse } from './long-lived.js';
import type { RouteContext } from './routes.js';

/**
 * SSE frames of recent events: one event fanned out to many watchers is serialised once. Keyed by id
 * and path (a watcher through an agent-scoped token sees the same event under another path).
 */
export class FrameCache {
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

export async function watch({ request, reply, view, cx, token, target, app }: RouteContext): Promise<void> {
  const { path } = target;
  const { metrics } = app;
  if (!view.watch) throw new FsError('ENOSYS', path, 'this namespace cannot be watched');
  // Access errors surface as a status before the stream starts; a path that does not exist yet can be watched.
  const st = await view.stat(path, cx).catch((err: unknown) => {
    if (!(err instanceof FsError && err.code === 'ENOENT')) throw err;
    return undefined;
  });
  const lastEventId = request.headers['last-event-id'];
  let from = parseCursor(typeof lastEventId === 'string' ? lastEventId : undefined, path, 'Last-Event-ID');
  from ??= parseCursor(target.query.get('from'), path, 'from');
  // A finite stream (a job's stream, a session's output) is watched from its beginning.
  if (st?.kind === 'stream' && st.finite) from ??= st.finite.after;
  from ??= app.cursor?.();
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
  app.longLived.track(reply.raw, token, end);
  metrics?.watchers.inc();
  sse.onClose(end);
  reply.header('x-accel-buffering', 'no').header('cache-control', 'no-cache');
  sse.sendHeaders(200);
  // The first frame names the starting cursor, so a reconnect before any event loses nothing.
  reply.raw.write(`: watching ${path}\nretry: ${app.retryMs}\n${from !== undefined ? `id: ${from}\n` : ''}\n`);
  try {
    for (;;) {
      const next = await events.next();
      if (next.done || !sse.isConnected) break;
      // The frame as @fastify/sse would write it, built once per event for all its watchers.
      if (!reply.raw.write(app.frames.of(next.value))) await drained(reply.raw);
    }
  } catch (err) {
    if (sse.isConnected && !ended) reply.raw.write(errorFrame(err));
  } finally {
    end();
  }
}
