/** The openai provider over real HTTP against a local test double of an OpenAI-compatible endpoint. */
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readAll, writeAll } from '../../src/fs/ops.js';
import { buildProviders, LocalEchoProvider, OpenAiProvider } from '../../src/services/compute/index.js';
import { parseComputeConfig } from '../../src/services/compute/config.js';
import { openComputeEngine } from '../../src/services/compute/mount.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, collect, expectCode, user, admin, openStorage, tempDir } from '../helpers.js';
import { startFakeOpenAi, type FakeOpenAi } from './fake-openai.js';
import { AGENT, agentNamespace, closeEngines, readJson, readStream, setupCompute, submit, waitStatus, writeJson } from './setup.js';

const KEY = 'sk-test-double-key-123456';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}
let fake: FakeOpenAi;

beforeAll(async () => {
  fake = await startFakeOpenAi(KEY);
});
afterEach(closeEngines);
afterAll(async () => {
  await fake.close();
  cleanup();
});

const PRICING = { input_per_mtok: 150_000_000, output_per_mtok: 600_000_000 }; // $150 / $600 per M tokens: visible costs

function openai(extra: Partial<ConstructorParameters<typeof OpenAiProvider>[1]> = {}, id = 'openai') {
  return new OpenAiProvider(
    id,
    { base_url: fake.url, api_key_env: 'TEST_OPENAI_KEY', models: ['fake-chat', 'fake-nousage', 'fake-error', 'fake-leaky-error', 'fake-slow', 'fake-stream-error', 'fake-broken'], pricing: PRICING, ...extra },
    { TEST_OPENAI_KEY: KEY },
  );
}

describe('openai provider', () => {
  it('answers without streaming: one chunk, the endpoint usage and the configured prices', async () => {
    const { ns, engine } = setupCompute({ providers: [new LocalEchoProvider(), openai()] });
    const job = await submit(ns, { model: 'fake-chat', prompt: 'hi there', stream: false, max_tokens: 50 });
    await waitStatus(ns, job.job_id);
    const result = await readJson(ns, job.paths.result);
    // 10 input tokens at 150 micro-USD per 1k... = 1500, 7 output at 600 per 1k = 4200.
    expect(result).toMatchObject({
      provider: 'openai',
      model: 'fake-chat',
      output: { text: 'Hello from the test double! You said: hi there', finish_reason: 'stop' },
      usage: { input_tokens: 10, output_tokens: 7, total_tokens: 17 },
      cost: 5700,
    });
    expect(await readStream(ns, job.job_id)).toEqual([
      { delta: { text: 'Hello from the test double! You said: hi there' }, finish_reason: 'stop', usage: { input_tokens: 10, output_tokens: 7, total_tokens: 17 } },
    ]);
    const sent = fake.requests.at(-1)!;
    expect(sent.body).toMatchObject({ model: 'fake-chat', stream: false, max_tokens: 50, messages: [{ role: 'user', content: 'hi there' }] });
    expect(sent.auth).toBe(`Bearer ${KEY}`);
    expect(engine.ledger.usage(AGENT).day).toMatchObject({ reserved: 0, spent: 5700 });
  });

  it('streams deltas through the stream file as the endpoint sends them, with usage at the end', async () => {
    const { ns } = setupCompute({ providers: [openai()] });
    const job = await submit(ns, { model: 'fake-chat', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'stream me' }] });
    const chunks = await readStream(ns, job.job_id);
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.slice(0, -1).every((c) => c.finish_reason === null && c.delta.text.length > 0)).toBe(true);
    expect(chunks.map((c) => c.delta.text).join('')).toBe('Hello from the test double! You said: stream me');
    expect(chunks.at(-1)).toEqual({ delta: { text: '' }, finish_reason: 'stop', usage: { input_tokens: 10, output_tokens: 7, total_tokens: 17 } });
    expect(fake.requests.at(-1)!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expect(await readJson(ns, job.paths.result)).toMatchObject({ output: { text: 'Hello from the test double! You said: stream me' }, cost: 5700 });
  });

  it('without usage from the endpoint, tokens are estimated from the text', async () => {
    const { ns } = setupCompute({ providers: [openai()] });
    const job = await submit(ns, { model: 'fake-nousage', prompt: 'abcd' });
    await waitStatus(ns, job.job_id);
    // input "abcd": 1 token + 4; output "Hello from the test double! You said: abcd", 42 bytes: 11 tokens.
    expect(await readJson(ns, job.paths.result)).toMatchObject({ usage: { input_tokens: 5, output_tokens: 11 }, cost: 5 * 150 + 11 * 600 });
  });

  it('an endpoint that cannot stream yields one chunk even when streaming was asked', async () => {
    const { ns } = setupCompute({ providers: [openai({ streaming: false })] });
    const job = await submit(ns, { model: 'fake-chat', prompt: 'x', stream: true });
    const chunks = await readStream(ns, job.job_id);
    expect(chunks).toHaveLength(1);
    expect(chunks[0]).toMatchObject({ delta: { text: 'Hello from the test double! You said: x' }, finish_reason: 'stop' });
    expect(fake.requests.at(-1)!.stream).toBe(false);
  });

  it('provider errors fail the job with EREMOTEIO and the provider message, releasing the reservation', async () => {
    const { ns, engine } = setupCompute({ providers: [openai()] });
    engine.ledger.setLimits(AGENT, { day: 1_000_000 });
    const job = await submit(ns, { model: 'fake-error', prompt: 'x', max_cost: 10_000 });
    const st = await waitStatus(ns, job.job_id);
    const message = 'provider openai: HTTP 400: The model `fake-error` does not exist or you do not have access to it.';
    expect(st).toMatchObject({ status: 'failed', error: { code: 'EREMOTEIO', message } });
    const e = await expectCode(readAll(ns, job.paths.result, user), 'EREMOTEIO', job.paths.result);
    expect(e.message).toContain(message);
    expect((await readStream(ns, job.job_id)).at(-1)).toMatchObject({ finish_reason: 'error', error: { code: 'EREMOTEIO', message } });
    expect(engine.ledger.usage(AGENT).day).toMatchObject({ reserved: 0, spent: 0 });
  });

  it('an error in the middle of a stream or a cut connection fails the job after the chunks it got', async () => {
    const { ns } = setupCompute({ providers: [openai()] });
    const a = await submit(ns, { model: 'fake-stream-error', prompt: 'x' });
    const chunksA = await readStream(ns, a.job_id);
    expect(chunksA[0]).toMatchObject({ delta: { text: 'Hello ' } });
    expect(chunksA.at(-1)).toMatchObject({ error: { code: 'EREMOTEIO', message: 'provider openai: The server had an error while processing your request.' } });
    const b = await submit(ns, { model: 'fake-broken', prompt: 'x' });
    const st = await waitStatus(ns, b.job_id);
    expect(st).toMatchObject({ status: 'failed', error: { code: 'EREMOTEIO' } });
    expect((st['error'] as { message: string }).message).toMatch(/provider openai: (stream ended before the answer finished|broken answer)/);
  });

  it('a slow endpoint: the job timeout fails it with ETIMEDOUT; cancel stops it at once', async () => {
    fake.slowMs = 3000;
    const { ns, engine } = setupCompute({ providers: [openai()] });
    const slow = await submit(ns, { model: 'fake-slow', prompt: 'x', timeout_ms: 200, max_cost: 10_000 });
    const st = await waitStatus(ns, slow.job_id);
    expect(st).toMatchObject({ status: 'failed', error: { code: 'ETIMEDOUT' } });
    const other = await submit(ns, { model: 'fake-slow', prompt: 'x', max_cost: 10_000 });
    await waitStatus(ns, other.job_id, ['running']);
    const t0 = Date.now();
    await writeAll(ns, other.paths.ctl, 'cancel', user);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await readJson(ns, other.paths.status)).toMatchObject({ status: 'cancelled' });
    expect(engine.ledger.usage(AGENT).day).toMatchObject({ reserved: 0, spent: 0 });
  });

  it('an unreachable endpoint fails the job with EREMOTEIO saying so; health says unavailable', async () => {
    const dead = new OpenAiProvider('dead', { base_url: `http://127.0.0.1:${await closedPort()}/v1`, models: ['m'] });
    const { ns } = setupCompute({ providers: [dead] });
    const job = await submit(ns, { model: 'm', prompt: 'x' });
    const st = await waitStatus(ns, job.job_id);
    expect(st).toMatchObject({ status: 'failed', error: { code: 'EREMOTEIO' } });
    expect((st['error'] as { message: string }).message).toMatch(/^provider dead: cannot reach the endpoint: fetch failed \(ECONNREFUSED\)/);
    expect(await readJson(ns, '/compute/providers/dead/health')).toMatchObject({ status: 'unavailable', reason: expect.stringContaining('ECONNREFUSED') });
  });

  it('the API key never appears in any file, error, stream or trace, even when the endpoint echoes it', async () => {
    const { ns, storage } = setupCompute({ providers: [openai()] });
    const from = storage.eventStore.lastId();
    const leaky = await submit(ns, { model: 'fake-leaky-error', prompt: 'x' });
    const st = await waitStatus(ns, leaky.job_id);
    expect((st['error'] as { message: string }).message).toContain('Bearer [redacted]');
    const ok = await submit(ns, { model: 'fake-chat', prompt: 'x' });
    await waitStatus(ns, ok.job_id);
    const seen: string[] = [];
    for (const p of ['/compute/providers/openai/info', '/compute/providers/openai/models', '/compute/providers/openai/health', '/compute/usage', '/compute/policy']) {
      seen.push(new TextDecoder().decode(await readAll(ns, p, user)));
    }
    for (const j of [leaky, ok]) {
      seen.push(JSON.stringify(await readJson(ns, j.paths.status)));
      seen.push(JSON.stringify(await readStream(ns, j.job_id)));
    }
    seen.push(await readAll(ns, leaky.paths.result, user).then(() => '', (e: Error) => e.message));
    const events = await collect(storage.events.subscribe({ scopes: '*', map: (r) => r.path }, from), 1000, 300);
    seen.push(JSON.stringify(events));
    const all = seen.join('\n');
    expect(all).toContain('bearer key from $TEST_OPENAI_KEY');
    expect(all).not.toContain(KEY);
    expect(all).not.toContain('test-double-key');
  });

  it('a wrong key fails with the endpoint message (its echo of the wrong key is the caller\u2019s own input)', async () => {
    const wrong = new OpenAiProvider('openai', { base_url: fake.url, api_key: 'sk-wrong-wrong', models: ['fake-chat'] });
    const { ns } = setupCompute({ providers: [wrong] });
    const job = await submit(ns, { model: 'fake-chat', prompt: 'x' });
    const st = await waitStatus(ns, job.job_id);
    expect(st['error']).toMatchObject({ code: 'EREMOTEIO', message: 'provider openai: HTTP 401: Incorrect API key provided: [redacted].' });
    expect(await readJson(ns, '/compute/providers/openai/health')).toMatchObject({ status: 'unavailable', reason: 'HTTP 401: Incorrect API key provided' });
  });

  it('credentials in base_url (sent as Basic auth) and extra header values never show in an error or health', async () => {
    const creds = new OpenAiProvider('creds', { base_url: fake.url.replace('http://', 'http://agent:s3cret-pass@'), headers: { 'x-api-key': 'header-secret-value' }, models: ['fake-chat'] }, {});
    const dead = new OpenAiProvider('dead', { base_url: 'http://agent:s3cret-pass@127.0.0.1:9/v1', headers: { 'x-api-key': 'header-secret-value' }, models: ['m'] }, {});
    const { ns, storage } = setupCompute({ providers: [creds, dead] });
    const from = storage.eventStore.lastId();
    const rejected = await waitStatus(ns, (await submit(ns, { model: 'fake-chat', prompt: 'x' })).job_id);
    expect(fake.requests.at(-1)!.auth).toBe(`Basic ${Buffer.from('agent:s3cret-pass').toString('base64')}`);
    expect(rejected).toMatchObject({ status: 'failed', error: { code: 'EREMOTEIO', message: 'provider creds: HTTP 401: Incorrect API key provided: Basic [redacted].' } });
    const unreachable = await waitStatus(ns, (await submit(ns, { model: 'm', prompt: 'x' })).job_id);
    expect(unreachable).toMatchObject({ status: 'failed', error: { code: 'EREMOTEIO' } });
    const seen = [JSON.stringify([rejected, unreachable, await creds.health(), await dead.health(), creds.info(), dead.info()])];
    seen.push(JSON.stringify(await collect(storage.events.subscribe({ scopes: '*', map: (r) => r.path }, from), 1000, 300)));
    for (const secret of ['s3cret-pass', 'header-secret-value', Buffer.from('agent:s3cret-pass').toString('base64')]) {
      expect(seen.join('\n')).not.toContain(secret);
    }
    expect(creds.info()).toMatchObject({ endpoint: fake.url, auth: 'basic credentials from base_url' });
  });

  it('does not follow redirects: the key stays with the endpoint, the job fails saying where base_url should point', async () => {
    const seen: { url: string; auth: string | undefined }[] = [];
    const target = createHttpServer((req, res) => {
      seen.push({ url: req.url ?? '', auth: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"data": []}');
    });
    const redirector = createHttpServer((req, res) => res.writeHead(307, { location: `http://127.0.0.1:${(target.address() as AddressInfo).port}/v1${req.url?.slice(3)}` }).end());
    for (const srv of [target, redirector]) await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const moved = new OpenAiProvider('moved', { base_url: `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/v1`, api_key: KEY, models: ['m'] }, {});
      const { ns } = setupCompute({ providers: [moved] });
      const st = await waitStatus(ns, (await submit(ns, { model: 'm', prompt: 'x' })).job_id);
      expect(st).toMatchObject({ status: 'failed', error: { code: 'EREMOTEIO' } });
      expect((st['error'] as { message: string }).message).toMatch(/^provider moved: HTTP 307: the endpoint redirects to http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions; redirects are not followed/);
      expect(await moved.health()).toMatchObject({ status: 'degraded', reason: expect.stringContaining('HTTP 307: the endpoint redirects to') });
      expect(seen).toEqual([]);
    } finally {
      for (const srv of [target, redirector]) await new Promise((r) => srv.close(r));
    }
  });

  it('refuses a base_url with a query or fragment and headers that cannot be sent, at construction', () => {
    const make = (config: Partial<ConstructorParameters<typeof OpenAiProvider>[1]>, env: Record<string, string> = {}) => () =>
      new OpenAiProvider('p', { base_url: 'http://127.0.0.1:1/v1', models: ['m'], ...config }, env);
    expect(make({ base_url: 'http://127.0.0.1:1/v1?x=1' })).toThrow(/base_url cannot have a query/);
    expect(make({ base_url: 'http://127.0.0.1:1/v1#frag' })).toThrow(/base_url cannot have a query/);
    expect(make({ base_url: 'file:///etc/passwd' })).toThrow(/base_url must be http or https/);
    expect(make({ headers: { 'bad name': 'v' } })).toThrow(/"bad name" is not a header name/);
    expect(make({ headers: { 'x-key': 'secret-value\r\nx-injected: 1' } })).toThrow(/the value of header 'x-key' holds a control character/);
    expect(make({ headers: { 'x-key': 'secret-value\nx' } })).not.toThrow(/secret-value/);
    expect(make({ api_key: 'sk-abc\n' })).toThrow(/api_key holds a control character/);
    expect(make({ api_key_env: 'K' }, { K: 'sk-abc\r\n' })).toThrow(/the key in \$K holds a control character/);
    expect(new OpenAiProvider('p', { base_url: 'http://127.0.0.1:1/v1?', models: ['m'] }, {}).info().endpoint).toBe('http://127.0.0.1:1/v1');
  });

  it('info shows the endpoint without credentials; models and health come from the endpoint when not configured', async () => {
    const p = new OpenAiProvider('any', { base_url: fake.url.replace('http://', 'http://user:secret@') }, {});
    expect(p.info()).toMatchObject({ endpoint: fake.url, auth: 'basic credentials from base_url', models: [] });
    expect(p.supports('anything')).toBe(true);
    const withKey = new OpenAiProvider('k', { base_url: fake.url, api_key: KEY }, {});
    expect(await withKey.health()).toMatchObject({ status: 'available' });
    expect(withKey.info().models.map((m) => m.id)).toContain('fake-chat');
    expect(withKey.supports('fake-chat')).toBe(true);
    expect(withKey.supports('gpt-unknown')).toBe(false);
  });
});

describe('routing between providers', () => {
  it('prefer cost, latency or quality picks among providers serving one model; a pinned provider wins', async () => {
    const cheap = openai({ pricing: { input_per_mtok: 1000, output_per_mtok: 1000 }, ttft_ms: 900, models: [{ id: 'fake-chat', quality: 1 }] }, 'cheap');
    const fast = openai({ pricing: { input_per_mtok: 9000, output_per_mtok: 9000 }, ttft_ms: 50, models: [{ id: 'fake-chat', quality: 2 }] }, 'fast');
    const { ns } = setupCompute({ providers: [new LocalEchoProvider(), cheap, fast] });
    const providerFor = async (prefer: string, extra: Record<string, unknown> = {}) => {
      await writeJson(ns, '/compute/policy', { prefer }, admin);
      const job = await submit(ns, { model: 'fake-chat', prompt: 'x', ...extra });
      return (await waitStatus(ns, job.job_id))['provider'];
    };
    expect(await providerFor('cost')).toBe('cheap');
    expect(await providerFor('latency')).toBe('fast');
    expect(await providerFor('quality')).toBe('fast');
    expect(await providerFor('cost', { provider: 'fast' })).toBe('fast');
    await writeJson(ns, '/compute/policy', { allowed_providers: ['local-echo', 'fast'], prefer: 'cost' }, admin);
    const job = await submit(ns, { model: 'fake-chat', prompt: 'x' });
    expect((await waitStatus(ns, job.job_id))['provider']).toBe('fast');
    await writeJson(ns, '/compute/policy', { allowed_providers: ['local-echo', 'fast'] }, admin);
    await expectCode(submit(ns, { model: 'fake-chat', prompt: 'x', provider: 'cheap' }), 'EACCES', 'outside allowed_providers');
    await expectCode(submit(ns, { model: 'echo', prompt: 'x', provider: 'cheap' }), 'EINVAL', "no provider serves model 'echo'");
  });

  it('the fallback provider takes a job whose provider failed before any output', async () => {
    const dead = new OpenAiProvider('dead', { base_url: `http://127.0.0.1:${await closedPort()}/v1`, models: ['fake-chat'] });
    const { ns, storage } = setupCompute({ providers: [dead, openai({}, 'backup')], policy: { fallback_provider: 'backup', prefer: 'latency' } });
    const from = storage.eventStore.lastId();
    const job = await submit(ns, { model: 'fake-chat', prompt: 'fall back', provider: 'dead' });
    const st = await waitStatus(ns, job.job_id);
    expect(st).toMatchObject({ status: 'complete', provider: 'backup' });
    expect(await readJson(ns, job.paths.result)).toMatchObject({ provider: 'backup', output: { text: 'Hello from the test double! You said: fall back' } });
    const traces = (await collect(storage.events.subscribe(storage.events.channel(AGENT, '/logs').matcher('/trace'), from), 3, 1000)).map(
      (e) => e.data as Record<string, unknown>,
    );
    expect(traces.map((t) => t['type'])).toEqual(['compute_submit', 'compute_fallback', 'compute_complete']);
    expect(traces[1]).toMatchObject({ from: 'dead', to: 'backup' });
  });
});

describe('compute config', () => {
  it('builds providers from config.json: local-echo by default, openai entries, validation', () => {
    const reg = buildProviders(
      parseComputeConfig({ providers: { openai: { base_url: 'http://127.0.0.1:1/v1', api_key_env: 'K', models: ['m'] } } }).providers,
      {},
    );
    expect(reg.list().map((p) => p.id)).toEqual(['local-echo', 'openai']);
    expect(reg.get('openai')!.info()).toMatchObject({ auth: 'bearer key from $K (not set)' });
    expect(buildProviders({ 'local-echo': false }).list()).toEqual([]);
    expect(() => parseComputeConfig({ providers: { openai: { base_url: 'not a url' } } })).toThrow(/base_url/);
    expect(() => parseComputeConfig({ providers: { openai: { base_url: 'http://x', modles: [] } } })).toThrow(/unknown field 'modles'/);
  });

  it('openComputeEngine reads $AGENT9_HOME/config.json: providers, the default policy; a bad file is EINVAL naming it', async () => {
    const home = tempDir();
    writeFileSync(
      join(home, 'config.json'),
      JSON.stringify({
        compute: {
          providers: { openai: { base_url: fake.url, api_key_env: 'TEST_OPENAI_KEY', models: ['fake-chat'], pricing: PRICING } },
          policy: { default_model: 'fake-chat', max_cost_per_job: 100000 },
        },
      }),
    );
    const storage = openStorage(home);
    const engine = openComputeEngine({ storage, home, env: { TEST_OPENAI_KEY: KEY } });
    try {
      const ns = agentNamespace(storage, engine);
      expect((await ns.readdir('/compute/providers', user)).map((e) => e.name)).toEqual(['local-echo', 'openai']);
      expect(await readJson(ns, '/compute/policy')).toMatchObject({ default_model: 'fake-chat', max_cost_per_job: 100000 });
      await expectCode(submit(ns, { prompt: 'configured' }), 'EDQUOT', "max cost 615450 micro-USD is over the policy's max_cost_per_job");
      const job = await submit(ns, { prompt: 'configured', max_tokens: 100 });
      expect(await waitStatus(ns, job.job_id)).toMatchObject({ status: 'complete', provider: 'openai' });
    } finally {
      await engine.close();
    }
    writeFileSync(join(home, 'config.json'), '{"compute": {"providers": {"x": {"base_url": 5}}}}');
    expect(() => openComputeEngine({ storage, home })).toThrow(/config\.json: compute: field 'providers\.x/);
    writeFileSync(join(home, 'config.json'), '{"compute": ');
    expect(() => openComputeEngine({ storage, home })).toThrow(/config\.json: malformed JSON/);
  });
});
