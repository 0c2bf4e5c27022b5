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
  it('a quiet scope over its count is pruned when the database opens again', () => {
    const dir = tempDir();
    let storage = Storage.open(dir, { retention: { maxPerScope: 50_000 } });
    const chan = storage.events.channel('quiet', '/logs');
    // Fewer appends than the in-process pruning threshold of a 200-event limit would ever see per run.
    storage.tx(() => {
      for (let i = 0; i < 150; i++) chan.emit('/trace', 'data', { data: i });
    });
    storage.close();
    storage = Storage.open(dir, { retention: { maxPerScope: 100 } });
    expect(count(storage, 'quiet')).toBe(100);
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
