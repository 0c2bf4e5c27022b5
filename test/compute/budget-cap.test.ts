/**
 * Budgets are hard caps, tried as an agent would: 100 concurrent POSTs of /compute/new over a real
 * loopback socket with an agent-scoped token, against the assembled server, each with a `max_cost`
 * above the input's cost but below the full answer (`max_cost: 8` for `hello world` on local-echo,
 * whose whole answer costs 10). Limits at each level (the agent's tick and day windows, the
 * service:compute caps of the policy, org/repo/issue scopes), slow jobs and fast: once every job ended,
 * no window at any level shows more spent than its limit and the jobs' costs add up to what was charged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from '../http/served.js';

interface Window {
  limit: number | null;
  reserved: number;
  spent: number;
  remaining: number | null;
}
interface Level {
  tick: Window;
  day: Window;
}
interface ComputeUsage extends Level {
  compute: Level;
  scopes: Record<string, Level>;
  jobs: Record<string, number>;
}

let s: Served;

beforeAll(async () => {
  s = await serveAgent9({ containers: false });
});

afterAll(async () => {
  await s?.close();
  cleanup();
});

/** Every window of every level in a /compute/usage answer, named. */
function windows(usage: ComputeUsage): [string, Window][] {
  const levels: [string, Level][] = [['agent', usage], ['service:compute', usage.compute], ...Object.entries(usage.scopes)];
  return levels.flatMap(([name, level]) => [
    [`${name} tick`, level.tick],
    [`${name} day`, level.day],
  ]);
}

async function settled(token: string): Promise<ComputeUsage> {
  for (let i = 0; ; i++) {
    const usage = await s.ok<ComputeUsage>('/compute/usage', { token });
    const unfinished = usage.jobs['pending']! + usage.jobs['running']! + usage.jobs['streaming']!;
    if (unfinished === 0 && windows(usage).every(([, w]) => w.reserved === 0)) return usage;
    if (i > 1000) throw new Error(`jobs still running: ${JSON.stringify(usage.jobs)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const LIMIT = 105;
type Case = { level: string; setup: (agent: string) => Promise<unknown>; scope?: Record<string, string> };
const putBudget = (agent: string, doc: unknown) => s.ok(`/agents/${agent}/budget`, { method: 'PUT', body: JSON.stringify(doc) });
const putPolicy = (agent: string, doc: unknown) => s.ok(`/agents/${agent}/compute/policy`, { method: 'PUT', body: JSON.stringify(doc) });

const CASES: Case[] = [
  { level: 'agent day', setup: (a) => putBudget(a, { day: LIMIT }) },
  { level: 'agent tick', setup: (a) => putBudget(a, { tick: LIMIT }) },
  { level: 'service:compute day', setup: (a) => putPolicy(a, { max_cost_per_day: LIMIT }) },
  { level: 'service:compute tick', setup: (a) => putPolicy(a, { max_cost_per_tick: LIMIT }) },
  { level: 'org day', setup: (a) => putBudget(a, { scopes: { 'org:acme': { day: LIMIT } } }), scope: { org: 'acme' } },
  { level: 'repo tick', setup: (a) => putBudget(a, { scopes: { 'repo:web': { tick: LIMIT } } }), scope: { org: 'acme', repo: 'web' } },
  {
    level: 'issue day',
    setup: (a) => putBudget(a, { scopes: { 'issue:42': { day: LIMIT }, 'org:acme': { day: 1000 } } }),
    scope: { org: 'acme', repo: 'web', issue: '42' },
  },
];

describe('max_cost is a hard cap: 100 concurrent submits never spend more than a limit', () => {
  let n = 0;
  for (const c of CASES) {
    for (const speed of ['slow', 'fast'] as const) {
      it(`${c.level} limit ${LIMIT}, ${speed} jobs`, async () => {
        const agent = `cap${++n}`;
        const token = await s.agentWithToken(agent);
        await c.setup(agent);
        const body = JSON.stringify({
          model: 'echo',
          prompt: 'hello world',
          max_cost: 8,
          ...(c.scope ? { budget_scope: c.scope } : {}),
          ...(speed === 'slow' ? { options: { chunk_delay_ms: 40 } } : {}),
        });
        const answers = await Promise.all(
          Array.from({ length: 100 }, async () => {
            const res = await s.call('/compute/new', { method: 'POST', body, token });
            return { status: res.status, body: (await res.json()) as { job_id?: string; error?: { code: string } } };
          }),
        );
        expect(answers.every((a) => a.status === 200 || (a.status === 402 && a.body.error?.code === 'EDQUOT'))).toBe(true);
        const accepted = answers.filter((a) => a.status === 200).map((a) => a.body.job_id!);
        const usage = await settled(token);
        for (const [name, w] of windows(usage)) {
          if (w.limit !== null) expect(w.spent, `${name}: spent ${w.spent} of ${w.limit}`).toBeLessThanOrEqual(w.limit);
        }
        let costs = 0;
        for (const id of accepted) {
          const result = await s.ok<{ cost: number; reserved: number; output: { text: string; finish_reason: string } }>(`/compute/jobs/${id}/result`, { token });
          expect(result.cost).toBeLessThanOrEqual(result.reserved);
          expect(result.output).toEqual({ text: 'hell', finish_reason: 'length' });
          costs += result.cost;
        }
        expect(costs).toBe(usage.day.spent);
        // Each job reserves its cap (8) and is charged at most that: 13 of them fit in 105.
        expect(accepted).toHaveLength(Math.floor(LIMIT / 8));
      });
    }
  }
});
