/**
 * Links and special nodes of data trees over HTTP (CONTRACT section 12), against the assembled server
 * on loopback: symbolic links made, shown, read (?nofollow=1) and followed only within the agent's
 * memory (and only where the caller's token reaches); hard links sharing one file, one ETag and every
 * event; FIFOs and sockets as nodes without data; device nodes refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FsEvent } from '../../src/fs/types.js';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from './served.js';

let s: Served;
const M = '/agents/a/memory';

beforeAll(async () => {
  s = await serveAgent9();
  await s.ok('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'a', program: 'echo' }) });
  await s.ok('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'b', program: 'echo' }) });
});

afterAll(async () => {
  await s?.close();
  cleanup();
});

async function put(path: string, body: string, query = ''): Promise<Response> {
  return s.call(path + query, { method: 'PUT', body });
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, code: body.error.code, message: body.error.message };
}

type Row = { name: string; type: string; size: number; nlink?: number; ino?: number; target?: string; version: number };
const listing = async (dir: string) => (await (await s.call(dir + '/')).json()) as Row[];
const entry = async (dir: string, name: string) => (await listing(dir)).find((e) => e.name === name)!;

describe('symbolic links over HTTP', () => {
  it('PUT ?symlink=1 makes one; listings and ?nofollow=1 show the link, GET and HEAD follow it', async () => {
    expect((await put(`${M}/f.txt`, 'hello')).status).toBe(201);
    const made = await put(`${M}/l`, 'f.txt', '?symlink=1');
    expect(made.status).toBe(201);
    expect(made.headers.get('x-agent9-type')).toBe('symlink');
    expect(made.headers.get('x-agent9-target')).toBe('f.txt');
    expect(await entry(M, 'l')).toMatchObject({ type: 'symlink', target: 'f.txt', size: 5, nlink: 1 });

    const read = await s.call(`${M}/l`);
    expect(await read.text()).toBe('hello');
    const file = await s.call(`${M}/f.txt`, { method: 'HEAD' });
    expect(read.headers.get('etag')).toBe(file.headers.get('etag'));
    const raw = await s.call(`${M}/l?nofollow=1`);
    expect(raw.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await raw.text()).toBe('f.txt');
    expect((await s.call(`${M}/l`, { method: 'HEAD' })).headers.get('x-agent9-type')).toBe('file');
    const lstat = await s.call(`${M}/l?nofollow=1`, { method: 'HEAD' });
    expect(lstat.headers.get('x-agent9-type')).toBe('symlink');
    expect(lstat.headers.get('x-agent9-size')).toBe('5');

    // Writes go through to the target; an existing name is never replaced by a link.
    expect((await put(`${M}/l`, 'through the link')).status).toBe(204);
    expect(await (await s.call(`${M}/f.txt`)).text()).toBe('through the link');
    expect(await errorOf(await put(`${M}/l`, 'x', '?symlink=1'))).toMatchObject({ status: 409, code: 'EEXIST' });
    // DELETE removes the link, not the file.
    expect((await s.call(`${M}/l`, { method: 'DELETE' })).status).toBe(204);
    expect(await (await s.call(`${M}/f.txt`)).text()).toBe('through the link');
  });

  it('follows links among the directories of a path, and a link to a directory lists it', async () => {
    await s.call(`${M}/d/`, { method: 'PUT' });
    await put(`${M}/d/x`, 'in d');
    await put(`${M}/ld`, 'd', '?symlink=1');
    await put(`${M}/d/up`, '../d/x', '?symlink=1');
    expect(await (await s.call(`${M}/ld/x`)).text()).toBe('in d');
    expect(await (await s.call(`${M}/ld/up`)).text()).toBe('in d');
    expect((await (await s.call(`${M}/ld`)).json()) as Row[]).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'x' })]));
    expect((await put(`${M}/ld/y`, 'made through the link')).status).toBe(201);
    expect(await (await s.call(`${M}/d/y`)).text()).toBe('made through the link');
  });

  it('a dangling link is 404 to read and PUT makes its target; links out of the tree and loops are refused', async () => {
    await put(`${M}/dl`, 'later.txt', '?symlink=1');
    expect(await errorOf(await s.call(`${M}/dl`))).toMatchObject({ status: 404, code: 'ENOENT' });
    expect((await put(`${M}/dl`, 'now')).status).toBe(201);
    expect(await (await s.call(`${M}/later.txt`)).text()).toBe('now');

    await put(`${M}/abs`, '/etc/passwd', '?symlink=1');
    await put(`${M}/up`, '../status', '?symlink=1');
    for (const name of ['abs', 'up']) {
      const e = await errorOf(await s.call(`${M}/${name}`));
      expect(e).toMatchObject({ status: 400, code: 'EINVAL' });
      expect(e.message).toMatch(/leads outside the data tree/);
    }
    expect(await errorOf(await put(`${M}/abs`, 'x'))).toMatchObject({ status: 400, code: 'EINVAL' });
    await put(`${M}/loop1`, 'loop2', '?symlink=1');
    await put(`${M}/loop2`, 'loop1', '?symlink=1');
    expect(await errorOf(await s.call(`${M}/loop1`))).toMatchObject({ status: 400, code: 'ELOOP' });
    expect(await errorOf(await put(`${M}/e`, '', '?symlink=1'))).toMatchObject({ status: 404, code: 'ENOENT' });
  });

  it('a token that reaches only part of the tree cannot read past its paths through a link', async () => {
    await s.call(`${M}/pub/`, { method: 'PUT' });
    await put(`${M}/secret.txt`, 'secret');
    await put(`${M}/pub/peek`, '../secret.txt', '?symlink=1');
    const { token } = await s.ok<{ token: string }>('/runtime/tokens/new', { method: 'POST', body: JSON.stringify({ agent: 'a', paths: ['/memory/pub'] }) });
    expect(await errorOf(await s.call('/memory/pub/peek', { token }))).toMatchObject({ status: 403, code: 'EACCES' });
    expect(await (await s.call('/memory/pub/peek?nofollow=1', { token })).text()).toBe('../secret.txt');
    // Nor make a second name of a file it cannot write.
    expect(await errorOf(await s.call('/memory/pub/mine?link=/memory/secret.txt', { method: 'PUT', token }))).toMatchObject({ status: 403 });
  });
});

describe('hard links over HTTP', () => {
  it('PUT ?link= gives a file another name: one content, one ETag, one ino, events under every name', async () => {
    await put(`${M}/h1`, 'one');
    const made = await s.call(`${M}/h2?link=${encodeURIComponent(`${M}/h1`)}`, { method: 'PUT' });
    expect(made.status).toBe(201);
    expect(made.headers.get('x-agent9-nlink')).toBe('2');
    const [a, b] = [await entry(M, 'h1'), await entry(M, 'h2')];
    expect(a.ino).toBe(b.ino);
    expect([a.nlink, b.nlink]).toEqual([2, 2]);

    const cx = { principal: { id: 'test', admin: true } };
    const ac = new AbortController();
    const seen: FsEvent[] = [];
    const watching = (async () => {
      for await (const ev of s.a9.namespace.watch(M, undefined, { ...cx, signal: ac.signal })) {
        seen.push(ev);
        if (seen.length >= 2) break;
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    await put(`${M}/h2`, 'changed through h2');
    await watching;
    ac.abort();
    expect(seen.map((e) => [e.type, e.path]).sort()).toEqual([
      ['modified', `${M}/h1`],
      ['modified', `${M}/h2`],
    ]);
    const r1 = await s.call(`${M}/h1`);
    expect(await r1.text()).toBe('changed through h2');
    expect(r1.headers.get('etag')).toBe((await s.call(`${M}/h2`)).headers.get('etag'));

    // A name goes alone; the file stays with the other.
    expect((await s.call(`${M}/h1`, { method: 'DELETE' })).status).toBe(204);
    expect(await (await s.call(`${M}/h2`)).text()).toBe('changed through h2');
    expect((await entry(M, 'h2')).nlink).toBe(1);
  });

  it('refuses a link to a directory, across agents, over an existing name, and names the path', async () => {
    await s.call(`${M}/dir/`, { method: 'PUT' });
    expect(await errorOf(await s.call(`${M}/dl2?link=${M}/dir`, { method: 'PUT' }))).toMatchObject({ status: 403, code: 'EPERM' });
    expect(await errorOf(await s.call(`/agents/b/memory/x?link=${M}/h2`, { method: 'PUT' }))).toMatchObject({ status: 400, code: 'EXDEV' });
    await put(`${M}/taken`, 't');
    expect(await errorOf(await s.call(`${M}/taken?link=${M}/h2`, { method: 'PUT' }))).toMatchObject({ status: 409, code: 'EEXIST' });
    const gone = await errorOf(await s.call(`${M}/n?link=${M}/nothing`, { method: 'PUT' }));
    expect(gone).toMatchObject({ status: 404, code: 'ENOENT' });
    expect(gone.message).toContain(`${M}/nothing`);
  });
});

describe('FIFOs, sockets and device nodes over HTTP', () => {
  it('mknod=fifo and socket make nodes without data; char and block are EPERM', async () => {
    const fifo = await s.call(`${M}/p?mknod=fifo&mode=0600`, { method: 'PUT' });
    expect(fifo.status).toBe(201);
    expect(fifo.headers.get('x-agent9-type')).toBe('fifo');
    expect(fifo.headers.get('x-agent9-mode')).toBe('0600');
    expect((await s.call(`${M}/sock?mknod=socket`, { method: 'PUT' })).status).toBe(201);
    expect(await entry(M, 'sock')).toMatchObject({ type: 'socket', size: 0 });
    expect(await errorOf(await s.call(`${M}/p`))).toMatchObject({ status: 400, code: 'EINVAL' });
    expect(await errorOf(await put(`${M}/p`, 'x'))).toMatchObject({ status: 400, code: 'EINVAL' });
    expect(await errorOf(await s.call(`${M}/dev?mknod=char`, { method: 'PUT' }))).toMatchObject({ status: 403, code: 'EPERM' });
    expect(await errorOf(await s.call(`${M}/dev?mknod=bogus`, { method: 'PUT' }))).toMatchObject({ status: 400, code: 'EINVAL' });
    expect((await s.call(`${M}/p`, { method: 'DELETE' })).status).toBe(204);
  });
});
