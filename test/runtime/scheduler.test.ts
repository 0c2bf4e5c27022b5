/** The scheduler: alarms from ticks, interval schedules, hibernate and wake, retries, restarts. */
import { describe, expect, it } from 'vitest';
import { createAgent, files, openServer, testProgram, trace, waitFor } from './support.js';
import { tempDir } from '../helpers.js';
import type { TickCause } from '../../src/runtime/spec.js';

type Status = { state: string; tick_count: number; next_alarm: number | null; last_tick_cause: string | null };

describe('scheduler', () => {
  it('an agent is initialised by its first tick right after creation', async () => {
    const a9 = await openServer();
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    const s = await waitFor(async () => {
      const st = await f.json<Status>('/agents/bob/status');
      return st.state === 'active' && st;
    });
    expect(s).toMatchObject({ tick_count: 1, last_tick_cause: 'init' });
  });

  it('next_alarm from a tick fires an alarm tick, then is cleared; it also wakes a dormant agent', async () => {
    const causes: TickCause['type'][] = [];
    const alarmer = testProgram('alarmer', (ctx) => {
      causes.push(ctx.cause.type);
      if (ctx.cause.type === 'manual') return { alarm_in_ms: 150, hibernate: true };
      return {};
    });
    const a9 = await openServer({ programs: [alarmer] });
    await createAgent(a9, { name: 'bob', program: 'alarmer' });
    const f = files(a9.namespace);
    await waitFor(async () => (await f.json<Status>('/agents/bob/status')).state === 'active');
    await a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    const dormant = await f.json<Status>('/agents/bob/status');
    expect(dormant.state).toBe('dormant');
    expect(dormant.next_alarm).toBeGreaterThan(Date.now() - 1000);
    const fired = await waitFor(async () => {
      const st = await f.json<Status>('/agents/bob/status');
      return st.last_tick_cause === 'alarm' && st;
    }, 5000, 'the alarm tick');
    expect(fired.state).toBe('active');
    expect(fired.next_alarm).toBeNull();
    expect(causes).toEqual(['init', 'manual', 'alarm']);
    const t = await trace(a9, 'bob');
    expect(t.find((e) => e['type'] === 'state_change' && e['reason'] === 'alarm')).toMatchObject({ from: 'dormant', to: 'active' });
    expect(t.find((e) => e['type'] === 'trigger' && (e['trigger'] as { type: string }).type === 'alarm')).toBeTruthy();
  });

  it('interval schedules tick while active and pause while dormant', async () => {
    const a9 = await openServer();
    await createAgent(a9, { name: 'bob', program: 'echo', schedule: { interval_ms: 100 } });
    const f = files(a9.namespace);
    await waitFor(async () => (await f.json<Status>('/agents/bob/status')).tick_count >= 4, 5000, 'interval ticks');
    await f.write('/agents/bob/ctl', 'hibernate');
    await a9.runtime.engine.locks.idle();
    const paused = (await f.json<Status>('/agents/bob/status')).tick_count;
    await new Promise((r) => setTimeout(r, 400));
    expect((await f.json<Status>('/agents/bob/status')).tick_count).toBe(paused);
    await f.write('/agents/bob/ctl', 'wake');
    await waitFor(async () => (await f.json<Status>('/agents/bob/status')).tick_count > paused + 1, 5000, 'ticks after wake');
    const causes = (await trace(a9, 'bob')).filter((e) => e['type'] === 'tick_start').map((e) => e['cause']);
    expect(causes.filter((c) => c === 'schedule').length).toBeGreaterThanOrEqual(4);
  });

  it('a dormant agent wakes on inbox and the message is handled', async () => {
    const a9 = await openServer();
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    await waitFor(async () => (await f.json<Status>('/agents/bob/status')).state === 'active');
    await f.write('/agents/bob/ctl', 'hibernate');
    await f.write('/agents/bob/inbox', 'wake up');
    await waitFor(async () => (await f.list('/agents/bob/outbox')).length === 1, 5000, 'the reply');
    expect((await f.json<Status>('/agents/bob/status')).state).toBe('active');
  });

  it('with on_message false, envelopes wait for a manual or interval tick', async () => {
    const a9 = await openServer();
    await createAgent(a9, { name: 'bob', program: 'echo', schedule: { on_message: false } });
    const f = files(a9.namespace);
    await waitFor(async () => (await f.json<Status>('/agents/bob/status')).state === 'active');
    await f.write('/agents/bob/inbox', 'later');
    await new Promise((r) => setTimeout(r, 200));
    expect((await f.json<unknown[]>('/agents/bob/inbox')).length).toBe(1);
    await f.write('/agents/bob/ctl', 'tick');
    expect((await f.json<unknown[]>('/agents/bob/inbox')).length).toBe(0);
  });

  it('failed message ticks are retried with backoff until they succeed or the envelope is dead-lettered', async () => {
    let failures = 2;
    const shaky = testProgram('shaky', (ctx) => {
      if (ctx.triggers.some((t) => t.type === 'message') && failures-- > 0) throw new Error('not yet');
      return {};
    });
    const a9 = await openServer({ programs: [shaky] });
    await createAgent(a9, { name: 'bob', program: 'shaky', limits: { retry_backoff_ms: 50 } });
    const f = files(a9.namespace);
    await f.write('/agents/bob/inbox', JSON.stringify({ id: 'm', payload: 1 }));
    await waitFor(async () => (await f.json<{ counters: { delivered: number } }>('/agents/bob/status')).counters.delivered === 1, 5000, 'delivery after retries');
    const s = await f.json<{ ticks_failed: number; consecutive_failures: number; retry_at: number | null }>('/agents/bob/status');
    expect(s.ticks_failed).toBe(2);
    expect(s.consecutive_failures).toBe(0);
    expect(s.retry_at).toBeNull();
  });

  it('a failed alarm tick is retried after the backoff; a used-up retry time is cleared', async () => {
    let failures = 1;
    const alarmer = testProgram('alarmer2', (ctx) => {
      if (ctx.cause.type === 'manual') return { alarm_in_ms: 50 };
      if (ctx.cause.type === 'alarm' && failures-- > 0) throw new Error('alarm failed once');
      return {};
    });
    const a9 = await openServer({ programs: [alarmer] });
    await createAgent(a9, { name: 'bob', program: 'alarmer2', limits: { retry_backoff_ms: 100 } });
    const f = files(a9.namespace);
    await waitFor(async () => (await f.json<Status>('/agents/bob/status')).state === 'active');
    await a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    const done = await waitFor(async () => {
      const st = await f.json<Status & { ticks_failed: number; retry_at: number | null }>('/agents/bob/status');
      return st.last_tick_cause === 'alarm' && st.ticks_failed === 1 && st.next_alarm === null && st;
    }, 5000, 'the retried alarm');
    expect(done.retry_at).toBeNull();
    // A failed ctl tick without envelopes leaves nothing to retry: the retry time is cleared, no tick runs.
    const failing = testProgram('nope', (ctx) => {
      if (ctx.cause.type === 'ctl') throw new Error('no');
      return {};
    });
    a9.runtime.programs.register(failing);
    await createAgent(a9, { name: 'ann', program: 'nope', limits: { retry_backoff_ms: 50 } });
    await waitFor(async () => (await f.json<Status>('/agents/ann/status')).state === 'active');
    await f.write('/agents/ann/ctl', 'tick').catch(() => undefined);
    await waitFor(async () => (await f.json<{ retry_at: number | null }>('/agents/ann/status')).retry_at === null, 3000, 'the retry to be used up');
    const ticks = (await f.json<Status & { ticks_failed: number }>('/agents/ann/status'));
    await new Promise((r) => setTimeout(r, 200));
    expect((await f.json<Status & { ticks_failed: number }>('/agents/ann/status'))).toMatchObject({ tick_count: ticks.tick_count, ticks_failed: 1 });
  });

  it('work left at shutdown is picked up after a restart (queued envelopes, due alarms)', async () => {
    const causes: TickCause['type'][] = [];
    // Sets an alarm at every tick but the alarm's own, and sleeps until it.
    const alarmer = testProgram('alarmer', (ctx) => {
      causes.push(ctx.cause.type);
      return ctx.cause.type === 'alarm' ? {} : { alarm_in_ms: 200, hibernate: true };
    });
    const home = tempDir();
    const first = await openServer({ home, scheduler: false, programs: [alarmer] });
    await createAgent(first, { name: 'bob', program: 'echo' });
    await createAgent(first, { name: 'carol', program: 'alarmer' });
    await files(first.namespace).write('/agents/bob/inbox', 'queued before restart');
    await first.runtime.tick('carol', { type: 'manual', invoked_by: 'test' });
    const before = await files(first.namespace).json<Status>('/agents/carol/status');
    expect(before.state).toBe('dormant');
    expect(before.next_alarm).not.toBeNull();
    await first.close();
    // The alarm falls due while no server runs.
    await new Promise((r) => setTimeout(r, 400));
    expect(causes).toEqual(['manual']);
    const second = await openServer({ home, programs: [alarmer] });
    const f = files(second.namespace);
    await waitFor(async () => (await f.list('/agents/bob/outbox')).length === 1, 5000, 'the reply after restart');
    const fired = await waitFor(async () => {
      const st = await f.json<Status>('/agents/carol/status');
      return st.last_tick_cause === 'alarm' && st;
    }, 5000, 'the due alarm after restart');
    expect(fired).toMatchObject({ state: 'active', next_alarm: null });
    expect(causes).toEqual(['manual', 'alarm']);
  });
});
