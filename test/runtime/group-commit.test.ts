import { afterEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/runtime/storage/group-commit.js';
import { cleanup, openStorage } from '../helpers.js';
import { FsError } from '../../src/fs/errors.js';

afterEach(cleanup);

describe('group commit', () => {
  it('concurrent work shares one transaction; a failing piece rolls back alone with its events', async () => {
    const storage = openStorage();
    storage.db.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    const ins = storage.db.prepare('INSERT INTO t (k) VALUES (?)');
    const gc = new GroupCommit(storage);
    const put = (k: string, fail = false) =>
      gc.run(() => {
        ins.run(k);
        storage.events.emit('s', `/${k}`, 'created');
        if (fail) throw new Error(`no ${k}`);
        return k;
      });
    const outcomes = await Promise.allSettled([put('a'), put('b', true), put('c'), put('a')]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    expect((outcomes[1] as PromiseRejectedResult).reason.message).toBe('no b');
    expect(storage.db.prepare('SELECT k FROM t ORDER BY k').pluck().all()).toEqual(['a', 'c']);
    expect(storage.eventStore.query('s', undefined).map((e) => e.path)).toEqual(['/a', '/c']);
    expect(gc.stats).toEqual({ transactions: 1, jobs: 4 });
    // Work of separate turns gets separate transactions.
    await put('d');
    await put('e');
    expect(gc.stats.transactions).toBe(3);
  });

  it('without savepoints, an FsError before writing fails only its own piece; any other error fails the group', async () => {
    const storage = openStorage();
    storage.db.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    const ins = storage.db.prepare('INSERT INTO t (k) VALUES (?)');
    const gc = new GroupCommit(storage);
    const put = (k: string, fail?: 'expected' | 'unexpected') =>
      gc.run(
        () => {
          if (fail === 'expected') throw new FsError('ENOENT', `/${k}`, 'gone');
          ins.run(k);
          if (fail === 'unexpected') throw new Error('disk on fire');
        },
        { savepoint: false },
      );
    const first = await Promise.allSettled([put('a'), put('b', 'expected'), put('c')]);
    expect(first.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const second = await Promise.allSettled([put('d'), put('e', 'unexpected'), put('f')]);
    expect(second.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(storage.db.prepare('SELECT k FROM t ORDER BY k').pluck().all()).toEqual(['a', 'c']);
  });
});
