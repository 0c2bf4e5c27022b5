/**
 * `/runtime/metrics` as Prometheus scrapes it, over a real loopback socket: the exposition format's
 * media type, HEAD with the headers of GET, output clean under `promtool check metrics` (run when the
 * `prometheus` package is installed, apt-get install prometheus) and always under the format's grammar
 * and promtool's lint rules (test/support/prometheus-lint.ts), and per-agent and spend figures equal
 * to what the agents' own files say.
 */
import { spawnSync } from 'node:child_process';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lintExposition, type Sample } from '../support/prometheus-lint.js';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from './served.js';

let s: Served;

beforeAll(async () => {
  s = await serveAgent9({ containers: false });
  await s.agentWithToken('bob');
  await s.agentWithToken('carol');
});

afterAll(async () => {
  await s?.close();
  cleanup();
});

const PROMETHEUS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** promtool's verdict, or undefined when promtool is not installed. */
function promtool(text: string): { code: number; output: string } | undefined {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  return samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
}

describe('/runtime/metrics', () => {
  it('is served as the text format 0.0.4, and HEAD gives the same type and a real length', async () => {
    const get = await s.call('/runtime/metrics');
    expect(get.headers.get('content-type')).toBe(PROMETHEUS_TYPE);
    const body = await get.text();
    expect(body).toContain('# TYPE agent9_ticks_total counter');
    const head = await s.call('/runtime/metrics', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe(PROMETHEUS_TYPE);
    // The figures move between two scrapes (uptime, memory): the length is that of a whole scrape.
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(body.length / 2);
  });

  it('is clean under promtool check metrics and the lint rules; prom-client alone is not', async () => {
    await s.ok('/agents/bob/inbox', { method: 'POST', body: 'some traffic' });
    await s.ok('/agents/bob/tick', { method: 'POST' });
    const text = await (await s.call('/runtime/metrics')).text();
    expect(lintExposition(text).problems).toEqual([]);
    const verdict = promtool(text);
    if (verdict) expect(verdict, verdict.output).toMatchObject({ code: 0 });
    // The checker sees what promtool sees: prom-client's own defaults name three gauges `_total`.
    const plain = new Registry();
    collectDefaultMetrics({ register: plain });
    const raw = await plain.metrics();
    expect(lintExposition(raw).problems.filter((p) => p.includes('non-counter'))).toHaveLength(3);
    const rawVerdict = promtool(raw);
    if (rawVerdict) expect(rawVerdict.output).toContain('non-counter metrics should not have "_total" suffix');
  });

  it("has each agent's figures, equal to its status: state, ticks, queue, envelopes", async () => {
    await s.ok('/agents/carol/inbox', { method: 'POST', body: 'one' });
    await s.ok('/agents/carol/inbox', { method: 'POST', body: 'two' });
    await s.ok('/agents/bob/tick', { method: 'POST' });
    await s.ok('/agents/carol/ctl', { method: 'POST', body: 'hibernate' });
    const { samples } = lintExposition(await (await s.call('/runtime/metrics')).text());
    for (const agent of ['bob', 'carol']) {
      const st = await s.ok<{ state: string; tick_count: number; ticks_failed: number; queue_depth: number; deadletter_depth: number; counters: { enqueued: number; delivered: number } }>(
        `/agents/${agent}/status`,
      );
      expect(value(samples, 'agent9_agent_state', { agent, state: st.state }), agent).toBe(1);
      expect(samples.filter((x) => x.name === 'agent9_agent_state' && x.labels['agent'] === agent)).toHaveLength(1);
      expect(value(samples, 'agent9_agent_ticks_total', { agent })).toBe(st.tick_count);
      expect(value(samples, 'agent9_agent_ticks_failed_total', { agent })).toBe(st.ticks_failed);
      expect(value(samples, 'agent9_agent_inbox_queued', { agent })).toBe(st.queue_depth);
      expect(value(samples, 'agent9_agent_deadletter_envelopes', { agent })).toBe(st.deadletter_depth);
      expect(value(samples, 'agent9_agent_enqueued_total', { agent })).toBe(st.counters.enqueued);
      expect(value(samples, 'agent9_agent_delivered_total', { agent })).toBe(st.counters.delivered);
    }
    expect(value(samples, 'agent9_agent_state', { agent: 'carol', state: 'dormant' })).toBe(1);
    expect(value(samples, 'agent9_agent_inbox_queued', { agent: 'carol' })).toBe(2);
    expect(value(samples, 'agent9_agent_tick_seconds_total', { agent: 'bob' })).toBeGreaterThan(0);
  });

  it('has what each agent spent and holds reserved per window, and its limits, equal to its /budget', async () => {
    await s.ok('/agents/bob/budget', { method: 'PUT', body: JSON.stringify({ day: 1_000_000 }) });
    const job = await s.ok<{ paths: { stream: string; result: string } }>('/agents/bob/compute/new', { method: 'POST', body: JSON.stringify({ model: 'echo', prompt: 'spend a little' }) });
    await (await s.call(job.paths.stream)).text();
    const cost = (await s.ok<{ cost: number }>(job.paths.result)).cost;
    expect(cost).toBeGreaterThan(0);
    const budget = await s.ok<{ day: { limit: number; spent: number; reserved: number }; tick: { limit: null } }>('/agents/bob/budget');
    expect(budget.day.spent).toBeGreaterThanOrEqual(cost);
    const { samples } = lintExposition(await (await s.call('/runtime/metrics')).text());
    expect(value(samples, 'agent9_agent_budget_spent_micro_usd', { agent: 'bob', window: 'day' })).toBe(budget.day.spent);
    expect(value(samples, 'agent9_agent_budget_reserved_micro_usd', { agent: 'bob', window: 'day' })).toBe(budget.day.reserved);
    expect(value(samples, 'agent9_agent_budget_limit_micro_usd', { agent: 'bob', window: 'day' })).toBe(1_000_000);
    // No limit, no limit series; spend is still shown.
    expect(value(samples, 'agent9_agent_budget_limit_micro_usd', { agent: 'bob', window: 'tick' })).toBeUndefined();
    expect(value(samples, 'agent9_agent_budget_spent_micro_usd', { agent: 'carol', window: 'day' })).toBe(0);
  });
});
