import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AGENT_LEVEL, BudgetLedger, budgetHook, formatUsd, MINUTE_MS, scopeLevels } from '../../src/runtime/budget-ledger.js';
import { Storage } from '../../src/runtime/storage/index.js';
import { Namespace } from '../../src/fs/namespace.js';
import { mountWithAccess, Budgeted } from '../../src/mounts/access.js';
import { writeAll } from '../../src/fs/ops.js';
import { cleanup, expectCode, openStorage, tempDir, user } from '../helpers.js';
import { serverMigrations } from '../../src/server/capabilities.js';

afterAll(cleanup);

function clock(start = Date.UTC(2025, 0, 1, 12, 0, 0)) {
  const c = { t: start, now: () => c.t, advance: (ms: number) => (c.t += ms) };
  return c;
}

function ledger(opts: { now?: () => number } = {}) {
  const storage = openStorage();
  return { storage, ledger: new BudgetLedger(storage, opts) };
}

describe('BudgetLedger', () => {
  it('reserves, reconciles (refunding the rest) and reports limit, reserved, spent, remaining', () => {
    const { ledger: l } = ledger();
    l.setLimits('a', { tick: 100, day: 1000 });
    const r = l.reserve('a', 40, undefined, 'job 1');
    expect(l.usage('a')).toEqual({
      tick: { limit: 100, reserved: 40, spent: 0, remaining: 60 },
      day: { limit: 1000, reserved: 40, spent: 0, remaining: 960 },
    });
    const s = l.reconcile(r, 15);
    expect(s).toEqual({ state: 'reconciled', charged: 15, refunded: 25, overrun: 0, changed: true });
    expect(l.usage('a').tick).toEqual({ limit: 100, reserved: 0, spent: 15, remaining: 85 });
    expect(l.usage('a').day).toEqual({ limit: 1000, reserved: 0, spent: 15, remaining: 985 });
  });

  it('fails with EDQUOT naming the window and changes nothing', async () => {
    const { ledger: l } = ledger();
    l.setLimits('a', { tick: 10, day: 1000 });
    l.reserve('a', 8);
    const err = await expectCode(Promise.resolve().then(() => l.reserve('a', 3, undefined, '', '/compute/new')), 'EDQUOT', '/compute/new');
    expect(err.message).toMatch(/agent tick window has 2 micro-USD left of 10/);
    expect(l.usage('a').tick.reserved).toBe(8);
    expect(l.openReservations('a')).toHaveLength(1);
    // Exactly the remaining amount still fits.
    l.reserve('a', 2);
    expect(l.usage('a').tick.remaining).toBe(0);
  });

  it('the day window limits across ticks; the tick window resets at each tick', () => {
    const { ledger: l } = ledger();
    l.setLimits('a', { tick: 5, day: 12 });
    l.resetTick('a');
    l.charge('a', 5);
    expect(() => l.charge('a', 1)).toThrow(/tick window/);
    l.resetTick('a');
    expect(l.usage('a').tick).toEqual({ limit: 5, reserved: 0, spent: 0, remaining: 5 });
    l.charge('a', 5);
    l.resetTick('a');
    expect(() => l.charge('a', 3)).toThrow(/day window has 2 micro-USD left of 12/);
    l.charge('a', 2);
    expect(l.usage('a').day).toEqual({ limit: 12, reserved: 0, spent: 12, remaining: 0 });
  });

  it('a reservation counts in the tick it was made in, also when settled in a later tick', () => {
    const { ledger: l } = ledger();
    l.setLimits('a', { tick: 10 });
    l.resetTick('a');
    const r = l.reserve('a', 10);
    l.resetTick('a');
    expect(l.usage('a').tick.reserved).toBe(0);
    l.reserve('a', 10); // the new tick has its full limit
    l.reconcile(r, 10);
    expect(l.usage('a').tick).toEqual({ limit: 10, reserved: 10, spent: 0, remaining: 0 });
    expect(l.usage('a').day.spent).toBe(10);
  });

  it('the day window is rolling: spend leaves it 24 h after the minute it was made', () => {
    const c = clock();
    const { ledger: l } = ledger({ now: c.now });
    l.setLimits('a', { day: 10 });
    l.charge('a', 6);
    c.advance(12 * 3600_000);
    l.charge('a', 4);
    expect(() => l.charge('a', 1)).toThrow(/day window has 0/);
    c.advance(12 * 3600_000 - 2 * MINUTE_MS); // 23:58 after the first charge
    expect(l.usage('a').day.spent).toBe(10);
    c.advance(2 * MINUTE_MS); // 24:00: the first minute's spend has left the window
    expect(l.usage('a').day).toEqual({ limit: 10, reserved: 0, spent: 4, remaining: 6 });
    l.charge('a', 6);
    c.advance(12 * 3600_000);
    expect(l.usage('a').day.spent).toBe(6);
  });

  it('release gives the whole reservation back; settling twice changes nothing', () => {
    const { ledger: l } = ledger();
    l.setLimits('a', { tick: 10 });
    const r = l.reserve('a', 7);
    expect(l.release(r)).toMatchObject({ state: 'released', charged: 0, refunded: 7, changed: true });
    expect(l.usage('a').tick).toMatchObject({ reserved: 0, spent: 0, remaining: 10 });
    expect(l.reconcile(r, 7)).toMatchObject({ state: 'released', changed: false });
    expect(l.release(r.id)).toMatchObject({ changed: false });
    expect(l.usage('a').tick).toMatchObject({ reserved: 0, spent: 0, remaining: 10 });
    expect(l.get(r.id)).toMatchObject({ state: 'released', actual: 0 });
  });

  // Changed on purpose (max_cost became a hard cap): an overrun used to be charged in full, which let
  // `spent` pass the limit.
  it('a reservation is a hard cap: an actual cost above it is charged at the reservation and reported as an overrun', () => {
    const { ledger: l } = ledger();
    l.setLimits('a', { tick: 10 }, AGENT_LEVEL);
    l.setLimits('a', { day: 6 }, 'org:o');
    const r = l.reserve('a', 4, { org: 'o' });
    const other = l.reserve('a', 2, { org: 'o' });
    expect(l.reconcile(r, 12)).toEqual({ state: 'reconciled', charged: 4, refunded: 0, overrun: 8, changed: true });
    expect(l.reconcile(other, 2000)).toMatchObject({ charged: 2, overrun: 1998 });
    expect(l.usage('a').tick).toEqual({ limit: 10, reserved: 0, spent: 6, remaining: 4 });
    expect(l.usage('a', 'org:o').day).toEqual({ limit: 6, reserved: 0, spent: 6, remaining: 0 });
    // Settling again reports the same and changes nothing; the overrun is kept with the reservation.
    expect(l.reconcile(r, 50)).toEqual({ state: 'reconciled', charged: 4, refunded: 0, overrun: 8, changed: false });
    expect(l.get(r.id)).toMatchObject({ state: 'reconciled', amount: 4, actual: 4, overrun: 8 });
    expect(() => l.reserve('a', 1, { org: 'o' })).toThrow(/org:o day window has 0/);
    expect(() => l.reserve('a', 0, { org: 'o' })).not.toThrow();
  });

  it('scopes are enforced broad to narrow, only where a limit is set (the origin case: org 10, repo 5, issue 2)', () => {
    const { ledger: l } = ledger();
    l.setLimits('a', { tick: 10 }, 'org:acme');
    l.setLimits('a', { tick: 5 }, 'repo:web');
    l.setLimits('a', { tick: 2 }, 'issue:42');
    const scope = { org: 'acme', repo: 'web', issue: '42' };
    expect(() => l.reserve('a', 3, scope)).toThrow(/issue:42 tick window has 2 micro-USD left/);
    const r = l.reserve('a', 2, scope);
    expect(() => l.reserve('a', 2, scope)).toThrow(/issue:42 tick window has 0/);
    // Another issue in the same repo draws on the repo and the org, not on issue 42.
    l.reserve('a', 3, { org: 'acme', repo: 'web', issue: '43' });
    expect(() => l.reserve('a', 1, { org: 'acme', repo: 'web' })).toThrow(/repo:web tick window has 0/);
    expect(() => l.reserve('a', 6, { org: 'acme' })).toThrow(/org:acme tick window has 5/);
    l.reserve('a', 5, { org: 'acme' });
    expect(() => l.reserve('a', 1, { org: 'acme', repo: 'other' })).toThrow(/org:acme/);
    // An unlimited scope is only counted.
    l.reserve('a', 100, { org: 'unlimited-org' });
    expect(l.usage('a', 'org:unlimited-org').tick).toEqual({ limit: null, reserved: 100, spent: 0, remaining: null });
    expect(l.usage('a', scope).tick).toEqual({ limit: 2, reserved: 2, spent: 0, remaining: 0 });
    l.reconcile(r, 1);
    expect(l.usage('a', 'issue:42').tick).toEqual({ limit: 2, reserved: 0, spent: 1, remaining: 1 });
    expect(l.usage('a', 'repo:web').tick).toMatchObject({ reserved: 3, spent: 1, remaining: 1 });
    const all = l.usageAll('a');
    expect(Object.keys(all.scopes)).toEqual(['issue:42', 'issue:43', 'org:acme', 'org:unlimited-org', 'repo:web']);
    expect(all.agent.tick).toMatchObject({ limit: null, reserved: 108, spent: 1 });
  });

  it('agent limits apply to scoped reservations too, and a failure at any level leaves every level unchanged', () => {
    const { ledger: l } = ledger();
    l.setLimits('a', { day: 5 });
    l.setLimits('a', { day: 100 }, 'org:acme');
    expect(() => l.reserve('a', 6, { org: 'acme' })).toThrow(/agent day window/);
    expect(l.usage('a', 'org:acme').day.reserved).toBe(0);
    expect(l.usage('a').day.reserved).toBe(0);
  });

  it('a service level (its own caps) is checked after the agent level and before the scopes', () => {
    const { ledger: l } = ledger();
    l.setLimits('a', { day: 100 });
    l.setLimits('a', { tick: 4 }, 'service:compute');
    l.setLimits('a', { tick: 1 }, 'org:acme');
    expect(() => l.reserve('a', 5, { service: 'compute', org: 'acme' })).toThrow(/service:compute tick window has 4/);
    l.reserve('a', 3, { service: 'compute' });
    l.reserve('a', 50, { service: 'containers' });
    expect(l.usage('a', 'service:compute').tick).toEqual({ limit: 4, reserved: 3, spent: 0, remaining: 1 });
    expect(l.usage('a').day.reserved).toBe(53);
  });

  it('rejects bad amounts, limits and scope ids with EINVAL', () => {
    const { ledger: l } = ledger();
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 60]) expect(() => l.reserve('a', bad)).toThrow(/non-negative integer/);
    expect(() => l.setLimits('a', { tick: -5 })).toThrow(/tick limit/);
    expect(() => l.setLimits('a', { tick: 1 }, 'team:x')).toThrow(/invalid budget scope/);
    expect(() => scopeLevels({ org: '../x' })).toThrow(/budget_scope.org/);
    expect(() => l.reserve('a', 1, { repo: '' })).toThrow(/budget_scope.repo/);
    expect(scopeLevels({ org: 'a', repo: null, issue: '7' })).toEqual(['org:a', 'issue:7']);
  });

  it('limits, counters and open reservations persist across a reopen of the database', () => {
    const dir = tempDir();
    const s1 = Storage.open(dir, { migrations: serverMigrations() });
    const l1 = new BudgetLedger(s1);
    l1.setLimits('a', { tick: 50, day: 80 });
    l1.resetTick('a');
    const open = l1.reserve('a', 20);
    l1.charge('a', 10);
    s1.close();
    const s2 = openStorage(dir);
    const l2 = new BudgetLedger(s2);
    expect(l2.usage('a')).toEqual({
      tick: { limit: 50, reserved: 20, spent: 10, remaining: 20 },
      day: { limit: 80, reserved: 20, spent: 10, remaining: 50 },
    });
    expect(l2.openReservations().map((r) => r.id)).toEqual([open.id]);
    l2.release(open.id);
    expect(l2.usage('a').tick.remaining).toBe(40);
  });

  it('a hundred interleaved reservers can never overspend, across two connections to one database', async () => {
    const dir = tempDir();
    const a = new BudgetLedger(openStorage(dir));
    const b = new BudgetLedger(openStorage(dir));
    a.setLimits('a', { tick: 250, day: 1000 });
    let granted = 0;
    let refused = 0;
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, i % 7));
        const l = i % 2 ? a : b;
        try {
          const r = l.reserve('a', 10);
          granted++;
          await new Promise((res) => setTimeout(res, i % 5));
          l.reconcile(r, i % 3 === 0 ? 10 : 7);
        } catch (err) {
          expect((err as { code: string }).code).toBe('EDQUOT');
          refused++;
        }
      }),
    );
    const u = a.usage('a');
    expect(granted + refused).toBe(100);
    expect(u.tick.reserved).toBe(0);
    expect(u.tick.spent).toBeLessThanOrEqual(250);
    expect(granted).toBeGreaterThanOrEqual(25);
  });

  it('prune drops what no window can see and keeps what one can', () => {
    const c = clock();
    const { ledger: l, storage } = ledger({ now: c.now });
    l.setLimits('a', { day: 100 });
    l.charge('a', 30);
    l.resetTick('a');
    l.resetTick('a');
    c.advance(26 * 3600_000);
    l.charge('a', 5);
    l.prune();
    const rows = storage.db.prepare('SELECT count(*) FROM budget_reservations').pluck().get();
    expect(rows).toBe(1);
    expect(l.usage('a').day.spent).toBe(5);
  });

  it('formats micro-USD as dollars', () => {
    expect(formatUsd(1_500_000)).toBe('$1.500000');
    expect(formatUsd(42)).toBe('$0.000042');
  });
});

describe('budgetHook (the Budgeted access level)', () => {
  it('charges each write to the agent budget and refuses writes over it with EDQUOT', async () => {
    const storage = openStorage();
    const l = new BudgetLedger(storage);
    l.setLimits('bob', { tick: 2, day: 3 });
    const ns = new Namespace({ scope: 'bob', events: storage.events });
    mountWithAccess(ns, '/memory', storage.dataTree('bob:memory', { scope: 'bob', prefix: '/memory' }), Budgeted(budgetHook(l, 'bob')));
    await writeAll(ns, '/memory/a', 'x', user);
    await writeAll(ns, '/memory/b', 'x', user);
    await expectCode(writeAll(ns, '/memory/c', 'x', user), 'EDQUOT', '/memory/c');
    l.resetTick('bob');
    await writeAll(ns, '/memory/c', 'x', user);
    await expectCode(writeAll(ns, '/memory/d', 'x', user), 'EDQUOT', 'day window');
    expect(l.usage('bob').day).toEqual({ limit: 3, reserved: 0, spent: 3, remaining: 0 });
  });
});

describe('BudgetLedger against a model (property)', () => {
  it('usage, acceptance and refusal match a plain model over random operation sequences', () => {
    type Op =
      | { op: 'reserve'; amount: number; scoped: boolean }
      | { op: 'reconcile'; pick: number; frac: number }
      | { op: 'release'; pick: number }
      | { op: 'tick' }
      | { op: 'advance'; minutes: number };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('reserve' as const), amount: fc.integer({ min: 0, max: 40 }), scoped: fc.boolean() }),
      fc.record({ op: fc.constant('reconcile' as const), pick: fc.nat(), frac: fc.double({ min: 0, max: 1.5, noNaN: true }) }),
      fc.record({ op: fc.constant('release' as const), pick: fc.nat() }),
      fc.record({ op: fc.constant('tick' as const) }),
      fc.record({ op: fc.constant('advance' as const), minutes: fc.integer({ min: 0, max: 900 }) }),
    );
    const storage = openStorage();
    let run = 0;
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const agent = `p${run++}`;
        const c = clock();
        const l = new BudgetLedger(storage, { now: c.now });
        const limits = { tick: 60, day: 150, scopeDay: 50 };
        l.setLimits(agent, { tick: limits.tick, day: limits.day });
        l.setLimits(agent, { day: limits.scopeDay }, 'org:o');
        interface M { id: number; amount: number; tick: number; minute: number; scoped: boolean; state: 'open' | 'done'; actual: number }
        const model: M[] = [];
        let tick = 0;
        const minute = () => Math.floor(c.t / MINUTE_MS);
        const sums = (pred: (m: M) => boolean) => {
          let reserved = 0;
          let spent = 0;
          for (const m of model.filter(pred)) {
            if (m.state === 'open') reserved += m.amount;
            else spent += m.actual;
          }
          return { reserved, spent };
        };
        const inDay = (m: M) => m.minute > minute() - 1440;
        for (const o of ops) {
          if (o.op === 'reserve') {
            const t = sums((m) => m.tick === tick);
            const d = sums(inDay);
            const s = sums((m) => m.scoped && inDay(m));
            const ok =
              o.amount <= Math.max(0, limits.tick - t.reserved - t.spent) &&
              o.amount <= Math.max(0, limits.day - d.reserved - d.spent) &&
              (!o.scoped || o.amount <= Math.max(0, limits.scopeDay - s.reserved - s.spent));
            let got: number | undefined;
            try {
              got = l.reserve(agent, o.amount, o.scoped ? { org: 'o' } : undefined).id;
            } catch (err) {
              if ((err as { code?: string }).code !== 'EDQUOT') throw err;
            }
            expect(got !== undefined).toBe(ok);
            if (got !== undefined) model.push({ id: got, amount: o.amount, tick, minute: minute(), scoped: o.scoped, state: 'open', actual: 0 });
          } else if (o.op === 'reconcile' || o.op === 'release') {
            const open = model.filter((m) => m.state === 'open');
            if (open.length === 0) continue;
            const m = open[o.pick % open.length]!;
            const actual = o.op === 'reconcile' ? Math.floor(m.amount * o.frac) : 0;
            if (o.op === 'reconcile') l.reconcile(m.id, actual);
            else l.release(m.id);
            m.state = 'done';
            // A reservation is a hard cap: an actual above it is charged at the reservation.
            m.actual = Math.min(actual, m.amount);
          } else if (o.op === 'tick') {
            tick = l.resetTick(agent);
          } else {
            c.advance(o.minutes * MINUTE_MS);
          }
          const u = l.usage(agent);
          expect({ reserved: u.tick.reserved, spent: u.tick.spent }).toEqual(sums((m) => m.tick === tick));
          expect({ reserved: u.day.reserved, spent: u.day.spent }).toEqual(sums(inDay));
          const su = l.usage(agent, 'org:o').day;
          expect({ reserved: su.reserved, spent: su.spent }).toEqual(sums((m) => m.scoped && inDay(m)));
          // The invariant by construction: no window, at any level, ever holds more than its limit.
          expect(u.tick.reserved + u.tick.spent).toBeLessThanOrEqual(limits.tick);
          expect(u.day.reserved + u.day.spent).toBeLessThanOrEqual(limits.day);
          expect(su.reserved + su.spent).toBeLessThanOrEqual(limits.scopeDay);
        }
      }),
      { numRuns: 150 },
    );
  });
});
