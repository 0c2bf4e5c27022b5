import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, openStorage } from '../helpers.js';

afterEach(cleanup);

describe('SqliteEventStore.query: one path of one scope', () => {
  it('filters by scope, path, cursor and time; newest takes the last N in order', () => {
    const storage = openStorage();
    const log = storage.events;
    for (let i = 1; i <= 5; i++) {
      log.emit('a', '/logs/trace', 'data', { data: { n: i } });
      log.emit('b', '/logs/trace', 'data', { data: { n: -i } });
      log.emit('a', '/other', 'modified');
    }
    const all = storage.eventStore.query('a', '/logs/trace');
    expect(all.map((r) => (r.data as { n: number }).n)).toEqual([1, 2, 3, 4, 5]);
    const after = storage.eventStore.query('a', '/logs/trace', { afterId: all[1]!.id });
    expect(after.map((r) => (r.data as { n: number }).n)).toEqual([3, 4, 5]);
    const newest = storage.eventStore.query('a', '/logs/trace', { limit: 2, newest: true });
    expect(newest.map((r) => (r.data as { n: number }).n)).toEqual([4, 5]);
    expect(storage.eventStore.query('a', '/logs/trace', { fromTime: Date.now() + 60_000 })).toEqual([]);
    expect(storage.eventStore.query('a', '/logs/trace', { toTime: all[0]!.time }).length).toBeGreaterThanOrEqual(1);
    expect(storage.eventStore.query('a', undefined).map((r) => r.path)).toEqual(Array(5).fill(['/logs/trace', '/other']).flat());
  });
});
