/**
 * /compute over the real server: `agentctl serve` in a child process, driven with plain HTTP (curl's
 * view: status codes, Retry-After, SSE) and with `agentctl compute` subprocesses. The openai provider
 * talks to a local test double of an OpenAI-compatible endpoint.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/fs/errors.js';
import { cleanup, tempDir } from '../helpers.js';
import { agentctl, agentctlBackground, ensureBuilt, startServe, type RunOptions, type ServeProcess } from '../cli/helpers.js';
import { startFakeOpenAi, type FakeOpenAi } from './fake-openai.js';

const KEY = 'sk-test-double-key-for-serve-987654';
let server: ServeProcess;
let fake: FakeOpenAi;
let env: Record<string, string>;

beforeAll(async () => {
  fake = await startFakeOpenAi(KEY);
  await ensureBuilt();
  const home = tempDir('agent9-compute-');
  writeFileSync(
    join(home, 'config.json'),
    JSON.stringify({ compute: { providers: { openai: { base_url: fake.url, api_key_env: 'TEST_OPENAI_KEY', models: ['fake-chat', 'fake-error'] } } } }),
  );
  server = await startServe(home, ['--demo', '--log-level', 'debug'], { TEST_OPENAI_KEY: KEY });
  env = { AGENT9_HOME: home };
}, 240_000);

afterAll(async () => {
  await server?.stop('SIGTERM');
  await fake?.close();
  cleanup();
});

const run = (args: string[], options: RunOptions = {}) => agentctl(args, { ...options, env: { ...env, ...options.env } });
const base = '/agents/demo/compute';

function req(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const { token, ...rest } = init;
  const headers = new Headers(rest.headers);
  headers.set('authorization', `Bearer ${token ?? server.token}`);
  return fetch(server.url + path, { ...rest, headers });
}

const post = (path: string, body: unknown, token?: string) =>
  req(path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), ...(token ? { token } : {}) });

async function submit(body: unknown): Promise<string> {
  const res = await post(`${base}/new`, body);
  expect(res.status).toBe(200);
  return ((await res.json()) as { job_id: string }).job_id;
}

describe('/compute over HTTP', () => {
  it('POST new, GET result (429 + Retry-After until ready), GET stream streams the chunks to the end', async () => {
    const id = await submit({ model: 'echo', prompt: 'over http we go', options: { chunk_delay_ms: 150 } });
    const early = await req(`${base}/jobs/${id}/result`);
    expect(early.status).toBe(429);
    expect(Number(early.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await early.json()).toMatchObject({ error: { code: 'EAGAIN', path: `${base}/jobs/${id}/result` } });
    const stream = await req(`${base}/jobs/${id}/stream`);
    expect(stream.status).toBe(200);
    const lines = (await stream.text()).trim().split('\n').map((l) => JSON.parse(l) as { delta: { text: string }; finish_reason: string | null });
    expect(lines.map((l) => l.delta.text).join('')).toBe('over http we go');
    expect(lines.at(-1)!.finish_reason).toBe('stop');
    const result = await req(`${base}/jobs/${id}/result`);
    expect(result.status).toBe(200);
    expect(await result.json()).toMatchObject({ output: { text: 'over http we go' }, provider: 'local-echo' });
  });

  it('watching a job stream over SSE gives its chunks as data events and ends with end', async () => {
    const id = await submit({ model: 'echo', prompt: 'a b c', options: { chunk_delay_ms: 100 } });
    const res = await req(`${base}/jobs/${id}/stream?watch=1&from=0`, { headers: { accept: 'text/event-stream' } });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text();
    const events = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(events.filter((e) => e === 'data')).toHaveLength(4);
    expect(events.at(-1)).toBe('end');
    expect(text).toContain('"delta":{"text":"a "}');
  });

  it('an exhausted budget answers 402 EDQUOT; bad requests 400/413 with the field named', async () => {
    expect((await req('/agents/demo/budget', { method: 'PUT', body: '{"tick": 3, "day": 3}' })).status).toBeLessThan(300);
    try {
      const refused = await post(`${base}/new`, { model: 'echo', prompt: 'x', max_cost: 6 });
      expect(refused.status).toBe(402);
      expect(await refused.json()).toMatchObject({ error: { code: 'EDQUOT', message: expect.stringMatching(/^\/agents\/demo\/compute\/new: budget exceeded: agent tick window has \d+ micro-USD left of 3/) } });
    } finally {
      await req('/agents/demo/budget', { method: 'PUT', body: '{"tick": null, "day": null}' });
    }
    const malformed = await post(`${base}/new`, '{"model": ');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { code: 'EINVAL', message: expect.stringContaining('malformed JSON') } });
    const unknown = await post(`${base}/new`, { model: 'gpt-none', prompt: 'x' });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { message: string } }).error.message).toContain("no provider serves model 'gpt-none'");
    const huge = await post(`${base}/new`, { model: 'echo', prompt: 'x'.repeat(300 * 1024) });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: { code: 'EFBIG' } });
  });

  it('a hundred concurrent POSTs against a small budget: 200 or 402 each, never overspent', async () => {
    expect((await req('/agents/demo/budget', { method: 'PUT', body: '{"tick": null, "day": 500}' })).status).toBeLessThan(300);
    try {
      const before = ((await (await req('/agents/demo/budget')).json()) as { day: { spent: number; reserved: number } }).day;
      const room = Math.max(0, 500 - before.spent - before.reserved);
      const statuses = await Promise.all(
        Array.from({ length: 100 }, (_, i) => post(`${base}/new`, { model: 'echo', prompt: `n${i}`, max_cost: 20 }).then(async (r) => (await r.text(), r.status))),
      );
      expect(statuses.every((st) => st === 200 || st === 402)).toBe(true);
      expect(statuses.filter((st) => st === 200).length).toBeGreaterThanOrEqual(Math.floor(room / 20));
      let day = { spent: 0, reserved: 1 };
      for (let i = 0; i < 100 && day.reserved > 0; i++) {
        day = ((await (await req('/agents/demo/budget')).json()) as { day: { spent: number; reserved: number } }).day;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(day.reserved).toBe(0);
      expect(day.spent).toBeLessThanOrEqual(500);
    } finally {
      await req('/agents/demo/budget', { method: 'PUT', body: '{"tick": null, "day": null}' });
    }
  });

  it('an agent-scoped token sees /compute at its root and cannot write the policy', async () => {
    const made = await run(['token', 'create', '--agent', 'demo']);
    expect(made.code).toBe(0);
    const token = made.stdout.trim();
    const res = await post('/compute/new', { model: 'echo', prompt: 'scoped' }, token);
    expect(res.status).toBe(200);
    const policy = await req('/compute/policy', { method: 'PUT', body: '{"blocked_models":["echo"]}', token });
    expect(policy.status).toBe(403);
    expect(await policy.json()).toMatchObject({ error: { code: 'EACCES' } });
  });

  it('cancel through ctl; the openai provider through the server; the key is in no file and no log', async () => {
    const slow = await submit({ model: 'echo', prompt: 'slow slow slow', options: { chunk_delay_ms: 2000 } });
    const ctl = await req(`${base}/jobs/${slow}/ctl?append=1`, { method: 'POST', body: 'cancel' });
    expect(ctl.status).toBeLessThan(300);
    expect(await (await req(`${base}/jobs/${slow}/status`)).json()).toMatchObject({ status: 'cancelled' });
    const job = await submit({ model: 'fake-chat', prompt: 'through serve', max_tokens: 20 });
    const stream = await (await req(`${base}/jobs/${job}/stream`)).text();
    expect(stream).toContain('"finish_reason":"stop"');
    expect(await (await req(`${base}/jobs/${job}/result`)).json()).toMatchObject({ provider: 'openai', output: { text: 'Hello from the test double! You said: through serve' } });
    const failed = await submit({ model: 'fake-error', prompt: 'x' });
    await (await req(`${base}/jobs/${failed}/stream`)).text();
    const res = await req(`${base}/jobs/${failed}/result`);
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ error: { code: 'EREMOTEIO', message: expect.stringContaining('HTTP 400: The model `fake-error` does not exist') } });
    const info = await (await req(`${base}/providers/openai/info`)).text();
    expect(info).toContain('TEST_OPENAI_KEY');
    const trace = await (await req('/agents/demo/logs/recent')).text();
    for (const seen of [info, trace, server.stdout(), server.stderr()]) expect(seen).not.toContain(KEY);
  });
});

describe('agentctl compute', () => {
  it('run streams the answer to stdout and the cost to stderr; the prompt may come on stdin', async () => {
    const r = await run(['compute', 'run', '--model', 'echo', 'hello', 'world']);
    expect(r).toMatchObject({ code: 0, stdout: 'hello world\n' });
    expect(r.stderr).toMatch(/job \S+ {2}local-echo\/echo {2}10 tokens {2}cost 10 micro-USD/);
    const piped = await run(['compute', 'run', '--model', 'echo', '--agent', 'demo'], { input: 'from stdin\n' });
    expect(piped).toMatchObject({ code: 0, stdout: 'from stdin\n' });
  });

  it('run prints the answer as it arrives, not at the end', async () => {
    fake.chunkDelayMs = 150;
    try {
      const bg = agentctlBackground(['compute', 'run', '--model', 'fake-chat', 'as it comes'], env);
      const deadline = Date.now() + 10_000;
      while (!bg.output().includes('Hello ') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const partial = bg.output();
      expect(partial.startsWith('Hello ')).toBe(true);
      expect(partial).not.toContain('as it comes');
      const deadline2 = Date.now() + 10_000;
      while (!bg.output().includes('as it comes\n') && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 20));
      expect(bg.output()).toBe('Hello from the test double! You said: as it comes\n');
      await bg.stop('SIGTERM');
    } finally {
      fake.chunkDelayMs = 5;
    }
  });

  it('--json prints each chunk and then the result', async () => {
    const r = await run(['--json', 'compute', 'run', '--model', 'echo', 'one two']);
    expect(r.code).toBe(0);
    const out = r.stdout.trim().split('\n');
    const chunks = out.slice(0, 3).map((l) => JSON.parse(l) as { delta: { text: string } });
    expect(chunks.map((c) => c.delta.text).join('')).toBe('one two');
    expect(JSON.parse(out.slice(3).join('\n'))).toMatchObject({ output: { text: 'one two' }, cost: 8 });
  });

  it('errors exit with their code: unknown model 7, budget 10, a failed job 23, unknown job 2', async () => {
    const unknown = await run(['compute', 'run', '--model', 'nope', 'x']);
    expect(unknown.code).toBe(ERROR_TABLE.EINVAL.exit);
    expect(unknown.stderr).toContain("agentctl: EINVAL: /agents/demo/compute/new: no provider serves model 'nope'");
    await run(['write', '/agents/demo/budget', '{"day": 1}']);
    try {
      const broke = await run(['compute', 'run', '--model', 'echo', '--max-cost', '6', 'x']);
      expect(broke.code).toBe(ERROR_TABLE.EDQUOT.exit);
      expect(broke.stderr).toContain('agentctl: EDQUOT: /agents/demo/compute/new: budget exceeded');
      // A max cost below what the input alone costs is refused with both numbers.
      const short = await run(['compute', 'run', '--model', 'echo', '--max-cost', '2', 'x']);
      expect(short.code).toBe(ERROR_TABLE.EDQUOT.exit);
      expect(short.stderr).toContain('the input alone is estimated at 5 micro-USD (5 tokens), over max_cost 2 micro-USD');
    } finally {
      await run(['write', '/agents/demo/budget', '{"day": null}']);
    }
    const failed = await run(['compute', 'run', '--model', 'fake-error', 'x']);
    expect(failed.code).toBe(ERROR_TABLE.EREMOTEIO.exit);
    expect(failed.stderr).toContain('does not exist or you do not have access to it');
    const missing = await run(['compute', 'cancel', 'nope']);
    expect(missing.code).toBe(ERROR_TABLE.ENOENT.exit);
    const usage = await run(['compute', 'run', '--model', 'echo'], { input: '' });
    expect(usage.code).toBe(ERROR_TABLE.EINVAL.exit);
  });

  it('jobs lists the jobs; cancel stops one', async () => {
    const slow = JSON.parse(
      (await run(['call', `${base}/new`], { input: '{"model":"echo","prompt":"a b","max_cost":77,"options":{"chunk_delay_ms":3000}}' })).stdout,
    ) as { job_id: string };
    const cancelled = await run(['compute', 'cancel', slow.job_id]);
    expect(cancelled).toMatchObject({ code: 0, stdout: `${slow.job_id} cancelled\n` });
    const table = await run(['compute', 'jobs']);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^JOB\s+STATUS\s+PROVIDER\s+MODEL\s+RESERVED\s+COST\s+CREATED$/);
    expect(table.stdout).toMatch(new RegExp(`${slow.job_id}\\s+cancelled \\(ECANCELED\\)\\s+local-echo\\s+echo\\s+77\\s+0\\s`));
    const json = JSON.parse((await run(['--json', 'compute', 'jobs'])).stdout) as { job_id: string; status: string }[];
    expect(json.find((j) => j.job_id === slow.job_id)).toMatchObject({ status: 'cancelled' });
  });
});
