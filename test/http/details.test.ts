/**
 * HTTP details a client relies on, over a real loopback socket with the requests curl and fetch send:
 * byte ranges of data files, versions (ETags) of views that change with their content, HEAD with the
 * headers of GET, streams labelled as JSON lines.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from './served.js';

const run = promisify(execFile);
let s: Served;
let bobToken: string;

beforeAll(async () => {
  s = await serveAgent9({ containers: false });
  bobToken = await s.agentWithToken('bob');
});

afterAll(async () => {
  await s?.close();
  cleanup();
});

/** `curl -s -D - ARGS URL` with the admin token: the status, the headers (lower-cased) and the body. */
async function curl(path: string, ...args: string[]): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { stdout } = await run('curl', ['-s', '-D', '-', '-H', `Authorization: Bearer ${s.server.adminToken}`, ...args, s.server.url + path]);
  const split = stdout.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = stdout.slice(0, split).split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body: stdout.slice(split + 4) };
}

describe('byte ranges of data files', () => {
  beforeAll(async () => {
    await s.ok('/agents/bob/memory/digits', { method: 'PUT', body: '0123456789' });
  });

  it('curl -r 2-5 gets 206 with those bytes and their Content-Range; open and suffix ranges too', async () => {
    const part = await curl('/agents/bob/memory/digits', '-r', '2-5');
    expect(part.status).toBe(206);
    expect(part.body).toBe('2345');
    expect(part.headers['content-range']).toBe('bytes 2-5/10');
    expect(part.headers['content-length']).toBe('4');
    expect(part.headers['accept-ranges']).toBe('bytes');
    expect((await curl('/agents/bob/memory/digits', '-r', '7-')).body).toBe('789');
    expect((await curl('/agents/bob/memory/digits', '-r', '-3')).body).toBe('789');
    expect((await curl('/agents/bob/memory/digits', '-r', '8-100')).headers['content-range']).toBe('bytes 8-9/10');
    // Without a Range, the whole file, and it says ranges can be asked for.
    const whole = await curl('/agents/bob/memory/digits');
    expect([whole.status, whole.body, whole.headers['accept-ranges']]).toEqual([200, '0123456789', 'bytes']);
  });

  it('a range past the end is 416 with the size in Content-Range and a JSON error', async () => {
    const res = await curl('/agents/bob/memory/digits', '-r', '10-20');
    expect(res.status).toBe(416);
    expect(res.headers['content-range']).toBe('bytes */10');
    expect((JSON.parse(res.body) as { error: { code: string; path: string } }).error).toMatchObject({ code: 'EINVAL', path: '/agents/bob/memory/digits' });
  });

  it('several ranges, or an If-Range that no longer matches, get the whole file (200)', async () => {
    const multi = await curl('/agents/bob/memory/digits', '-r', '0-1,4-5');
    expect([multi.status, multi.body]).toEqual([200, '0123456789']);
    const etag = (await curl('/agents/bob/memory/digits', '-I')).headers['etag']!;
    const current = await curl('/agents/bob/memory/digits', '-r', '0-0', '-H', `If-Range: ${etag}`);
    expect([current.status, current.body]).toEqual([206, '0']);
    await s.ok('/agents/bob/memory/digits', { method: 'PUT', body: 'abcdefghij' });
    const stale = await curl('/agents/bob/memory/digits', '-r', '0-0', '-H', `If-Range: ${etag}`);
    expect([stale.status, stale.body]).toEqual([200, 'abcdefghij']);
  });

  it('a range of a large file is served from it (the part, not the whole)', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 'a');
    big.write('MIDDLE', 2 * 1024 * 1024);
    await s.ok('/memory/big.bin', { method: 'PUT', body: big, token: bobToken });
    const res = await s.call('/memory/big.bin', { token: bobToken, headers: { range: `bytes=${2 * 1024 * 1024}-${2 * 1024 * 1024 + 5}` } });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe('MIDDLE');
  });
});

describe('views have versions that change with their content', () => {
  it('GET /agents/bob/status has an ETag; If-None-Match answers 304 until the status changes', async () => {
    const first = await s.call('/agents/bob/status');
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"\d+"$/);
    expect(etag).not.toBe('"0"');
    await first.text();
    const same = await s.call('/agents/bob/status', { headers: { 'if-none-match': etag } });
    expect(same.status).toBe(304);
    expect(await same.text()).toBe('');
    await s.ok('/agents/bob/inbox', { method: 'POST', body: 'changes the queue depth' });
    const changed = await s.call('/agents/bob/status', { headers: { 'if-none-match': etag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
    expect(((await changed.json()) as { queue_depth: number }).queue_depth).toBeGreaterThan(0);
    // HEAD names the same version as the GET after it, and as the listing of the directory.
    const head = await s.call('/agents/bob/status', { method: 'HEAD' });
    expect(head.headers.get('etag')).toBe(changed.headers.get('etag'));
    expect(head.headers.get('x-agent9-version')).toBe(changed.headers.get('etag')!.replace(/"/g, ''));
    const listing = await s.ok<{ name: string; version: number }[]>('/agents/bob/');
    expect(`"${listing.find((e) => e.name === 'status')!.version}"`).toBe(changed.headers.get('etag'));
  });

  it('a curl with If-None-Match of a live view (/runtime/status, its uptime moves) is never a stale 304', async () => {
    const first = await curl('/runtime/status');
    await new Promise((r) => setTimeout(r, 5));
    const again = await curl('/runtime/status', '-H', `If-None-Match: ${first.headers['etag']!}`);
    expect(again.status).toBe(200);
    expect(again.headers['etag']).not.toBe(first.headers['etag']);
  });
});

describe('HEAD gives the headers of GET', () => {
  it('for a data file, a view, a listing and a message file: the same type, length and ETag (a listing: no length)', async () => {
    await s.ok('/agents/bob/memory/notes.md', { method: 'PUT', body: '# notes\n' });
    await s.ok('/agents/bob/memory/blob', { method: 'PUT', body: Buffer.from([0, 1, 2, 255]) });
    // Over 64 KiB, typed by its first 64 KiB (where an é is cut in two): HEAD reads no more than that.
    await s.ok('/agents/bob/memory/long-text', { method: 'PUT', body: 'a'.repeat(65_535) + 'é'.repeat(40_000) });
    for (const path of ['/agents/bob/memory/notes.md', '/agents/bob/memory/blob', '/agents/bob/memory/long-text', '/agents/bob/memory/digits', '/agents/bob/config', '/agents/bob/memory/', '/agents/bob/inbox']) {
      const head = await s.call(path, { method: 'HEAD' });
      const get = await s.call(path);
      const body = new Uint8Array(await get.arrayBuffer());
      expect(head.status, path).toBe(200);
      expect(head.headers.get('content-type'), path).toBe(get.headers.get('content-type'));
      // A HEAD does not list a directory, so it leaves the listing's length out (RFC 9110 allows it).
      if (path.endsWith('/')) expect(head.headers.get('content-length'), path).toBeNull();
      else expect(head.headers.get('content-length'), path).toBe(String(body.length));
      if (get.headers.has('etag')) expect(head.headers.get('etag'), path).toBe(get.headers.get('etag'));
      expect(head.headers.get('x-agent9-kind'), path).toBeTruthy();
    }
    expect((await s.call('/agents/bob/memory/long-text', { method: 'HEAD' })).headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect((await s.call('/agents/bob/memory/blob', { method: 'HEAD' })).headers.get('content-type')).toBe('application/octet-stream');
  });
});

describe('streams are JSON lines', () => {
  it('a job stream and the trace are application/x-ndjson, one JSON value per line', async () => {
    const job = await s.ok<{ paths: { stream: string } }>('/agents/bob/compute/new', { method: 'POST', body: JSON.stringify({ model: 'echo', prompt: 'lines' }) });
    const res = await s.call(job.paths.stream);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    const lines = (await res.text()).trim().split('\n');
    expect(lines.every((l) => typeof JSON.parse(l) === 'object')).toBe(true);
    const head = await s.call(job.paths.stream, { method: 'HEAD' });
    expect(head.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    // The trace never ends: its headers come at once.
    const abort = new AbortController();
    const trace = await s.call('/agents/bob/logs/trace', { signal: abort.signal });
    expect(trace.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    abort.abort();
    await trace.body?.cancel().catch(() => undefined);
  });
});

describe('a body declared JSON must be JSON where it is a message or a call', () => {
  it("curl -H 'Content-Type: application/json' -d '{broken' to an inbox is 400 EINVAL and queues nothing", async () => {
    const before = (await s.ok<unknown[]>('/agents/bob/inbox')).length;
    const res = await curl('/agents/bob/inbox', '-H', 'Content-Type: application/json', '-d', '{"payload": oops}');
    expect(res.status).toBe(400);
    const error = (JSON.parse(res.body) as { error: { code: string; path: string; message: string } }).error;
    expect(error).toMatchObject({ code: 'EINVAL', path: '/agents/bob/inbox' });
    expect(error.message).toMatch(/malformed JSON \(the request says Content-Type: application\/json\)/);
    expect((await s.ok<unknown[]>('/agents/bob/inbox')).length).toBe(before);
    // The same through /agents/<id>/send and to a ctl; a +json type counts too.
    expect((await curl('/agents/bob/send', '-H', 'Content-Type: application/json', '-d', '{')).status).toBe(400);
    expect((await curl('/agents/bob/ctl', '-H', 'Content-Type: application/vnd.api+json; charset=utf-8', '-d', 'tick')).status).toBe(400);
    expect((await s.ok<unknown[]>('/agents/bob/inbox')).length).toBe(before);
  });

  it('the same bytes without a JSON type are text, and a data file takes them whatever the type says', async () => {
    const sent = await curl('/agents/bob/inbox', '-H', 'Content-Type: text/plain', '-d', '{"payload": oops}');
    expect(sent.status).toBe(201);
    const id = (JSON.parse(sent.body) as { envelope_id: string }).envelope_id;
    expect((await s.ok<{ payload: unknown }>(`/agents/bob/inbox.d/${id}.json`)).payload).toEqual({ text: '{"payload": oops}' });
    const put = await curl('/agents/bob/memory/not.json', '-X', 'PUT', '-H', 'Content-Type: application/json', '--data-binary', '{broken');
    expect(put.status).toBe(201);
    expect(await (await s.call('/agents/bob/memory/not.json')).text()).toBe('{broken');
    // Well-formed JSON with the type goes through as ever.
    expect((await curl('/agents/bob/inbox', '-H', 'Content-Type: application/json', '-d', '{"payload": {"ok": true}}')).status).toBe(201);
  });
});
