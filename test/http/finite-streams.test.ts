/**
 * Results that are waited for, as fetch and agentctl see them on a real loopback server (CONTRACT
 * sections 12, 18): `GET result?wait=SECONDS` waits for a running job; `agentctl cat --wait` does the same.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from './served.js';
import { agentctl, ensureBuilt } from '../cli/helpers.js';

let s: Served;
const base = '/agents/demo/compute';

beforeAll(async () => {
  await ensureBuilt();
  s = await serveAgent9();
  await s.ok('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'demo', program: 'echo' }) });
}, 240_000);

afterAll(async () => {
  await s?.close();
  cleanup();
});

async function submit(body: object): Promise<string> {
  return (await s.ok<{ job_id: string }>(`${base}/new`, { method: 'POST', body: JSON.stringify(body) })).job_id;
}

describe('GET result?wait=SECONDS waits for a running job', () => {
  it('answers with the result once the job completes; without wait, 429 at once; a short wait, 429 after it', async () => {
    const id = await submit({ model: 'echo', prompt: 'patience is good', options: { chunk_delay_ms: 300 } });
    const now = await s.call(`${base}/jobs/${id}/result`);
    expect(now.status).toBe(429);
    expect(await now.json()).toMatchObject({ error: { code: 'EAGAIN', message: expect.stringContaining('not ready') } });
    const started = Date.now();
    const short = await s.call(`${base}/jobs/${id}/result?wait=0.2`);
    expect(short.status).toBe(429);
    expect(short.headers.get('retry-after')).toBeTruthy();
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    const waited = await s.call(`${base}/jobs/${id}/result?wait=20`);
    expect(waited.status).toBe(200);
    expect(await waited.json()).toMatchObject({ output: { text: 'patience is good' } });
  });

  it('a failed (cancelled) job answers its error to the waiting request; a bad wait is 400 EINVAL naming it', async () => {
    const id = await submit({ model: 'echo', prompt: 'never mind this', options: { chunk_delay_ms: 3000 } });
    const waiting = s.call(`${base}/jobs/${id}/result?wait=20`);
    await new Promise((r) => setTimeout(r, 300));
    await s.ok(`${base}/jobs/${id}/ctl`, { method: 'POST', body: 'cancel' });
    const res = await waiting;
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ error: { code: 'ECANCELED' } });
    for (const bad of ['soon', '-1', '601']) {
      const r = await s.call(`${base}/jobs/${id}/result?wait=${bad}`);
      expect(r.status, bad).toBe(400);
      expect(await r.json()).toMatchObject({ error: { code: 'EINVAL', message: expect.stringContaining('wait') } });
    }
  });

  it('agentctl cat --wait prints the result once it is there; without it, EAGAIN (exit 9)', async () => {
    const env = { AGENT9_URL: s.server.url, AGENT9_TOKEN: s.server.adminToken };
    const id = await submit({ model: 'echo', prompt: 'from the cli', options: { chunk_delay_ms: 1500 } });
    const early = await agentctl(['cat', `${base}/jobs/${id}/result`], { env });
    expect(early.code).toBe(9);
    expect(early.stderr).toMatch(/EAGAIN/);
    const r = await agentctl(['cat', '--wait', '30s', `${base}/jobs/${id}/result`], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ output: { text: 'from the cli' } });
    const bad = await agentctl(['cat', '--wait', 'soon', `${base}/jobs/${id}/result`], { env });
    expect(bad.code).toBe(7);
  });
});
