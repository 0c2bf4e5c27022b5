import { afterAll, describe, expect, it } from 'vitest';
import { Namespace } from '../../src/fs/namespace.js';
import { writeAll } from '../../src/fs/ops.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import type { FsEvent } from '../../src/fs/types.js';
import { Storage } from '../../src/runtime/storage/index.js';
import { admin, cleanup, collect, openStorage, tempDir } from '../helpers.js';

afterAll(cleanup);

function build(storage: Storage) {
  const ns = new Namespace({ scope: 'w', events: storage.events });
  mountWithAccess(ns, '/data', storage.dataTree('w:data', { scope: 'w', prefix: '/data' }), ReadWrite);
  return ns;
}

describe('watch', () => {
  it('replays after the cursor, then goes live: no gap, no duplicate, with writers racing', async () => {
    const storage = openStorage();
    const ns = build(storage);
    await ns.mkdir('/data/d', 0o755, admin);
    const writers = 4;
    const perWriter = 150;
    let written = 0;
    const write = async (w: number) => {
      for (let i = 0; i < perWriter; i++) {
        await writeAll(ns, `/data/d/w${w}-${i}`, `${i}`, admin);
        written++;
        if (i % 7 === 0) await new Promise((r) => setImmediate(r));
      }
    };
    // Start writers, then start watching part-way through from cursor 0: the watcher must see every
    // creation exactly once, in id order, whether it came from replay or live.
    const racing = Promise.all([0, 1, 2, 3].map(write));
    await new Promise((r) => setTimeout(r, 5));
    const startedAt = written;
    const events = collect(ns.watch('/data/d', 0, admin), writers * perWriter, 20_000);
    await racing;
    const got = (await events).filter((e) => e.type === 'created');
    expect(startedAt).toBeLessThan(writers * perWriter);
    expect(got.length).toBe(writers * perWriter);
    const ids = got.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set(got.map((e) => e.path)).size).toBe(writers * perWriter);
  });

  it('watches a single file or a whole subtree, and nothing outside it', async () => {
    const storage = openStorage();
    const ns = build(storage);
    const fileEvents = collect(ns.watch('/data/a', undefined, admin), 2, 2000);
    const treeEvents = collect(ns.watch('/data', undefined, admin), 3, 2000);
    await writeAll(ns, '/data/a', '1', admin);
    await writeAll(ns, '/data/ab', '1', admin); // not under /data/a
    await writeAll(ns, '/data/a', '2', admin);
    expect((await fileEvents).map((e) => [e.type, e.path])).toEqual([
      ['created', '/data/a'],
      ['modified', '/data/a'],
    ]);
    expect((await treeEvents).map((e) => e.path)).toEqual(['/data/a', '/data/ab', '/data/a']);
  });

  it('a cursor older than retention gets reset first, then what is retained', async () => {
    const storage = openStorage(tempDir(), { retention: { maxPerScope: 100 } });
    const ns = build(storage);
    for (let i = 0; i < 300; i++) await writeAll(ns, `/data/f${i}`, 'x', admin);
    storage.eventStore.pruneScope('w');
    const events = await collect(ns.watch('/data', 1, admin), 101, 3000);
    expect(events[0]!.type).toBe('reset');
    const after = events.slice(1);
    expect(after.length).toBe(100);
    expect(after[0]!.id).toBeGreaterThan(events[0]!.id);
    expect(after.at(-1)!.path).toBe('/data/f299');
  });

  it('resumes across a restart: ids keep growing and the cursor still works', async () => {
    const dir = tempDir();
    let storage = Storage.open(dir);
    let ns = build(storage);
    await writeAll(ns, '/data/before', '1', admin);
    const [first] = await collect(ns.watch('/data', 0, admin), 1, 1000);
    storage.close();
    storage = Storage.open(dir);
    ns = build(storage);
    await writeAll(ns, '/data/after', '2', admin);
    const resumed: FsEvent[] = await collect(ns.watch('/data', first!.id, admin), 1, 1000);
    expect(resumed.map((e) => e.path)).toEqual(['/data/after']);
    expect(resumed[0]!.id).toBeGreaterThan(first!.id);
    storage.close();
  });

  it('a watch of a stream ends with its end event; a slow watcher catches up from the store', async () => {
    const storage = Storage.open(tempDir(), { retention: { maxPerScope: 100_000 } });
    const chan = storage.events.channel('w', '/logs');
    const iter = storage.events.subscribe(chan.matcher('/trace'), undefined)[Symbol.asyncIterator]();
    // Far more events than the live queue holds while nobody reads: the subscription falls back to
    // the store and still delivers each exactly once.
    const total = 12_000;
    storage.tx(() => {
      for (let i = 0; i < total; i++) chan.emit('/trace', 'data', { data: i });
    });
    const seen: number[] = [];
    while (seen.length < total) {
      const r = await iter.next();
      seen.push(r.value!.data as number);
    }
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
    await iter.return!();

    const m = chan.matcher('/trace');
    m.endsAt = '/trace';
    const ending = collect(storage.events.subscribe(m, undefined), 10, 2000);
    chan.emit('/trace', 'data', { data: 'last' });
    chan.emit('/trace', 'end');
    chan.emit('/trace', 'data', { data: 'after end' });
    expect((await ending).map((e) => e.type)).toEqual(['data', 'end']);
    storage.close();
  });

  it('events of a rolled-back transaction are never published', async () => {
    const storage = openStorage();
    const chan = storage.events.channel('w', '/');
    const got = collect(storage.events.subscribe(chan.matcher('/'), undefined), 2, 500);
    try {
      storage.tx(() => {
        chan.emit('/x', 'created');
        throw new Error('boom');
      });
    } catch {
      /* expected */
    }
    chan.emit('/y', 'created');
    expect((await got).map((e) => e.path)).toEqual(['/y']);
  });
});
