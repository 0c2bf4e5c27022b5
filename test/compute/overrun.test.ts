/**
 * max_cost as a hard cap on an OpenAI-compatible provider (the local test double of one, which ignores
 * max_tokens and may count more tokens than agent9 estimates), through `agentctl serve` with an agent
 * token: the provider is asked for what the cap buys, a stream that goes on is stopped at the cap, a
 * provider-reported cost past the reservation is its overrun (result, /compute/usage, trace, metrics),
 * never charged, and its token ratio makes later reservations count its tokens, across a restart.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, tempDir } from '../helpers.js';
import { agentctl, ensureBuilt, startServe, type ServeProcess } from '../cli/helpers.js';
import { startFakeOpenAi, type FakeOpenAi } from './fake-openai.js';

const KEY = 'sk-test-double-key-for-overruns-1234';
// 150 micro-USD per input token, 600 per output token: costs are easy to follow.
const PRICING = { input_per_mtok: 150_000_000, output_per_mtok: 600_000_000 };
let server: ServeProcess;
let fake: FakeOpenAi;
let home: string;
let token: string;

async function serve(): Promise<ServeProcess> {
  return startServe(home, [], { TEST_OPENAI_KEY: KEY });
}

beforeAll(async () => {
  fake = await startFakeOpenAi(KEY);
  await ensureBuilt();
  home = tempDir('agent9-overrun-');
  const models = ['fake-chat', 'fake-overcount'];
  writeFileSync(join(home, 'config.json'), JSON.stringify({ compute: { providers: { openai: { base_url: fake.url, api_key_env: 'TEST_OPENAI_KEY', models, pricing: PRICING } } } }));
  server = await serve();
  const env = { AGENT9_HOME: home };
  expect((await agentctl(['agents', 'create', 'ann', '--program', 'echo'], { env })).code).toBe(0);
  token = (await agentctl(['token', 'create', '--agent', 'ann'], { env })).stdout.trim();
  expect(token).toMatch(/^a9_/);
}, 240_000);

afterAll(async () => {
  await server?.stop('SIGTERM');
  await fake?.close();
  cleanup();
});

function call(path: string, init: RequestInit & { admin?: boolean } = {}): Promise<Response> {
  const { admin, ...rest } = init;
  const headers = new Headers(rest.headers);
  headers.set('authorization', `Bearer ${admin ? server.token : token}`);
  return fetch(server.url + path, { ...rest, headers });
}

async function json<T = Record<string, unknown>>(path: string, init: RequestInit & { admin?: boolean } = {}): Promise<T> {
  const res = await call(path, init);
  const body = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${body}`);
  return JSON.parse(body) as T;
}

interface Result {
  output: { text: string; finish_reason: string };
  usage: { input_tokens: number; output_tokens: number; total_tokens: number };
  cost: number;
  reserved: number;
  overrun: number;
}

/** Submits, reads the stream to its end, and returns the result and the stream's text. */
async function runJob(request: Record<string, unknown>): Promise<{ result: Result; streamed: string; maxTokens: unknown }> {
  const { job_id } = await json<{ job_id: string }>('/compute/new', { method: 'POST', body: JSON.stringify(request) });
  const stream = await (await call(`/compute/jobs/${job_id}/stream`)).text();
  const chunks = stream.trim().split('\n').map((l) => JSON.parse(l) as { delta: { text: string } });
  return {
    result: await json<Result>(`/compute/jobs/${job_id}/result`),
    streamed: chunks.map((c) => c.delta.text).join(''),
    maxTokens: fake.requests.at(-1)!.body['max_tokens'],
  };
}

describe('max_cost on an OpenAI-compatible provider', () => {
  it('asks for what the cap buys, stops a stream that goes on at the cap (length), never charges more', async () => {
    // 40 bytes of input: 10 + 4 tokens = 2100; 5 output tokens (3000) fit in 5100.
    const { result, streamed, maxTokens } = await runJob({ model: 'fake-chat', prompt: 'a'.repeat(40), max_cost: 5100 });
    expect(maxTokens).toBe(5);
    // The double answers in full whatever max_tokens says: the stream is cut at 5 tokens (20 bytes).
    expect(result.output).toEqual({ text: 'Hello from the test ', finish_reason: 'length' });
    expect(streamed).toBe('Hello from the test ');
    expect(result).toMatchObject({ cost: 5100, reserved: 5100, overrun: 0, usage: { input_tokens: 14, output_tokens: 5 } });
  });

  it('refuses a max_cost below the input alone, naming both numbers', async () => {
    const res = await call('/compute/new', { method: 'POST', body: JSON.stringify({ model: 'fake-chat', prompt: 'x', max_cost: 100 }) });
    expect(res.status).toBe(402);
    expect(await res.json()).toMatchObject({
      error: { code: 'EDQUOT', message: '/compute/new: the input alone is estimated at 750 micro-USD (5 tokens), over max_cost 100 micro-USD' },
    });
  });

  it("records a provider's count past the reservation as its overrun and counts its tokens in later reservations", async () => {
    expect((await call('/agents/ann/budget', { method: 'PUT', admin: true, body: '{"day": 30000}' })).status).toBeLessThan(300);
    // agent9 estimates 6 + 12 tokens (900 + 7200 = 8100 <= 10000); the double counts 8 + 46 (28800).
    const first = await runJob({ model: 'fake-overcount', prompt: 'hi there', max_cost: 10_000 });
    expect(first.maxTokens).toBe(15);
    expect(first.result).toMatchObject({
      output: { text: 'Hello from the test double! You said: hi there', finish_reason: 'stop' },
      usage: { input_tokens: 8, output_tokens: 46, total_tokens: 54 },
      cost: 10_000,
      reserved: 10_000,
      overrun: 18_800,
    });
    const usage = await json<{ day: { spent: number; limit: number }; overruns: Record<string, unknown> }>('/compute/usage');
    // 5100 from the first test, then 10000: the reservation, not the provider's 28800.
    expect(usage.day).toMatchObject({ spent: 15_100, limit: 30_000 });
    // Observed 54 / 18 = 3: the ratio rises half way, to 2.
    expect(usage.overruns).toEqual({ 'openai/fake-overcount': { jobs: 1, micro_usd: 18_800, token_ratio: 2 } });
    const trace = await json<Record<string, unknown>[]>('/logs/recent');
    expect(trace.find((t) => t['type'] === 'compute_complete' && t['overrun'])).toMatchObject({ cost: 10_000, overrun: 18_800, token_ratio: 3 });
    const metrics = await (await call('/runtime/metrics', { admin: true })).text();
    expect(metrics).toContain('agent9_compute_overrun_micro_usd_total{provider="openai",model="fake-overcount"} 18800');
    expect(metrics).toContain('agent9_compute_overrun_jobs_total{provider="openai",model="fake-overcount"} 1');
    expect(metrics).toContain('agent9_compute_token_ratio{provider="openai",model="fake-overcount"} 2');

    // The same request now counts 12 input tokens (1800) and buys 13 output tokens, metered as 6 of ours.
    const second = await runJob({ model: 'fake-overcount', prompt: 'hi there', max_cost: 10_000 });
    expect(second.maxTokens).toBe(13);
    expect(second.result).toMatchObject({ output: { text: 'Hello from the test doub', finish_reason: 'length' }, cost: 9000, overrun: 0 });
    const after = await json<{ day: { spent: number; reserved: number } }>('/compute/usage');
    expect(after.day).toMatchObject({ spent: 24_100, reserved: 0 });
  });

  it('the learned ratio survives a restart', async () => {
    expect(await server.stop('SIGTERM')).toBe(0);
    server = await serve();
    expect((await call('/agents/ann/budget', { method: 'PUT', admin: true, body: '{"day": null}' })).status).toBeLessThan(300);
    const again = await runJob({ model: 'fake-overcount', prompt: 'hi there', max_cost: 10_000 });
    expect(again.maxTokens).toBe(13);
  });
});
