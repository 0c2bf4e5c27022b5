/** Every route of the HTTP mapping and every error status, over a real loopback socket. */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_TABLE, FsError, isErrorCode } from '../../src/fs/errors.js';
import { SyntheticFs, call, dir } from '../../src/fs/synthetic.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { cleanup } from '../helpers.js';
import { startFixtureServer, type FixtureServer } from './helpers.js';

let s: FixtureServer;

beforeAll(async () => {
  s = await startFixtureServer({ bodyLimit: 256 * 1024 });
  // A service that fails with whatever code it is sent, to see each code's status.
  const raise = new SyntheticFs(
    dir({
      raise: call((req) => {
        const code = new TextDecoder().decode(req).trim();
        if (code === 'crash') throw new Error('an unexpected bug');
        if (!isErrorCode(code)) return 'not a code';
        throw new FsError(code, '/raise', `raised ${code}`, code === 'EAGAIN' ? { retryAfterMs: 2500 } : {});
      }),
    }),
    'raise',
  );
  mountWithAccess(s.ns, '/errors', raise, ReadWrite);
});

afterAll(async () => {
  await s.close();
  cleanup();
});

async function errorOf(res: Response): Promise<{ code: string; message: string; path: string }> {
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as { error: { code: string; message: string; path: string } };
  expect(res.headers.get('x-agent9-error')).toBe(body.error.code);
  expect(body.error.message).toContain(body.error.path);
  return body.error;
}

/** A request whose path goes out exactly as written (fetch would resolve `..`). */
function rawRequest(method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const url = new URL(s.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path, headers: { authorization: `Bearer ${s.token}`, ...headers } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('reads', () => {
  it('GET reads a file with its ETag, stat headers and a content type from its content', async () => {
    await s.req('/data/hello', { method: 'PUT', body: 'hello\n' });
    const res = await s.req('/data/hello');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hello\n');
    expect(res.headers.get('etag')).toBe('"1"');
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.headers.get('content-length')).toBe('6');
    expect(res.headers.get('last-modified')).toMatch(/GMT$/);

    await s.req('/data/doc', { method: 'PUT', body: '{"a": [1, 2]}' });
    expect((await s.req('/data/doc')).headers.get('content-type')).toBe('application/json; charset=utf-8');
    await s.req('/data/notes.md', { method: 'PUT', body: '# title' });
    expect((await s.req('/data/notes.md')).headers.get('content-type')).toBe('text/markdown; charset=utf-8');
    await s.req('/data/blob', { method: 'PUT', body: new Uint8Array([0xff, 0xfe, 0x00, 0x01]) });
    const blob = await s.req('/data/blob');
    expect(blob.headers.get('content-type')).toBe('application/octet-stream');
    expect([...new Uint8Array(await blob.arrayBuffer())]).toEqual([0xff, 0xfe, 0x00, 0x01]);
  });

  it('GET with a matching If-None-Match answers 304', async () => {
    const first = await s.req('/data/hello');
    const etag = first.headers.get('etag')!;
    const again = await s.req('/data/hello', { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    const other = await s.req('/data/hello', { headers: { 'if-none-match': '"999"' } });
    expect(other.status).toBe(200);
  });

  it('GET of a directory lists it, with or without the trailing slash; a file with a slash is ENOTDIR', async () => {
    await s.req('/data/dir/', { method: 'PUT' });
    await s.req('/data/dir/b', { method: 'PUT', body: 'bb' });
    await s.req('/data/dir/a', { method: 'PUT', body: 'a' });
    for (const path of ['/data/dir/', '/data/dir']) {
      const res = await s.req(path);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-agent9-type')).toBe('dir');
      const rows = (await res.json()) as { name: string; type: string; kind: string; size: number; version: number }[];
      expect(rows.map((r) => [r.name, r.type, r.kind, r.size])).toEqual([
        ['a', 'file', 'data', 1],
        ['b', 'file', 'data', 2],
      ]);
      expect(rows[0]!.version).toBeGreaterThan(0);
    }
    const notDir = await s.req('/data/hello/');
    expect(notDir.status).toBe(400);
    expect((await errorOf(notDir)).code).toBe('ENOTDIR');
  });

  it('GET of a stream file streams it until the stream ends', async () => {
    const res = await s.req('/svc/feed');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const reader = res.body!.getReader();
    await s.req('/svc/feed-ctl', { method: 'POST', body: 'one' });
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('one\n');
    await s.req('/svc/feed-ctl', { method: 'POST', body: 'two\nend' });
    let rest = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toBe('two\n');
  });

  it('HEAD gives the stat in headers, and errors without a body', async () => {
    const res = await s.req('/data/hello', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('6');
    expect(res.headers.get('x-agent9-type')).toBe('file');
    expect(res.headers.get('etag')).toBe('"1"');
    const d = await s.req('/data/dir', { method: 'HEAD' });
    expect(d.headers.get('x-agent9-type')).toBe('dir');
    const missing = await s.req('/data/none', { method: 'HEAD' });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-agent9-error')).toBe('ENOENT');
    expect(await missing.text()).toBe('');
  });
});

describe('writes', () => {
  it('PUT creates (201) and replaces (204), answering with the new ETag', async () => {
    const created = await s.req('/data/p', { method: 'PUT', body: 'v1' });
    expect(created.status).toBe(201);
    expect(created.headers.get('etag')).toBe('"1"');
    const replaced = await s.req('/data/p', { method: 'PUT', body: 'v2' });
    expect(replaced.status).toBe(204);
    expect(replaced.headers.get('etag')).toBe('"2"');
    expect(await (await s.req('/data/p')).text()).toBe('v2');
  });

  it('If-Match guards a PUT (412 ESTALE on a version mismatch); If-None-Match: * creates only', async () => {
    await s.req('/data/guarded', { method: 'PUT', body: 'a' });
    const ok = await s.req('/data/guarded', { method: 'PUT', body: 'b', headers: { 'if-match': '"1"' } });
    expect(ok.status).toBe(204);
    const stale = await s.req('/data/guarded', { method: 'PUT', body: 'c', headers: { 'if-match': '"1"' } });
    expect(stale.status).toBe(412);
    const err = await errorOf(stale);
    expect(err.code).toBe('ESTALE');
    expect(err.path).toBe('/data/guarded');
    expect(await (await s.req('/data/guarded')).text()).toBe('b');
    const exists = await s.req('/data/guarded', { method: 'PUT', body: 'd', headers: { 'if-none-match': '*' } });
    expect(exists.status).toBe(412);
    const fresh = await s.req('/data/brand-new', { method: 'PUT', body: 'e', headers: { 'if-none-match': '*' } });
    expect(fresh.status).toBe(201);
    const missing = await s.req('/data/absent', { method: 'PUT', body: 'f', headers: { 'if-match': '*' } });
    expect(missing.status).toBe(412);
  });

  it('PUT dir/ makes a directory (201); ?mode sets permission bits', async () => {
    const res = await s.req('/data/made/', { method: 'PUT' });
    expect(res.status).toBe(201);
    expect((await s.req('/data/made', { method: 'HEAD' })).headers.get('x-agent9-type')).toBe('dir');
    const again = await s.req('/data/made/', { method: 'PUT' });
    expect(again.status).toBe(409);
    expect((await errorOf(again)).code).toBe('EEXIST');
    await s.req('/data/secret?mode=0600', { method: 'PUT', body: 's' });
    expect((await s.req('/data/secret', { method: 'HEAD' })).headers.get('x-agent9-mode')).toBe('0600');
    const bad = await s.req('/data/x?mode=999', { method: 'PUT', body: 's' });
    expect(bad.status).toBe(400);
    const withBody = await s.req('/data/made2/', { method: 'PUT', body: 'x' });
    expect(withBody.status).toBe(400);
  });

  it('POST calls a call file, sends one message to a message file, replaces a writable view', async () => {
    const answer = await s.req('/svc/echo', { method: 'POST', body: 'hi' });
    expect(answer.status).toBe(200);
    expect(await answer.text()).toBe('echo:hi');
    const badJson = await s.req('/svc/echo', { method: 'POST', body: '{oops' });
    expect(badJson.status).toBe(400);
    expect((await errorOf(badJson)).code).toBe('EINVAL');

    const sent = await s.req('/svc/box', { method: 'POST', body: 'a message' });
    expect(sent.status).toBe(204);
    const appended = await s.req('/svc/box?append=1', { method: 'POST', body: 'another' });
    expect(appended.status).toBe(204);
    expect(JSON.parse(await (await s.req('/svc/box')).text())).toEqual(['a message', 'another']);

    const policy = await s.req('/svc/policy', { method: 'POST', body: '{"limit": 7}' });
    expect(policy.status).toBe(204);
    expect(JSON.parse(await (await s.req('/svc/policy')).text())).toEqual({ limit: 7 });
    const readOnlyView = await s.req('/svc/count', { method: 'POST', body: '{}' });
    expect(readOnlyView.status).toBe(403);
  });

  it('POST ?append=1 appends to a data file; plain POST to a data file is 405; to a directory 400', async () => {
    await s.req('/data/log', { method: 'PUT', body: 'a\n' });
    await s.req('/data/log?append=1', { method: 'POST', body: 'b\n' });
    expect(await (await s.req('/data/log')).text()).toBe('a\nb\n');
    const plain = await s.req('/data/log', { method: 'POST', body: 'c' });
    expect(plain.status).toBe(405);
    expect(plain.headers.get('allow')).toContain('PUT');
    expect((await errorOf(plain)).code).toBe('ENOSYS');
    const toDir = await s.req('/data', { method: 'POST', body: 'c' });
    expect(toDir.status).toBe(400);
    expect((await errorOf(toDir)).code).toBe('EISDIR');
  });

  it('DELETE removes files and empty directories', async () => {
    await s.req('/data/gone', { method: 'PUT', body: 'x' });
    expect((await s.req('/data/gone', { method: 'DELETE' })).status).toBe(204);
    expect((await s.req('/data/gone')).status).toBe(404);
    await s.req('/data/full/', { method: 'PUT' });
    await s.req('/data/full/f', { method: 'PUT', body: 'x' });
    const notEmpty = await s.req('/data/full', { method: 'DELETE' });
    expect(notEmpty.status).toBe(409);
    expect((await errorOf(notEmpty)).code).toBe('ENOTEMPTY');
    await s.req('/data/full/f', { method: 'DELETE' });
    expect((await s.req('/data/full/', { method: 'DELETE' })).status).toBe(204);
    const mountPoint = await s.req('/data', { method: 'DELETE' });
    expect(mountPoint.status).toBe(409);
    expect((await errorOf(mountPoint)).code).toBe('EBUSY');
    const missing = await s.req('/data/never', { method: 'DELETE' });
    expect(missing.status).toBe(404);
    await s.req('/data/v', { method: 'PUT', body: 'x' });
    const stale = await s.req('/data/v', { method: 'DELETE', headers: { 'if-match': '"42"' } });
    expect(stale.status).toBe(412);
    expect((await s.req('/data/v', { method: 'DELETE', headers: { 'if-match': '"1"' } })).status).toBe(204);
  });

  it('MOVE renames within a mount; across mounts is EXDEV', async () => {
    await s.req('/data/m1', { method: 'PUT', body: 'moved' });
    const res = await s.req('/data/m1', { method: 'MOVE', headers: { destination: '/data/m2' } });
    expect(res.status).toBe(204);
    expect(await (await s.req('/data/m2')).text()).toBe('moved');
    expect((await s.req('/data/m1')).status).toBe(404);
    const across = await s.req('/data/m2', { method: 'MOVE', headers: { destination: `${s.url}/paid/m2` } });
    expect(across.status).toBe(400);
    expect((await errorOf(across)).code).toBe('EXDEV');
    const noDest = await s.req('/data/m2', { method: 'MOVE' });
    expect(noDest.status).toBe(400);
  });

  it('a body is the bytes to write, whatever Content-Type says (even a malformed one)', async () => {
    for (const [i, type] of ['application/json', 'application/x-www-form-urlencoded', 'j', 'text/plain; charset=latin1'].entries()) {
      const res = await s.req('/data/typed', { method: 'PUT', body: '{"k": "a=b&c"}', headers: { 'content-type': type } });
      expect(res.status, type).toBe(i === 0 ? 201 : 204);
      expect(await (await s.req('/data/typed')).text()).toBe('{"k": "a=b&c"}');
    }
  });

  it('bodies over the limit get 413 EFBIG; messages over their cap too, and nothing is sent', async () => {
    const huge = await s.req('/data/huge', { method: 'PUT', body: new Uint8Array(300 * 1024) });
    expect(huge.status).toBe(413);
    const err = await errorOf(huge);
    expect(err.code).toBe('EFBIG');
    expect(err.path).toBe('/data/huge');
    expect((await s.req('/data/huge')).status).toBe(404);
    const before = JSON.parse(await (await s.req('/svc/count')).text()) as { messages: number };
    const big = await s.req('/svc/box', { method: 'POST', body: 'x'.repeat(5000) });
    expect(big.status).toBe(413);
    expect(JSON.parse(await (await s.req('/svc/count')).text())).toEqual(before);
  });

  it('access levels: read-only 403, disabled 403, over budget 402', async () => {
    const ro = await s.req('/ro/x', { method: 'PUT', body: 'x' });
    expect(ro.status).toBe(403);
    expect((await errorOf(ro)).code).toBe('EACCES');
    expect((await s.req('/off/')).status).toBe(403);
    for (let i = 0; i < 3; i++) expect((await s.req(`/paid/${i}`, { method: 'PUT', body: 'x' })).status).toBe(201);
    const broke = await s.req('/paid/3', { method: 'PUT', body: 'x' });
    expect(broke.status).toBe(402);
    expect((await errorOf(broke)).code).toBe('EDQUOT');
  });
});

describe('other methods and bad requests', () => {
  it('OPTIONS lists the methods; an unsupported method is 405 ENOSYS', async () => {
    const o = await s.req('/data/x', { method: 'OPTIONS' });
    expect(o.status).toBe(204);
    expect(o.headers.get('allow')).toBe('GET, HEAD, PUT, POST, DELETE, MOVE, OPTIONS');
    const patch = await s.req('/data/x', { method: 'PATCH', body: 'x' });
    expect(patch.status).toBe(405);
    expect((await errorOf(patch)).code).toBe('ENOSYS');
  });

  it('path traversal, NUL, bad percent-encoding and over-long names are 400 and touch nothing', async () => {
    for (const path of ['/data/../ro/x', '/data/%2e%2e/ro/x', '/data/./x', '/data/a%00b', '/data/%zz']) {
      const res = await rawRequest('GET', path);
      expect(res.status, path).toBe(400);
      expect((JSON.parse(res.body) as { error: { code: string } }).error.code, path).toBe('EINVAL');
      const put = await rawRequest('PUT', path, { 'content-length': '0' });
      expect(put.status, path).toBe(400);
    }
    const long = await s.req('/data/' + 'n'.repeat(300), { method: 'PUT', body: 'x' });
    expect(long.status).toBe(400);
    expect((await errorOf(long)).code).toBe('ENAMETOOLONG');
    expect(((await (await s.req('/ro/')).json()) as unknown[]).length).toBe(0);
  });

  it('a percent-encoded name is decoded: spaces and unicode round-trip', async () => {
    const name = 'a file é.txt';
    expect((await s.req('/data/' + encodeURIComponent(name), { method: 'PUT', body: 'x' })).status).toBe(201);
    const rows = (await (await s.req('/data/')).json()) as { name: string }[];
    expect(rows.map((r) => r.name)).toContain(name);
  });

  it('every error code gets its status from the one table, with Retry-After and WWW-Authenticate where due', async () => {
    for (const [code, mapping] of Object.entries(ERROR_TABLE)) {
      const res = await s.req('/errors/raise', { method: 'POST', body: code });
      expect(res.status, code).toBe(mapping.http);
      const err = await errorOf(res);
      expect(err.code).toBe(code);
      expect(err.path).toBe('/errors/raise');
      expect(err.message).toBe(`/errors/raise: raised ${code}`);
      if (code === 'EAGAIN') expect(res.headers.get('retry-after')).toBe('3');
      if (code === 'EAUTH') expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
  });

  it('an unexpected exception is a 500 EIO and the server keeps serving', async () => {
    const res = await s.req('/errors/raise', { method: 'POST', body: 'crash' });
    expect(res.status).toBe(500);
    const err = await errorOf(res);
    expect(err.code).toBe('EIO');
    expect(err.message).toContain('an unexpected bug');
    expect((await s.req('/data/hello')).status).toBe(200);
  });
});
