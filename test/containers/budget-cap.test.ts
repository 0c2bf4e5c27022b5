/**
 * A container session's reservation is a hard cap, against the real engine, over HTTP with an agent
 * token: whatever set the reservation (max_cost, the policy's default_max_cost, the price of the whole
 * lifetime), a session that would run on is stopped when its cost reaches what it reserved, is charged
 * at most that, and concurrent sessions never spend more than a budget limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from '../http/served.js';
import { BUSYBOX, removeLabelled, requireEngine } from './engine.js';

let provider: DockerProvider;
let s: Served;

beforeAll(async () => {
  provider = await requireEngine();
  s = await serveAgent9({ compute: false });
});

afterAll(async () => {
  const instance = s?.a9.containers?.instanceId;
  await s?.close();
  if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  cleanup();
});

async function agentWithPolicy(name: string, policy: Record<string, unknown>): Promise<string> {
  const token = await s.agentWithToken(name);
  await s.ok(`/agents/${name}/containers/policy`, { method: 'PUT', body: JSON.stringify(policy) });
  return token;
}

interface Status {
  status: string;
  reserved: number;
  cost: number | null;
  started_at: number | null;
  finished_at: number | null;
}

async function ended(sid: string, token: string): Promise<Status> {
  for (const deadline = Date.now() + 30_000; ; ) {
    const st = await s.ok<Status>(`/containers/sessions/${sid}/status`, { token });
    if (st.finished_at !== null) return st;
    if (Date.now() > deadline) throw new Error(`session ${sid} still ${st.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Window {
  limit: number | null;
  reserved: number;
  spent: number;
}
type Usage = Record<'tick' | 'day', Window> & { containers: Record<'tick' | 'day', Window>; scopes: Record<string, Record<'tick' | 'day', Window>> };

function everyWindow(u: Usage): [string, Window][] {
  const levels: [string, Record<'tick' | 'day', Window>][] = [['agent', u], ['service:containers', u.containers], ...Object.entries(u.scopes)];
  return levels.flatMap(([name, l]) => [[`${name} tick`, l.tick] as [string, Window], [`${name} day`, l.day] as [string, Window]]);
}

describe('container sessions are stopped at their reserved cost', () => {
  it('whatever set the reservation: max_cost, default_max_cost, the lifetime; charged at most that', async () => {
    // 10 micro-USD per CPU-second, one core: 25 buys 2 s, 15 buys 1 s, the default 20 buys 2 s.
    const token = await agentWithPolicy('pay', { price_per_cpu_second: 10, default_max_cost: 20 });
    const post = (body: unknown) => s.ok<{ session_id: string }>('/containers/new', { method: 'POST', body: JSON.stringify(body), token });
    const sessions = await Promise.all([
      post({ image: BUSYBOX, commands: ['sleep 30'], max_cost: 25 }),
      post({ image: BUSYBOX, commands: ['sleep 30'] }),
      post({ image: BUSYBOX, kind: 'interactive', max_cost: 15 }),
    ]);
    await s.ok('/agents/pay/containers/policy', { method: 'PUT', body: JSON.stringify({ price_per_cpu_second: 10, default_max_cost: null }) });
    // No cap at all: the price of the whole (2 s) lifetime is reserved.
    sessions.push(await post({ image: BUSYBOX, commands: ['sleep 30'], limits: { max_time_secs: 2 } }));
    const states = await Promise.all(sessions.map((s) => ended(s.session_id, token)));
    expect(states.map((s) => s.reserved)).toEqual([25, 20, 15, 20]);
    for (const st of states) {
      expect(st.status).toBe('expired');
      expect(st.cost).toBeLessThanOrEqual(st.reserved);
      // It was stopped at its cap, not before: it ran the whole second(s) its reservation buys.
      expect(st.cost).toBeGreaterThanOrEqual(10 * Math.floor(st.reserved / 10));
      // It ran for what it reserved (1-2 s), not for the 30 s its command wanted.
      expect(st.finished_at! - st.started_at!).toBeLessThan(8000);
    }
    const usage = await s.ok<Usage>('/containers/usage', { token });
    expect(usage.day).toMatchObject({ reserved: 0, spent: states.reduce((n, s) => n + s.cost!, 0) });
  });

  it('concurrent sessions against an agent day limit never spend more than the limit', async () => {
    const token = await agentWithPolicy('tight', { price_per_cpu_second: 10 });
    await s.ok('/agents/tight/budget', { method: 'PUT', body: JSON.stringify({ day: 45, scopes: { 'issue:7': { tick: 50 } } }) });
    const body = JSON.stringify({ image: BUSYBOX, commands: ['sleep 30'], max_cost: 20, budget_scope: { issue: '7' } });
    const answers = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const res = await s.call('/containers/new', { method: 'POST', body, token });
        return { status: res.status, body: (await res.json()) as { session_id?: string; error?: { code: string } } };
      }),
    );
    expect(answers.every((a) => a.status === 200 || (a.status === 402 && a.body.error?.code === 'EDQUOT'))).toBe(true);
    const accepted = answers.filter((a) => a.status === 200).map((a) => a.body.session_id!);
    // The agent's day window (45) takes two sessions of 20.
    expect(accepted).toHaveLength(2);
    const states = await Promise.all(accepted.map((sid) => ended(sid, token)));
    const usage = await s.ok<Usage>('/containers/usage', { token });
    for (const [name, w] of everyWindow(usage)) {
      expect(w.reserved, name).toBe(0);
      if (w.limit !== null) expect(w.spent, `${name}: spent ${w.spent} of ${w.limit}`).toBeLessThanOrEqual(w.limit);
    }
    expect(usage.day.spent).toBe(states.reduce((n, s) => n + s.cost!, 0));
  });
});
