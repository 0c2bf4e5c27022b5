/** SSE watch: frame format, cursors, reset, end, heartbeat, freeing closed clients, graceful shutdown. */
import { afterAll, describe, expect, it } from 'vitest';
import { SyntheticFs, call, dir } from '../../src/fs/synthetic.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { writeAll } from '../../src/fs/ops.js';
import { SseParser, type SseMessage } from '../../src/http/sse-parser.js';
import { admin, cleanup } from '../helpers.js';
import { startFixtureServer, type FixtureServer } from './helpers.js';

const servers: FixtureServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
  cleanup();
});

async function server(options: Parameters<typeof startFixtureServer>[0] = {}): Promise<FixtureServer> {
  const s = await startFixtureServer(options);
  servers.push(s);
  return s;
}

/** An open SSE response read frame by frame (raw text kept to check the wire format). */
class Watch {
  readonly parser = new SseParser();
  raw = '';
  private reader: ReadableStreamDefaultReader<Uint8Array>;
  private decoder = new TextDecoder();
  private queue: SseMessage[] = [];
  ended = false;

  constructor(
    readonly res: Response,
    readonly abort: AbortController,
  ) {
    this.reader = res.body!.getReader();
  }

  static async open(s: FixtureServer, path: string, headers: Record<string, string> = {}): Promise<Watch> {
    const abort = new AbortController();
    const res = await s.req(path, { headers, signal: abort.signal });
    return new Watch(res, abort);
  }

  /** The next `n` messages, or fewer if the stream ends or `ms` pass. */
  async take(n: number, ms = 5000): Promise<SseMessage[]> {
    const deadline = Date.now() + ms;
    while (this.queue.length < n && !this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const r = await Promise.race([this.reader.read(), new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), left))]);
      if (r === 'timeout') break;
      if (r.done) {
        this.ended = true;
        break;
      }
      const text = this.decoder.decode(r.value, { stream: true });
      this.raw += text;
      this.queue.push(...this.parser.push(text));
    }
    return this.queue.splice(0, n);
  }

  /** Reads until the server closes the stream (true) or `ms` pass (false). */
  async untilEnd(ms = 5000): Promise<boolean> {
    await this.take(Number.MAX_SAFE_INTEGER, ms);
    return this.ended;
  }

  close(): void {
    this.abort.abort();
  }
}

describe('SSE watch', () => {
  it('frames carry id = event id, event = type, data = the JSON event; the first frame names the cursor', async () => {
    const s = await server();
    const start = s.storage.eventStore.lastId();
    const w = await Watch.open(s, '/data?watch=1');
    expect(w.res.status).toBe(200);
    expect(w.res.headers.get('content-type')).toBe('text/event-stream');
    expect(w.res.headers.get('x-accel-buffering')).toBe('no');
    expect(w.res.headers.get('cache-control')).toBe('no-cache');
    await s.req('/data/a', { method: 'PUT', body: '1' });
    const [msg] = await w.take(1);
    expect(w.raw.startsWith(`: watching /data\nretry: 1000\nid: ${start}\n\n`)).toBe(true);
    const ev = JSON.parse(msg!.data) as { id: number; type: string; path: string; version: number; time: number };
    expect(msg!.event).toBe('created');
    expect(msg!.lastEventId).toBe(String(ev.id));
    expect(ev).toMatchObject({ type: 'created', path: '/data/a', version: 1 });
    expect(ev.id).toBeGreaterThan(start);
    expect(w.raw).toContain(`id: ${ev.id}\nevent: created\ndata: ${msg!.data}\n\n`);
    w.close();
  });

  it('?from= replays from a cursor; Last-Event-ID wins over it; a bad cursor is 400', async () => {
    const s = await server();
    await s.req('/data/a', { method: 'PUT', body: '1' });
    await s.req('/data/b', { method: 'PUT', body: '2' });
    await s.req('/data/c', { method: 'PUT', body: '3' });
    const all = await Watch.open(s, '/data?watch=1&from=0');
    const three = await all.take(3);
    all.close();
    expect(three.map((m) => (JSON.parse(m.data) as { path: string }).path)).toEqual(['/data/a', '/data/b', '/data/c']);
    const afterFirst = three[0]!.lastEventId;
    const resumed = await Watch.open(s, '/data?watch=1&from=0', { 'last-event-id': afterFirst });
    const two = await resumed.take(3, 500);
    resumed.close();
    expect(two.map((m) => m.lastEventId)).toEqual([three[1]!.lastEventId, three[2]!.lastEventId]);
    const bad = await s.req('/data?watch=1&from=yesterday');
    expect(bad.status).toBe(400);
    const badHeader = await s.req('/data?watch=1', { headers: { 'last-event-id': '-3' } });
    expect(badHeader.status).toBe(400);
  });

  it('a cursor older than retention gets a reset first, then everything still kept', async () => {
    const s = await server({ storage: { retention: { maxPerScope: 100 } } });
    for (let i = 0; i < 400; i++) await writeAll(s.ns, `/data/f${i % 10}`, String(i), admin);
    const w = await Watch.open(s, '/data?watch=1&from=1');
    const [reset, next] = await w.take(2);
    w.close();
    expect(reset!.event).toBe('reset');
    const resetId = Number(reset!.lastEventId);
    expect(resetId).toBeGreaterThan(1);
    expect(Number(next!.lastEventId)).toBe(resetId + 1);
  });

  it('watching a stream file delivers its data, then end, then closes', async () => {
    const s = await server();
    const w = await Watch.open(s, '/svc/feed?watch=1');
    await s.req('/svc/feed-ctl', { method: 'POST', body: 'one\ntwo\nend' });
    const msgs = await w.take(3);
    expect(msgs.map((m) => [m.event, (JSON.parse(m.data) as { data?: unknown }).data])).toEqual([
      ['data', 'one'],
      ['data', 'two'],
      ['end', undefined],
    ]);
    expect(await w.untilEnd(3000)).toBe(true);
  });

  it('a watch of /agents is a watch, not the compatibility listing', async () => {
    const s = await server();
    const w = await Watch.open(s, '/agents?watch=1');
    expect(w.res.headers.get('content-type')).toBe('text/event-stream');
    w.close();
    expect((await s.req('/agents')).status).toBe(404);
  });

  it('sends a heartbeat comment while idle', async () => {
    const s = await server({ heartbeatMs: 100 });
    const w = await Watch.open(s, '/data?watch=1');
    await w.take(1, 350);
    w.close();
    expect(w.raw).toContain(': heartbeat\n\n');
  });

  it('refuses before streaming when the path may not be read; a path that does not exist yet can be watched', async () => {
    const s = await server();
    const off = await s.req('/off/x?watch=1');
    expect(off.status).toBe(403);
    const w = await Watch.open(s, '/data/later/file?watch=1');
    expect(w.res.status).toBe(200);
    await s.req('/data/later/', { method: 'PUT' });
    await s.req('/data/later/file', { method: 'PUT', body: 'now' });
    const [m] = await w.take(1);
    w.close();
    expect(JSON.parse(m!.data)).toMatchObject({ type: 'created', path: '/data/later/file' });
  });

  it('closed clients are freed at once: subscriptions and the watcher gauge drop back', async () => {
    const s = await server();
    const base = s.storage.events.subscriberCount;
    const watches = await Promise.all(Array.from({ length: 25 }, () => Watch.open(s, '/data?watch=1')));
    const opened = Date.now() + 2000;
    while (s.storage.events.subscriberCount < base + 25 && Date.now() < opened) await new Promise((r) => setTimeout(r, 10));
    expect(s.storage.events.subscriberCount).toBe(base + 25);
    const metrics = await (await s.req('/runtime/metrics')).text();
    expect(metrics).toMatch(/^agent9_http_watchers 25$/m);
    for (const w of watches) w.close();
    const deadline = Date.now() + 2000;
    while (s.storage.events.subscriberCount > base && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(s.storage.events.subscriberCount).toBe(base);
    expect(await (await s.req('/runtime/metrics')).text()).toMatch(/^agent9_http_watchers 0$/m);
  });

  it('shutdown lets in-flight requests finish and ends watches and streams cleanly', async () => {
    const s = await server();
    let release: () => void = () => undefined;
    const slow = new SyntheticFs(
      dir({
        call: call(async () => {
          await new Promise<void>((r) => (release = r));
          return 'finished';
        }),
      }),
    );
    mountWithAccess(s.ns, '/slow', slow, ReadWrite);
    const w = await Watch.open(s, '/data?watch=1');
    const stream = await s.req('/svc/feed');
    const inFlight = s.req('/slow/call', { method: 'POST', body: 'go' });
    await new Promise((r) => setTimeout(r, 100));
    const closing = s.server.close();
    expect(await w.untilEnd(3000)).toBe(true);
    expect(await stream.text()).toBe('');
    release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('finished');
    await closing;
    await expect(fetch(s.url + '/data/')).rejects.toThrow();
  });
});
