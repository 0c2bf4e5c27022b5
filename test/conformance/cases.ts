/**
 * The core conformance cases, run over every transport against the fixture namespace. They state the
 * meaning users rely on: paths, errors, file kinds, versions and watch.
 */
import { describe, expect, it } from 'vitest';
import { TransportError, type Transport, type WatchedEvent } from './transport.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TransportError) return err.code;
    throw err;
  }
  return 'OK';
}

/** Consecutive changes of one path as one: created then modified is created, modified twice is modified. */
function collapse(events: WatchedEvent[]): WatchedEvent[] {
  const out: WatchedEvent[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (last && last.path === e.path && e.type === 'modified' && (last.type === 'created' || last.type === 'modified')) continue;
    out.push(e);
  }
  return out;
}

export function conformance(name: string, make: () => Promise<{ t: Transport; feed: (line: string) => Promise<void> }>) {
  describe(`conformance over ${name}`, () => {
    let t: Transport;
    let feed: (line: string) => Promise<void>;
    const fresh = async () => {
      ({ t, feed } = await make());
      return t;
    };

    it('data files: write, read, overwrite, append, stat with increasing version', async () => {
      await fresh();
      await t.write('/data/a.txt', 'hello\n');
      expect(await t.read('/data/a.txt')).toBe('hello\n');
      const v1 = (await t.stat('/data/a.txt')).version;
      await t.write('/data/a.txt', 'bye\n');
      expect(await t.read('/data/a.txt')).toBe('bye\n');
      await t.append('/data/a.txt', 'more\n');
      expect(await t.read('/data/a.txt')).toBe('bye\nmore\n');
      const st = await t.stat('/data/a.txt');
      expect(st.type).toBe('file');
      expect(st.size).toBe(9);
      expect(st.version).toBeGreaterThan(v1);
    });

    // Every file a PUT can create, a create + write + close on every mount creates: one case per
    // writable directory (a data tree, an agent's goals).
    it('writable directory /data: a new file is made by writing it', async () => {
      await fresh();
      await t.write('/data/made.txt', 'made by a write\n');
      expect(await t.read('/data/made.txt')).toBe('made by a write\n');
      expect((await t.list('/data')).map((e) => e.name)).toContain('made.txt');
    });

    it('writable directory /goals: a new goal is made by writing it; a bad one is EINVAL and makes nothing', async () => {
      await fresh();
      await t.write('/goals/made.json', '{"description": "made by a write"}');
      expect(JSON.parse(await t.read('/goals/made.json'))).toMatchObject({ description: 'made by a write', status: 'pending', priority: 0 });
      expect((await t.list('/goals')).map((e) => e.name)).toContain('made.json');
      expect(await code(t.write('/goals/bad.json', '{"priority": 1}'))).toBe('EINVAL');
      expect(await code(t.write('/goals/worse.json', '{"description": "x", "status": "sideways"}'))).toBe('EINVAL');
      const names = (await t.list('/goals')).map((e) => e.name);
      expect(names).not.toContain('bad.json');
      expect(names).not.toContain('worse.json');
      expect(await code(t.read('/goals/bad.json'))).toBe('ENOENT');
    });

    it('directories: mkdir, list, rmdir refuses a non-empty directory, remove', async () => {
      await fresh();
      await t.mkdir('/data/d');
      await t.write('/data/d/x', 'x');
      const names = (await t.list('/data/d')).map((e) => e.name);
      expect(names).toEqual(['x']);
      expect(await code(t.remove('/data/d'))).toBe('ENOTEMPTY');
      await t.remove('/data/d/x');
      await t.remove('/data/d');
      expect(await code(t.stat('/data/d'))).toBe('ENOENT');
      expect(await code(t.mkdir('/data'))).toBe('EEXIST');
    });

    it('the root lists mount points, /mounts names them with their access', async () => {
      await fresh();
      const names = (await t.list('/')).map((e) => e.name).sort();
      for (const n of ['data', 'goals', 'mounts', 'off', 'paid', 'ro', 'svc']) expect(names).toContain(n);
      const mounts = await t.read('/mounts');
      expect(mounts).toMatch(/^\/data data rw$/m);
      expect(mounts).toMatch(/^\/ro data ro$/m);
      expect(mounts).toMatch(/^\/off data disabled$/m);
    });

    it('errors: ENOENT, EISDIR, ENOTDIR, EINVAL for bad paths and bad JSON', async () => {
      await fresh();
      expect(await code(t.read('/data/missing'))).toBe('ENOENT');
      expect(await code(t.read('/nothere'))).toBe('ENOENT');
      expect(await code(t.read('/data'))).toBe('EISDIR');
      await t.write('/data/f', 'x');
      expect(await code(t.write('/data/f/g', 'x'))).toBe('ENOTDIR');
      expect(await code(t.call('/svc/echo', '{not json'))).toBe('EINVAL');
      expect(await code(t.write('/data/' + 'n'.repeat(300), 'x'))).toBe('ENAMETOOLONG');
    });

    it('names with control characters (newline, U+0001, DEL, tab) are EINVAL and create nothing', async () => {
      await fresh();
      for (const bad of ['a\nb', 'x\u0001', 'del\u007f', 'tab\there']) {
        expect(await code(t.write('/data/' + bad, 'x')), JSON.stringify(bad)).toBe('EINVAL');
        expect(await code(t.mkdir('/data/' + bad)), JSON.stringify(bad)).toBe('EINVAL');
        expect(await code(t.read('/data/' + bad)), JSON.stringify(bad)).toBe('EINVAL');
      }
      expect(await t.list('/data')).toEqual([]);
    });

    it('access levels: read-only and disabled mounts refuse, budgeted mounts charge', async () => {
      await fresh();
      expect(await code(t.write('/ro/x', 'x'))).toBe('EACCES');
      expect(await code(t.list('/off'))).toBe('EACCES');
      expect(await code(t.read('/off/x'))).toBe('EACCES');
      await t.write('/paid/1', 'a');
      await t.write('/paid/2', 'b');
      await t.write('/paid/3', 'c');
      expect(await code(t.write('/paid/4', 'd'))).toBe('EDQUOT');
      expect(await t.read('/paid/3')).toBe('c');
    });

    it('admin-only policy: admins write it, others get EACCES', async () => {
      await fresh();
      if (t.admin) {
        await t.write('/svc/policy', '{"limit": 5}');
        expect(JSON.parse(await t.read('/svc/policy'))).toEqual({ limit: 5 });
        expect(await code(t.write('/svc/policy', '{bad'))).toBe('EINVAL');
      }
      expect(JSON.parse(await t.read('/svc/policy')).limit).toBeGreaterThan(0);
    });

    it('message files: each write or append commits exactly one message', async () => {
      await fresh();
      await t.write('/svc/box', 'one');
      await t.append('/svc/box', 'two');
      await t.write('/svc/box', 'three\nlines\n');
      expect(JSON.parse(await t.read('/svc/box'))).toEqual(['one', 'two', 'three\nlines\n']);
      expect(JSON.parse(await t.read('/svc/count'))).toEqual({ messages: 3 });
      expect(await code(t.write('/svc/box', 'x'.repeat(2000)))).toBe('EFBIG');
      expect(JSON.parse(await t.read('/svc/count'))).toEqual({ messages: 3 });
    });

    it('call files answer the request on the same handle', async () => {
      await fresh();
      expect(await t.call('/svc/echo', 'ping')).toBe('echo:ping');
      expect(await t.call('/svc/echo', '{"a":1}')).toBe('echo:{"a":1}');
    });

    it('stream files deliver data until the stream ends', async () => {
      await fresh();
      const reading = t.readStream('/svc/feed');
      await new Promise((r) => setTimeout(r, 300));
      await feed('first');
      await feed('second');
      await feed('end');
      expect(await reading).toBe('first\nsecond\n');
    });

    it('watch: replay after a cursor, then live, no gap, no duplicate', async () => {
      await fresh();
      await t.write('/data/w1', '1');
      // A transport may make one write out of several operations (FUSE: create, then write), so the
      // cursor is the last event so far, and consecutive changes of one path count as one.
      const base = await t.watch('/data', 0, 100, 500);
      expect(base.length).toBeGreaterThanOrEqual(1);
      const cursor = base[base.length - 1]!.id;
      await t.write('/data/w2', '2');
      await t.write('/data/w1', '11');
      await t.remove('/data/w2');
      const events = await t.watch('/data', cursor, 100, 500);
      expect(collapse(events).map((e) => [e.type, e.path])).toEqual([
        ['created', '/data/w2'],
        ['modified', '/data/w1'],
        ['deleted', '/data/w2'],
      ]);
      const ids = events.map((e) => e.id);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids[0]).toBeGreaterThan(cursor);
    });
  });
}
