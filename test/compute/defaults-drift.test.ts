/**
 * Server defaults that change after an agent wrote its policy or submitted with an idempotency key,
 * over the real server: `agentctl serve` in a child process, plain HTTP on loopback, config.json
 * rewritten between two starts on the same data directory.
 * - A policy stores only what was written: after `max_concurrent_jobs` and `default_timeout_ms` change
 *   in config.json, an agent whose policy says only `{"prefer":"cost"}` reads (and runs with) the new
 *   defaults (CONTRACT section 18, Policy).
 * - A byte-identical retry of an idempotent submit replays the first job after the defaults changed
 *   (CONTRACT section 17): the key stands for the request as written, not as the defaults filled it in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { ServedHome } from '../kit/served-home.js';

const base = '/agents/demo/compute';
let served: ServedHome;
const req = (path: string, init?: RequestInit) => served.req(path, init);
const json = (path: string, init?: RequestInit) => served.json(path, init);
const restart = (policy: Record<string, unknown>) => served.restart(policy);

beforeAll(async () => {
  served = await ServedHome.start('compute', { max_concurrent_jobs: 16, default_timeout_ms: 120_000 });
}, 240_000);

afterAll(async () => {
  await served?.stop();
  cleanup();
});

describe('server defaults changed in config.json', () => {
  // The exact bytes of one request, sent twice: before and after the defaults change.
  const request = '{"model":"echo","prompt":"the same bytes","idempotency_key":"drift-1"}';
  let first: Record<string, unknown>;

  it('before: a policy write of one field, and an idempotent submit', async () => {
    const put = await req(`${base}/policy`, { method: 'PUT', body: '{"prefer":"cost"}' });
    expect(put.status).toBeLessThan(300);
    expect(await json(`${base}/policy`)).toMatchObject({ prefer: 'cost', max_concurrent_jobs: 16, default_timeout_ms: 120_000 });
    first = await json(`${base}/new`, { method: 'POST', body: request });
    expect(first).toMatchObject({ status: 'pending' });
    expect(first['replayed']).toBeUndefined();
    // The job ran with the default timeout then in force.
    for (let i = 0; i < 100 && (await json(`${base}/jobs/${first['job_id']}/status`))['status'] !== 'complete'; i++) await new Promise((r) => setTimeout(r, 50));
  });

  it('after: the policy follows the new defaults for every field it leaves out', async () => {
    await restart({ max_concurrent_jobs: 4, default_timeout_ms: 60_000 });
    expect(await json(`${base}/policy`)).toMatchObject({ prefer: 'cost', max_concurrent_jobs: 4, default_timeout_ms: 60_000 });
    // And what the agent wrote stays: a write of another field replaces it, defaults still follow.
    const put = await req(`${base}/policy`, { method: 'PUT', body: '{"prefer":"latency","max_concurrent_jobs":2}' });
    expect(put.status).toBeLessThan(300);
    expect(await json(`${base}/policy`)).toMatchObject({ prefer: 'latency', max_concurrent_jobs: 2, default_timeout_ms: 60_000 });
  }, 60_000);

  it('after: a byte-identical retry replays the first job; a different request with the key is EEXIST', async () => {
    const again = await json(`${base}/new`, { method: 'POST', body: request });
    expect(again).toMatchObject({ job_id: first['job_id'], replayed: true, status: 'complete' });
    // Key order aside, the same request is the same.
    const reordered = await json(`${base}/new`, { method: 'POST', body: '{"idempotency_key":"drift-1","prompt":"the same bytes","model":"echo"}' });
    expect(reordered).toMatchObject({ job_id: first['job_id'], replayed: true });
    const other = await req(`${base}/new`, { method: 'POST', body: '{"model":"echo","prompt":"other bytes","idempotency_key":"drift-1"}' });
    expect(other.status).toBe(409);
    expect(await other.json()).toMatchObject({ error: { code: 'EEXIST' } });
    const jobs = (await json(`${base}/usage`))['jobs'] as Record<string, number>;
    expect(jobs['complete']).toBe(1);
  });
});
