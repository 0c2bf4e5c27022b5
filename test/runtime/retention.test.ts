/**
 * Event retention bounds every scope, quiet ones too: Storage prunes at open and on a timer, by count and
 * by age, and an id is never handed out twice even when a whole scope expires.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Storage } from '../../src/runtime/storage/index.js';
import { cleanup, tempDir } from '../helpers.js';

afterEach(cleanup);

const count = (s: Storage, scope: string) => s.db.prepare('SELECT count(*) FROM events WHERE scope = ?').pluck().get(scope) as number;

describe('event retention', () => {
  it('a scope left over its count by earlier runs is pruned at its first append in a new run', () => {
    const dir = tempDir();
    let storage = Storage.open(dir, { retention: { maxPerScope: 50_000 } });
    const chan = storage.events.channel('quiet', '/logs');
    // Fewer appends than a 200-event limit's pruning period would ever see in one run.
    storage.tx(() => {
      for (let i = 0; i < 150; i++) chan.emit('/trace', 'data', { data: i });
    });
    storage.close();
    storage = Storage.open(dir, { retention: { maxPerScope: 100 } });
    expect(count(storage, 'quiet')).toBe(150);
    const again = storage.events.channel('quiet', '/logs');
    storage.tx(() => again.emit('/trace', 'data', { data: 'next' }));
    expect(count(storage, 'quiet')).toBe(100);
    storage.close();
  });

  it('pruning a scope that lost nothing moves no watermark: a watch from 0 gets no reset', async () => {
    const storage = Storage.open(tempDir());
    const early = storage.events.channel('early', '/logs');
    storage.tx(() => {
      for (let i = 0; i < 5; i++) early.emit('/trace', 'data', { data: i });
    });
    const late = storage.events.channel('late', '/logs');
    storage.tx(() => late.emit('/trace', 'data', { data: 'first' })); // its first append prunes the scope
    expect(storage.eventStore.watermark(['late'])).toBe(0);
    const iter = storage.events.subscribe(late.matcher('/trace'), 0)[Symbol.asyncIterator]();
    const first = await iter.next();
    expect(first.value).toMatchObject({ type: 'data', path: '/trace' });
    await iter.return?.();
    storage.close();
  });

  it('the age sweep removes old events in batches and records what each scope lost', async () => {
    const storage = Storage.open(tempDir(), { retentionSweepMs: 0 });
    const a = storage.events.channel('a', '/logs');
    const b = storage.events.channel('b', '/logs');
    storage.tx(() => {
      for (let i = 0; i < 30; i++) (i % 2 ? a : b).emit('/trace', 'data', { data: i });
    });
    // The newest event overall (a's last) stays; a's watermark is the one of a before it.
    const idsOfA = storage.eventStore.query('a', undefined).map((e) => e.id);
    const later = Date.now() + 25 * 3600_000;
    expect(storage.eventStore.prune(later, 7)).toBe(29);
    expect(count(storage, 'a') + count(storage, 'b')).toBe(1);
    expect(storage.eventStore.watermark(['a'])).toBe(idsOfA.at(-2));
    expect(storage.eventStore.query('a', undefined).map((e) => e.id)).toEqual([idsOfA.at(-1)]);
    storage.close();
  });

  it('events older than the age limit go by the timer, without any new write', async () => {
    const storage = Storage.open(tempDir(), { retention: { maxAgeMs: 150 }, retentionSweepMs: 50 });
    const old = storage.events.channel('old', '/logs');
    const other = storage.events.channel('other', '/logs');
    storage.tx(() => {
      for (let i = 0; i < 10; i++) old.emit('/trace', 'data', { data: i });
      other.emit('/trace', 'data', { data: 'newest' });
    });
    expect(count(storage, 'old')).toBe(10);
    const deadline = Date.now() + 5000;
    while (count(storage, 'old') > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(count(storage, 'old')).toBe(0);
    storage.close();
  });

  it('the newest event overall is kept when its scope expires, so ids keep growing', () => {
    const dir = tempDir();
    let storage = Storage.open(dir);
    const chan = storage.events.channel('only', '/logs');
    storage.tx(() => {
      for (let i = 0; i < 5; i++) chan.emit('/trace', 'data', { data: i });
    });
    const last = storage.eventStore.lastId();
    storage.eventStore.prune(Date.now() + 48 * 3600_000);
    expect(count(storage, 'only')).toBe(1);
    storage.close();
    storage = Storage.open(dir);
    const next = storage.events.channel('only', '/logs');
    storage.tx(() => next.emit('/trace', 'data', { data: 'after' }));
    expect(storage.eventStore.lastId()).toBe(last + 1);
    storage.close();
  });
});
