/**
 * The tick engine: the origin's conformance cases (single tick lock, dedup helpers, hibernation state)
 * and the ones it promised but never wrote (at-least-once delivery, per-sender ordering, trigger
 * envelope id), plus rollback and dead-lettering of failing ticks.
 */
import { describe, expect, it } from 'vitest';
import { createAgent, files, openServer, testProgram, trace, waitFor } from './support.js';
import { tempDir } from '../helpers.js';
import type { Trigger } from '../../src/runtime/spec.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('tick engine', () => {
  it('test_single_tick_lock: two concurrent ticks of one agent never overlap, and both succeed', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const slow = testProgram('slow', async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(150);
      inFlight--;
      return {};
    });
    const a9 = await openServer({ programs: [slow], scheduler: false });
    await createAgent(a9, { name: 'a', program: 'slow' });
    const cause = { type: 'manual' as const, invoked_by: 'test' };
    const [r1, r2] = await Promise.all([a9.runtime.tick('a', cause), a9.runtime.tick('a', cause)]);
    expect(r1.ok && r2.ok).toBe(true);
    expect(maxInFlight).toBe(1);
    expect([r1.tick, r2.tick].sort()).toEqual([1, 2]);
    // Different agents do tick at the same time.
    await createAgent(a9, { name: 'b', program: 'slow' });
    maxInFlight = 0;
    await Promise.all([a9.runtime.tick('a', cause), a9.runtime.tick('b', cause)]);
    expect(maxInFlight).toBe(2);
  });

  it('test_dedup_helpers: a repeated envelope id is seen once and counted as a duplicate once', async () => {
    const a9 = await openServer({ scheduler: false });
    const { store } = a9.runtime;
    await createAgent(a9, { name: 'a', program: 'echo', limits: { seen_max: 16 } });
    expect(store.seen('a', 'x')).toBe(false);
    store.markSeen('a', ['x'], 16);
    expect(store.seen('a', 'x')).toBe(true);
    // Bounded: the oldest ids are forgotten past seen_max.
    store.markSeen('a', Array.from({ length: 20 }, (_, i) => `n${i}`), 16);
    expect(store.seen('a', 'x')).toBe(false);
    expect(store.seen('a', 'n3')).toBe(false);
    expect(store.seen('a', 'n4')).toBe(true);
    expect(store.seenIds('a')).toHaveLength(16);

    // Through ticks: the same envelope id delivered twice reaches the program once.
    const f = files(a9.namespace);
    const env = JSON.stringify({ id: 'env-1', payload: { n: 1 } });
    await f.write('/agents/a/inbox', env);
    const r1 = await a9.runtime.tick('a', { type: 'message' });
    expect(r1.delivered).toEqual(['env-1']);
    await f.write('/agents/a/inbox', env);
    const r2 = await a9.runtime.tick('a', { type: 'message' });
    expect(r2.delivered).toEqual([]);
    expect(r2.duplicates).toEqual(['env-1']);
    const status = await f.json<{ counters: { delivered: number; duplicates: number }; queue_depth: number }>('/agents/a/status');
    expect(status.counters.delivered).toBe(1);
    expect(status.counters.duplicates).toBe(1);
    expect(status.queue_depth).toBe(0);
    expect((await f.list('/agents/a/outbox')).length).toBe(1);
    // The seen cache survives a restart.
    expect(a9.runtime.store.seen('a', 'env-1')).toBe(true);
  });

  it('test_hibernation_state_persists: state and lifecycle survive reopening the database', async () => {
    const home = tempDir();
    const first = await openServer({ home, scheduler: false });
    await createAgent(first, { name: 'a', program: 'echo' });
    const f1 = files(first.namespace);
    await f1.write('/agents/a/inbox', 'one');
    await first.runtime.tick('a', { type: 'message' });
    await f1.write('/agents/a/ctl', 'hibernate');
    expect((await f1.json<{ state: string }>('/agents/a/status')).state).toBe('dormant');
    await first.close();

    const second = await openServer({ home, scheduler: false });
    const f2 = files(second.namespace);
    const s = await f2.json<{ state: string; tick_count: number }>('/agents/a/status');
    expect(s.state).toBe('dormant');
    expect(s.tick_count).toBe(1);
    await f2.write('/agents/a/inbox', 'two');
    // A message wakes a dormant agent.
    expect((await f2.json<{ state: string }>('/agents/a/status')).state).toBe('active');
    await second.runtime.tick('a', { type: 'message' });
    expect(JSON.parse(second.runtime.store.getState('a')!.data)).toEqual({ echoed: 2 });
    await second.close();

    const third = await openServer({ home, scheduler: false });
    expect(JSON.parse(third.runtime.store.getState('a')!.data)).toEqual({ echoed: 2 });
    expect((await files(third.namespace).json<{ tick_count: number }>('/agents/a/status')).tick_count).toBe(2);
  });

  it('test_trigger_envelope_id: message triggers carry the envelope id (given or generated), traced too', async () => {
    const seen: Trigger[] = [];
    const record = testProgram('record', (ctx) => {
      seen.push(...ctx.triggers);
      return {};
    });
    const a9 = await openServer({ programs: [record], scheduler: false });
    await createAgent(a9, { name: 'a', program: 'record' });
    const f = files(a9.namespace);
    await f.write('/agents/a/inbox', JSON.stringify({ id: 'given-id', payload: 1 }));
    await f.write('/agents/a/inbox', 'plain text');
    const queued = await f.json<{ id: string }[]>('/agents/a/inbox');
    expect(queued.map((e) => e.id)[0]).toBe('given-id');
    const generated = queued[1]!.id;
    expect(generated).toMatch(/^[0-9a-z]{12}-[0-9a-f]{10}$/);
    await a9.runtime.tick('a', { type: 'message' });
    const messages = seen.filter((t) => t.type === 'message');
    expect(messages.map((t) => t.envelope_id)).toEqual(['given-id', generated]);
    for (const m of messages) expect(m.envelope.id).toBe(m.envelope_id);
    expect(messages[1]!.envelope.payload).toEqual({ text: 'plain text' });
    const traced = (await trace(a9, 'a')).filter((e) => e['type'] === 'trigger').map((e) => (e['trigger'] as { envelope_id?: string }).envelope_id);
    expect(traced).toContain('given-id');
    expect(traced).toContain(generated);
  });

  it('a failed tick rolls back everything and leaves its envelopes queued; after 3 failures they are dead-lettered', async () => {
    let fail = true;
    const flaky = testProgram('flaky', (ctx) => {
      if (fail) throw new Error('boom');
      return { state: { n: ctx.triggers.length }, outbox: ['reply'] };
    });
    const a9 = await openServer({ programs: [flaky], scheduler: false });
    await createAgent(a9, { name: 'a', program: 'flaky' });
    const f = files(a9.namespace);
    await f.write('/agents/a/inbox', JSON.stringify({ id: 'm1', payload: 1 }));
    await f.write('/agents/a/inbox', JSON.stringify({ id: 'm2', payload: 2 }));
    const r = await a9.runtime.tick('a', { type: 'message' });
    expect(r.ok).toBe(false);
    expect(r.error?.message).toContain('boom');
    expect(a9.runtime.store.getState('a')).toBeUndefined();
    expect(await f.list('/agents/a/outbox')).toEqual([]);
    expect((await f.json<unknown[]>('/agents/a/inbox')).length).toBe(2);
    let s = await f.json<{ state: string; consecutive_failures: number; last_error: string; tick_count: number }>('/agents/a/status');
    expect(s.consecutive_failures).toBe(1);
    expect(s.last_error).toContain('boom');
    expect(s.tick_count).toBe(0);
    // After a failure the engine narrows to one envelope per tick, so blame lands on the head.
    const r2 = await a9.runtime.tick('a', { type: 'message' });
    expect(r2.ok).toBe(false);
    const r3 = await a9.runtime.tick('a', { type: 'message' });
    expect(r3.deadlettered).toEqual(['m1']);
    expect(await f.list('/agents/a/deadletter')).toContain('m1.json');
    const dead = await f.json<{ envelope: { id: string }; reason: string; error: string; attempts: number }>('/agents/a/deadletter/m1.json');
    expect(dead).toMatchObject({ envelope: { id: 'm1' }, reason: 'failed', attempts: 3 });
    expect(dead.error).toContain('boom');
    // m2 was part of one failed batch only: still queued.
    expect((await f.json<{ id: string }[]>('/agents/a/inbox')).map((e) => e.id)).toEqual(['m2']);
    fail = false;
    const ok = await a9.runtime.tick('a', { type: 'message' });
    expect(ok.ok).toBe(true);
    expect(ok.delivered).toEqual(['m2']);
    s = await f.json('/agents/a/status');
    expect(s.consecutive_failures).toBe(0);
    expect(s.state).toBe('active');
    const types = (await trace(a9, 'a')).map((e) => e['type']);
    expect(types.filter((t) => t === 'error')).toHaveLength(3);
    expect(types).toContain('deadlettered');
    expect(types.at(-1)).toBe('tick_end');
  });

  it('every tick traces tick_start, one trigger per trigger, then tick_end or error', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'a', program: 'echo' });
    const f = files(a9.namespace);
    await f.write('/agents/a/inbox', 'x');
    await f.write('/agents/a/ctl', 'tick because');
    const t = await trace(a9, 'a');
    const ticks = t.filter((e) => e['tick'] === 1);
    expect(ticks.map((e) => e['type'])).toEqual(['tick_start', 'trigger', 'trigger', 'trigger', 'state_change', 'tick_end']);
    expect(ticks[0]).toMatchObject({ cause: 'ctl', triggers: 3 });
    expect(ticks.slice(1, 4).map((e) => (e['trigger'] as { type: string }).type)).toEqual(['init', 'ctl', 'message']);
    expect((ticks[2]!['trigger'] as { reason: string }).reason).toBe('because');
  });

  it('test_at_least_once_delivery: with failing ticks, every envelope is delivered (committed) exactly once', async () => {
    const attempts = new Map<string, number>();
    let n = 0;
    // Deterministic failures: every third tick fails.
    const flaky = testProgram('flaky', (ctx) => {
      for (const t of ctx.triggers) if (t.type === 'message') attempts.set(t.envelope_id, (attempts.get(t.envelope_id) ?? 0) + 1);
      if (++n % 3 === 0) throw new Error(`planned failure ${n}`);
      const done = (ctx.state as { done?: string[] } | undefined)?.done ?? [];
      return { state: { done: [...done, ...ctx.triggers.filter((t) => t.type === 'message').map((t) => (t as { envelope_id: string }).envelope_id)] } };
    });
    const a9 = await openServer({ programs: [flaky], scheduler: false });
    await createAgent(a9, { name: 'a', program: 'flaky', limits: { batch_size: 7, max_attempts: 10, retry_backoff_ms: 0 } });
    const f = files(a9.namespace);
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) {
      const id = `e${i}`;
      ids.push(id);
      await f.write('/agents/a/inbox', JSON.stringify({ id, payload: i }));
    }
    for (let guard = 0; guard < 500 && a9.runtime.store.getAgent('a')!.queue_depth > 0; guard++) {
      await a9.runtime.tick('a', { type: 'message' });
    }
    const done = (JSON.parse(a9.runtime.store.getState('a')!.data) as { done: string[] }).done;
    expect(done.length).toBe(120);
    expect(new Set(done)).toEqual(new Set(ids));
    expect([...attempts.values()].some((k) => k > 1)).toBe(true);
    expect(await f.list('/agents/a/deadletter')).toEqual(['ctl']);
    const s = await f.json<{ counters: { delivered: number }; ticks_failed: number }>('/agents/a/status');
    expect(s.counters.delivered).toBe(120);
    expect(s.ticks_failed).toBeGreaterThan(0);
  });

  it('test_per_sender_ordering: committed processing order per sender is send order, through failures', async () => {
    let n = 0;
    const ordered = testProgram('ordered', (ctx) => {
      if (++n % 4 === 0) throw new Error('planned');
      const log = (ctx.state as { log?: [string, number][] } | undefined)?.log ?? [];
      for (const t of ctx.triggers) if (t.type === 'message') log.push([t.from, (t.envelope.payload as { seq: number }).seq]);
      return { state: { log } };
    });
    const a9 = await openServer({ programs: [ordered], scheduler: false });
    await createAgent(a9, { name: 'a', program: 'ordered', limits: { batch_size: 5, max_attempts: 20, retry_backoff_ms: 0 } });
    const senders = ['s1', 's2', 's3', 's4'];
    const sent = 30;
    // Senders write concurrently, interleaved; each sender's own writes are sequential.
    await Promise.all(
      senders.map(async (s) => {
        const f = files(a9.namespace, { principal: { id: s, admin: false, agentId: s } });
        for (let i = 0; i < sent; i++) await f.write('/agents/a/inbox', JSON.stringify({ payload: { seq: i } }));
      }),
    );
    for (let guard = 0; guard < 1000 && a9.runtime.store.getAgent('a')!.queue_depth > 0; guard++) {
      await a9.runtime.tick('a', { type: 'message' });
    }
    const log = (JSON.parse(a9.runtime.store.getState('a')!.data) as { log: [string, number][] }).log;
    expect(log.length).toBe(senders.length * sent);
    for (const s of senders) {
      expect(log.filter(([from]) => from === s).map(([, seq]) => seq)).toEqual(Array.from({ length: sent }, (_, i) => i));
    }
  });

  it('a program result is validated: a bad one fails the tick with EINVAL naming the field', async () => {
    const bad = testProgram('bad', () => ({ outbx: [] }) as never);
    const a9 = await openServer({ programs: [bad], scheduler: false });
    await createAgent(a9, { name: 'a', program: 'bad' });
    const r = await a9.runtime.tick('a', { type: 'manual', invoked_by: 'test' });
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('EINVAL');
    expect(r.error?.message).toContain("'outbx'");
  });

  it('state over limits.state_max_bytes fails the tick with EFBIG and keeps the old state', async () => {
    const big = testProgram('big', () => ({ state: 'x'.repeat(5000) }));
    const a9 = await openServer({ programs: [big], scheduler: false });
    await createAgent(a9, { name: 'a', program: 'big', limits: { state_max_bytes: 1024 } });
    const r = await a9.runtime.tick('a', { type: 'manual', invoked_by: 'test' });
    expect(r.error?.code).toBe('EFBIG');
    expect(a9.runtime.store.getState('a')).toBeUndefined();
  });

  it('the scheduler drains the inbox on its own (on_message) with the echo program', async () => {
    const a9 = await openServer();
    await createAgent(a9, { name: 'a', program: 'echo' });
    const f = files(a9.namespace);
    for (let i = 0; i < 40; i++) await f.write('/agents/a/inbox', `m${i}`);
    await waitFor(async () => (await f.list('/agents/a/outbox')).length === 40, 5000, '40 replies');
    const replies = await Promise.all((await f.list('/agents/a/outbox')).map((n) => f.json<{ payload: { text: string } }>(`/agents/a/outbox/${n}`)));
    expect(replies.map((r) => r.payload.text).sort()).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`).sort());
  });
});
