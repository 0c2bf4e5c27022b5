import { afterAll, describe, expect, it } from 'vitest';
import { IdempotencyJournal, DEFAULT_JOURNAL_TTL_MS } from '../../src/runtime/idempotency-journal.js';
import { BudgetLedger } from '../../src/runtime/budget-ledger.js';
import { Storage } from '../../src/runtime/storage/index.js';
import { cleanup, openStorage, tempDir } from '../helpers.js';
import { serverMigrations } from '../../src/server/capabilities.js';

afterAll(cleanup);

function clock() {
  const c = { t: 1_000_000, now: () => c.t };
  return c;
}

describe('IdempotencyJournal', () => {
  it('remembers a value for its TTL (1 h by default), then counts it as absent', () => {
    const c = clock();
    const j = new IdempotencyJournal(openStorage(), { now: c.now });
    expect(j.ttlMs).toBe(DEFAULT_JOURNAL_TTL_MS);
    expect(j.get('k')).toBeUndefined();
    j.put('k', 'v1');
    expect(j.get('k')).toBe('v1');
    expect(j.entry('k')).toEqual({ key: 'k', value: 'v1', createdAt: c.t, expiresAt: c.t + 3600_000 });
    c.t += 3600_000 - 1;
    expect(j.has('k')).toBe(true);
    c.t += 1;
    expect(j.has('k')).toBe(false);
  });

  it('a TTL of 0 expires at once (the origin case)', () => {
    const j = new IdempotencyJournal(openStorage());
    j.put('k', 'v', 0);
    expect(j.get('k')).toBeUndefined();
  });

  it('checkOrRecord records once; the second call returns false', () => {
    const j = new IdempotencyJournal(openStorage());
    expect(j.checkOrRecord('k', 'first')).toBe(true);
    expect(j.checkOrRecord('k', 'second')).toBe(false);
    expect(j.get('k')).toBe('first');
  });

  it('remember runs the work once per key and rolls it back with the entry when it fails', () => {
    const storage = openStorage();
    const j = new IdempotencyJournal(storage);
    const ledger = new BudgetLedger(storage);
    ledger.setLimits('a', { tick: 100 });
    let runs = 0;
    const work = () => {
      runs++;
      return JSON.stringify({ reservation: ledger.reserve('a', 30).id });
    };
    const first = j.remember('a:compute:k1', work);
    const second = j.remember('a:compute:k1', work);
    expect(first.created).toBe(true);
    expect(second).toEqual({ value: first.value, created: false });
    expect(runs).toBe(1);
    expect(ledger.usage('a').tick.reserved).toBe(30);
    // Work that fails after reserving leaves neither the reservation nor the entry behind.
    expect(() =>
      j.remember('a:compute:k2', () => {
        ledger.reserve('a', 30);
        throw new Error('provider refused');
      }),
    ).toThrow('provider refused');
    expect(j.has('a:compute:k2')).toBe(false);
    expect(ledger.usage('a').tick.reserved).toBe(30);
  });

  it('an expired key can be used again and gets fresh work', () => {
    const c = clock();
    const j = new IdempotencyJournal(openStorage(), { now: c.now, ttlMs: 1000 });
    expect(j.remember('k', () => 'job-1').value).toBe('job-1');
    c.t += 1000;
    expect(j.remember('k', () => 'job-2')).toEqual({ value: 'job-2', created: true });
  });

  it('sweep removes expired entries, also on its own after enough writes', () => {
    const c = clock();
    const storage = openStorage();
    const j = new IdempotencyJournal(storage, { now: c.now, sweepEvery: 10 });
    for (let i = 0; i < 5; i++) j.put(`old${i}`, 'x', 100);
    j.put('live', 'x', 10_000);
    c.t += 200;
    const rows = () => storage.db.prepare('SELECT count(*) FROM idempotency_journal').pluck().get();
    expect(rows()).toBe(6);
    expect(j.size()).toBe(1);
    expect(j.sweep()).toBe(5);
    expect(rows()).toBe(1);
    for (let i = 0; i < 3; i++) j.put(`short${i}`, 'x', 1);
    c.t += 10;
    for (let i = 0; i < 6; i++) j.put(`more${i}`, 'x', 10_000); // the 10th write since the sweep sweeps
    expect(rows()).toBe(7);
  });

  it('expired entries are swept on a timer with no write at all, and the timer ends with the database', async () => {
    const c = clock();
    const storage = openStorage();
    const j = new IdempotencyJournal(storage, { now: c.now, sweepIntervalMs: 20 });
    j.put('old', 'x', 100);
    c.t += 200;
    const rows = () => storage.db.prepare('SELECT count(*) FROM idempotency_journal').pluck().get() as number;
    const deadline = Date.now() + 5000;
    while (rows() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(rows()).toBe(0);
    storage.close();
    await new Promise((r) => setTimeout(r, 60)); // a sweep after close would throw in the timer
  });

  it('entries survive a restart', () => {
    const dir = tempDir();
    const s1 = Storage.open(dir, { migrations: serverMigrations() });
    new IdempotencyJournal(s1).put('k', '{"job_id":"j1"}');
    s1.close();
    expect(new IdempotencyJournal(openStorage(dir)).get('k')).toBe('{"job_id":"j1"}');
  });

  it('rejects empty and over-long keys and bad TTLs', () => {
    const j = new IdempotencyJournal(openStorage());
    expect(() => j.put('', 'v')).toThrow(/idempotency key/);
    expect(() => j.put('x'.repeat(513), 'v')).toThrow(/idempotency key/);
    expect(() => j.put('k', 'v', -1)).toThrow(/TTL/);
  });
});
