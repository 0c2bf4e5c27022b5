import { afterAll, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/runtime/group-commit.js';
import { cleanup, collect, openStorage } from '../helpers.js';

afterAll(cleanup);

describe('GroupCommit', () => {
  it('commits the writes of one turn together, in order; a failing write fails alone with its events', async () => {
    const storage = openStorage();
    storage.db.exec('CREATE TABLE t (n INTEGER)');
    const gc = new GroupCommit(storage);
    const ins = storage.db.prepare('INSERT INTO t (n) VALUES (?)');
    const chan = storage.events.channel('s', '/x');
    const live = collect(storage.events.subscribe(chan.matcher('/'), undefined), 2, 2000);
    const results = await Promise.allSettled(
      [1, 2, 3].map((n) =>
        gc.add(() => {
          ins.run(n);
          chan.emit(`/n${n}`, 'created');
          if (n === 2) throw new Error('refused');
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('refused');
    expect(storage.db.prepare('SELECT n FROM t ORDER BY rowid').pluck().all()).toEqual([1, 3]);
    const seen = await live;
    expect(seen.map((e) => e.path)).toEqual(['/n1', '/n3']);
    expect(storage.eventStore.after(0, 100).map((e) => e.path)).toEqual(['/x/n1', '/x/n3']);
    expect(gc.pending).toBe(0);
  });

  it('a write queued while a group commits goes into the next one', async () => {
    const storage = openStorage();
    const gc = new GroupCommit(storage);
    const order: string[] = [];
    await gc.add(() => {
      order.push('a');
      void gc.add(() => order.push('c')).then(() => order.push('c committed'));
    });
    order.push('a committed');
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['a', 'a committed', 'c', 'c committed']);
  });
});
