/** /compute through a namespace, in process: the origin's cases and ours. */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { readAll, writeAll, callFile } from '../../src/fs/ops.js';
import { Storage } from '../../src/runtime/storage/index.js';
import { ComputeEngine, LocalEchoProvider, ProviderRegistry } from '../../src/services/compute/index.js';
import { splitChunks } from '../../src/services/compute/providers/local-echo.js';
import type { ComputeProvider, ProviderRun } from '../../src/services/compute/types.js';
import { admin, cleanup, collect, expectCode, tempDir, text, user } from '../helpers.js';
import { AGENT, agentNamespace, closeEngines, readJson, readStream, setupCompute, submit, waitStatus, writeJson } from './setup.js';
import { serverMigrations } from '../../src/server/capabilities.js';

afterEach(closeEngines);
afterAll(cleanup);

interface Usage {
  tick: { limit: number | null; reserved: number; spent: number; remaining: number | null };
  day: { limit: number | null; reserved: number; spent: number; remaining: number | null };
  compute: { tick: { reserved: number; spent: number; limit: number | null } };
  scopes: Record<string, unknown>;
  jobs: Record<string, number>;
}

/** A provider that never answers until its job is aborted (a model that hangs). */
class HangingProvider implements ComputeProvider {
  readonly id = 'hanging';
  started = 0;
  info() {
    return {
      ...new LocalEchoProvider().info(),
      id: this.id,
      type: 'test-hanging',
      name: 'test provider that never answers',
      models: [{ id: 'hang', pricing: { input_per_mtok: 0, output_per_mtok: 0 } }],
    };
  }
  supports(model: string) {
    return model === 'hang';
  }
  async health() {
    return { status: 'available' as const, checked_at: Date.now() };
  }
  run(_req: unknown, io: ProviderRun) {
    this.started++;
    return new Promise<never>((_resolve, reject) => io.signal.addEventListener('abort', () => reject(io.signal.reason)));
  }
}

describe('/compute with local-echo', () => {
  it('new + result + usage + idempotency (the origin case)', async () => {
    const { ns, engine } = setupCompute();
    engine.ledger.setLimits(AGENT, { tick: 1000, day: 10_000 });
    const req = { model: 'echo', prompt: 'hello world', idempotency_key: 'k1', max_cost: 100 };
    const first = await submit(ns, req);
    expect(first.job_id).toMatch(/^[0-9a-z]+-[0-9a-f]{6}$/);
    expect(first.status).toBe('pending');
    expect(first.paths).toEqual({
      status: `/compute/jobs/${first.job_id}/status`,
      result: `/compute/jobs/${first.job_id}/result`,
      stream: `/compute/jobs/${first.job_id}/stream`,
      ctl: `/compute/jobs/${first.job_id}/ctl`,
    });
    await waitStatus(ns, first.job_id);
    const result = await readJson(ns, first.paths.result);
    // "hello world": 11 bytes = 3 tokens + 4 for the message in, 3 out, at 1 micro-USD per token.
    expect(result).toMatchObject({
      job_id: first.job_id,
      provider: 'local-echo',
      model: 'echo',
      output: { text: 'hello world', finish_reason: 'stop' },
      usage: { input_tokens: 7, output_tokens: 3, total_tokens: 10 },
      cost: 10,
      reserved: 100,
    });
    const usage = await readJson<Usage>(ns, '/compute/usage');
    expect(usage.tick).toEqual({ limit: 1000, reserved: 0, spent: 10, remaining: 990 });
    expect(usage.day).toEqual({ limit: 10_000, reserved: 0, spent: 10, remaining: 9990 });
    expect(usage.jobs.complete).toBe(1);

    const again = await submit(ns, req);
    expect(again).toMatchObject({ job_id: first.job_id, status: 'complete', replayed: true });
    expect((await readJson<Usage>(ns, '/compute/usage')).tick).toEqual({ limit: 1000, reserved: 0, spent: 10, remaining: 990 });
    expect(engine.jobs.ids(AGENT)).toHaveLength(1);
    // The same key for another request is a mistake worth saying.
    const e = await expectCode(submit(ns, { ...req, prompt: 'something else' }), 'EEXIST', '/compute/new');
    expect(e.message).toContain(`idempotency key 'k1' was used for a different request (job ${first.job_id})`);
    // A repeat answers with its job whatever changed since: key order, the policy, the budget.
    await writeJson(ns, '/compute/policy', { blocked_models: ['echo'] }, admin);
    engine.ledger.setLimits(AGENT, { tick: 0 });
    const reordered = `{"max_cost":100,"idempotency_key":"k1","prompt":"hello world","model":"echo"}`;
    expect(await submit(ns, reordered)).toMatchObject({ job_id: first.job_id, replayed: true });
  });

  it('concurrent submits with one idempotency key make one job and one reservation', async () => {
    const { ns, engine } = setupCompute();
    const req = { model: 'echo', prompt: 'once', idempotency_key: 'same', max_cost: 50 };
    const answers = await Promise.all(Array.from({ length: 20 }, () => submit(ns, req)));
    expect(new Set(answers.map((a) => a.job_id)).size).toBe(1);
    expect(answers.filter((a) => !a.replayed)).toHaveLength(1);
    expect(engine.ledger.usage(AGENT).day.reserved + engine.ledger.usage(AGENT).day.spent).toBeLessThanOrEqual(50);
    await engine.drain();
    expect(engine.jobs.ids(AGENT)).toHaveLength(1);
  });

  it('budget exceeded blocks submit with EDQUOT and records nothing', async () => {
    const { ns, engine } = setupCompute();
    engine.ledger.setLimits(AGENT, { tick: 1, day: 1 });
    const e = await expectCode(submit(ns, { model: 'echo', prompt: 'x', max_cost: 6 }), 'EDQUOT', '/compute/new');
    expect(e.message).toMatch(/agent tick window has 1 micro-USD left of 1.*6 needed/);
    expect(engine.jobs.ids(AGENT)).toEqual([]);
    expect((await readJson<Usage>(ns, '/compute/usage')).tick).toEqual({ limit: 1, reserved: 0, spent: 0, remaining: 1 });
    expect(await ns.readdir('/compute/jobs', user)).toEqual([]);
  });

  // The origin case (org 10, repo 5, issue 2) ×10: since max_cost became a hard cap it must cover the
  // input (6 micro-USD here) and a token of output.
  it('budget scopes enforce the hierarchy (org 100, repo 50, issue 20)', async () => {
    const { ns, engine } = setupCompute();
    engine.ledger.setLimits(AGENT, { tick: 100 }, 'org:acme');
    engine.ledger.setLimits(AGENT, { tick: 50 }, 'repo:web');
    engine.ledger.setLimits(AGENT, { tick: 20 }, 'issue:42');
    const budget_scope = { org: 'acme', repo: 'web', issue: '42' };
    const req = (max_cost: number) => ({ model: 'echo', prompt: 'a b c d', max_cost, budget_scope, options: { chunk_delay_ms: 500 } });
    await expectCode(submit(ns, req(21)), 'EDQUOT', 'issue:42 tick window has 20');
    const ok = await submit(ns, req(20));
    await expectCode(submit(ns, req(20)), 'EDQUOT', 'issue:42 tick window has 0');
    const usage = await readJson<Usage>(ns, '/compute/usage');
    expect(usage.scopes['issue:42']).toMatchObject({ tick: { limit: 20, reserved: 20, remaining: 0 } });
    expect(usage.scopes['org:acme']).toMatchObject({ tick: { limit: 100, reserved: 20, remaining: 80 } });
    await writeAll(ns, ok.paths.ctl, 'cancel', user);
  });

  it('streams its echo in chunks from the beginning of the job, ending with end', async () => {
    const { ns } = setupCompute();
    const job = await submit(ns, { model: 'echo', prompt: 'hello world', options: { chunk_delay_ms: 20 } });
    const chunks = await readStream(ns, job.job_id);
    expect(chunks).toEqual([
      { delta: { text: 'hello ' }, finish_reason: null, usage: null },
      { delta: { text: 'world' }, finish_reason: null, usage: null },
      { delta: { text: '' }, finish_reason: 'stop', usage: { input_tokens: 7, output_tokens: 3, total_tokens: 10 } },
    ]);
    expect(await readJson(ns, job.paths.result)).toMatchObject({ output: { text: 'hello world' } });
    // Read again after the end: the same chunks, then EOF.
    expect((await readStream(ns, job.job_id)).map((c) => c.delta.text).join('')).toBe('hello world');
    // A watch of the stream file sees the same data events and ends with `end`.
    const events = await collect(ns.watch(`/compute/jobs/${job.job_id}/stream`, 0, user), 100, 3000);
    expect(events.map((e) => e.type)).toEqual(['data', 'data', 'data', 'end']);
    expect(events.every((e) => e.path === `/compute/jobs/${job.job_id}/stream`)).toBe(true);
  });

  it('a job that does not stream yields one chunk with the full output', async () => {
    const { ns } = setupCompute();
    const job = await submit(ns, { model: 'echo', prompt: 'one two three four five', stream: false });
    expect(await readStream(ns, job.job_id)).toEqual([
      { delta: { text: 'one two three four five' }, finish_reason: 'stop', usage: { input_tokens: 10, output_tokens: 6, total_tokens: 16 } },
    ]);
  });

  it('local-echo splits into at most 4 chunks at word boundaries and cuts at max_tokens', async () => {
    expect(splitChunks('a b c d e f g h')).toEqual(['a b ', 'c d ', 'e f ', 'g h']);
    expect(splitChunks('single')).toEqual(['single']);
    expect(splitChunks('')).toEqual([]);
    const { ns } = setupCompute();
    const job = await submit(ns, { model: 'echo', prompt: 'abcdefghijklmnop', max_tokens: 2 });
    await waitStatus(ns, job.job_id);
    expect(await readJson(ns, job.paths.result)).toMatchObject({ output: { text: 'abcdefgh', finish_reason: 'length' } });
  });

  it('result answers EAGAIN "not ready" (retry after) until the job is done', async () => {
    const { ns } = setupCompute();
    const job = await submit(ns, { model: 'echo', prompt: 'slow one', options: { chunk_delay_ms: 300 } });
    const e = await expectCode(readAll(ns, job.paths.result, user), 'EAGAIN', job.paths.result);
    expect(e.message).toContain('not ready');
    expect((e as unknown as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    const st = await waitStatus(ns, job.job_id, ['streaming']);
    expect(st).toMatchObject({ status: 'streaming', reserved: expect.any(Number), cost: null });
    await waitStatus(ns, job.job_id);
    expect(await readJson(ns, job.paths.result)).toMatchObject({ output: { text: 'slow one' } });
  });

  it('cancel releases the reservation; the result and the stream say cancelled', async () => {
    const { ns, engine } = setupCompute();
    engine.ledger.setLimits(AGENT, { tick: 1000 });
    const job = await submit(ns, { model: 'echo', prompt: 'a b c d', max_cost: 400, options: { chunk_delay_ms: 200 } });
    expect((await readJson<Usage>(ns, '/compute/usage')).tick.reserved).toBe(400);
    await waitStatus(ns, job.job_id, ['running', 'streaming']);
    await writeAll(ns, job.paths.ctl, 'cancel\n', user);
    const st = await readJson(ns, job.paths.status);
    expect(st).toMatchObject({ status: 'cancelled', cost: 0, error: { code: 'ECANCELED', message: 'job was cancelled' } });
    expect((await readJson<Usage>(ns, '/compute/usage')).tick).toEqual({ limit: 1000, reserved: 0, spent: 0, remaining: 1000 });
    await expectCode(readAll(ns, job.paths.result, user), 'ECANCELED', job.paths.result);
    const chunks = await readStream(ns, job.job_id);
    expect(chunks.at(-1)).toMatchObject({ finish_reason: 'cancelled', error: { code: 'ECANCELED' } });
    // Cancelling again changes nothing; cancelling a finished job is refused with a reason.
    await writeAll(ns, job.paths.ctl, 'cancel', user);
    const done = await submit(ns, { model: 'echo', prompt: 'quick' });
    await waitStatus(ns, done.job_id);
    await expectCode(writeAll(ns, done.paths.ctl, 'cancel', user), 'EINVAL', 'already finished (complete)');
    await expectCode(writeAll(ns, done.paths.ctl, 'stop', user), 'EINVAL', "unknown command 'stop'");
  });

  it('a pending job waiting for a slot can be cancelled before it starts', async () => {
    const { ns, engine } = setupCompute({ policy: { max_concurrent_jobs: 1 } });
    const first = await submit(ns, { model: 'echo', prompt: 'a b', options: { chunk_delay_ms: 150 } });
    const second = await submit(ns, { model: 'echo', prompt: 'waiting', max_cost: 30 });
    await waitStatus(ns, first.job_id, ['running', 'streaming']);
    expect((await readJson(ns, second.paths.status)).status).toBe('pending');
    await writeAll(ns, second.paths.ctl, 'cancel', user);
    expect((await readJson(ns, second.paths.status)).status).toBe('cancelled');
    await waitStatus(ns, first.job_id);
    await engine.drain();
    expect((await readJson(ns, second.paths.status)).status).toBe('cancelled');
    expect(engine.ledger.usage(AGENT).tick.reserved).toBe(0);
  });

  it('a hundred concurrent submits against a small budget never overspend', async () => {
    const { ns, engine } = setupCompute();
    engine.ledger.setLimits(AGENT, { tick: 300, day: 300 });
    let maxSeen = 0;
    const outcomes = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        try {
          const job = await submit(ns, { model: 'echo', prompt: `job ${i}`, max_cost: 10 });
          const u = engine.ledger.usage(AGENT).day;
          maxSeen = Math.max(maxSeen, u.reserved + u.spent);
          return job.job_id;
        } catch (err) {
          expect((err as { code: string }).code).toBe('EDQUOT');
          return 'refused';
        }
      }),
    );
    await engine.drain();
    const accepted = outcomes.filter((o) => o !== 'refused');
    const usage = (await readJson<Usage>(ns, '/compute/usage')).day;
    expect(maxSeen).toBeLessThanOrEqual(300);
    expect(usage.reserved).toBe(0);
    expect(usage.spent).toBeLessThanOrEqual(300);
    expect(accepted.length).toBeGreaterThanOrEqual(30);
    let spent = 0;
    for (const id of accepted) spent += (await readJson<{ cost: number }>(ns, `/compute/jobs/${id}/result`)).cost;
    expect(spent).toBe(usage.spent);
  });

  it('bad requests get a clear error and leave nothing behind', async () => {
    const { ns, engine } = setupCompute();
    const cases: [string, string, string][] = [
      ['{"model": "echo", "prompt": ', 'EINVAL', 'malformed JSON'],
      ['[1,2]', 'EINVAL', 'must be a JSON object'],
      ['{"prompt":"hi"}', 'EINVAL', "missing field 'model'"],
      ['{"model":"echo"}', 'EINVAL', "missing the input: give 'prompt'"],
      ['{"model":"gpt-9","prompt":"hi"}', 'EINVAL', "no provider serves model 'gpt-9' (models: echo)"],
      ['{"model":"echo","prompt":"hi","temprature":1}', 'EINVAL', "unknown field 'temprature'"],
      ['{"model":"echo","prompt":"hi","max_cost":-1}', 'EINVAL', "field 'max_cost'"],
      ['{"model":"echo","prompt":"hi","max_cost":5,"max_cost_usd":1}', 'EINVAL', 'not both'],
      ['{"model":"echo","prompt":"hi","messages":[{"role":"user","content":"x"}]}', 'EINVAL', 'not both'],
      ['{"model":"echo","messages":[{"role":"robot","content":"x"}]}', 'EINVAL', "field 'messages.0.role'"],
      ['{"model":"echo","prompt":"hi","budget_scope":{"org":"../etc"}}', 'EINVAL', "field 'budget_scope.org'"],
      ['{"model":"echo","prompt":"hi","options":{"chunk_delay_ms":"slow"}}', 'EINVAL', 'chunk_delay_ms'],
      ['{"model":"echo","prompt":"hi","provider":"nope"}', 'EINVAL', "unknown provider 'nope'"],
      ['{"model":"echo","prompt":"hi","timeout_ms":99999999}', 'EINVAL', 'max_timeout_ms'],
      [JSON.stringify({ model: 'echo', prompt: 'x'.repeat(300 * 1024) }), 'EFBIG', "over the policy's max_input_bytes"],
      [JSON.stringify({ model: 'echo', prompt: 'x'.repeat(1100 * 1024) }), 'EFBIG', 'larger than 1048576 bytes'],
    ];
    for (const [body, code, words] of cases) {
      const e = await expectCode(callFile(ns, '/compute/new', body, user), code, '/compute/new');
      expect(e.message, body.slice(0, 80)).toContain(words);
    }
    expect(engine.jobs.ids(AGENT)).toEqual([]);
    expect(engine.ledger.usage(AGENT).day).toMatchObject({ reserved: 0, spent: 0 });
  });

  it('jobs/ lists the jobs; unknown jobs and other agents\u2019 jobs are ENOENT', async () => {
    const { ns, engine, storage } = setupCompute();
    const a = await submit(ns, { model: 'echo', prompt: 'one' });
    const b = await submit(ns, { model: 'echo', prompt: 'two' });
    await engine.drain();
    const names = (await ns.readdir('/compute/jobs', user)).map((e) => e.name);
    expect(names).toEqual([a.job_id, b.job_id].sort());
    const files = await ns.readdir(`/compute/jobs/${a.job_id}`, user);
    expect(Object.fromEntries(files.map((f) => [f.name, f.stat.kind]))).toEqual({ status: 'view', result: 'view', stream: 'stream', ctl: 'message' });
    expect((await ns.readdir('/compute', user)).map((e) => e.name).sort()).toEqual(['jobs', 'new', 'policy', 'providers', 'usage']);
    await expectCode(readAll(ns, '/compute/jobs/nope/status', user), 'ENOENT', '/compute/jobs/nope');
    const other = agentNamespace(storage, engine, 'b');
    await expectCode(readAll(other, `/compute/jobs/${a.job_id}/status`, user), 'ENOENT');
    expect(await other.readdir('/compute/jobs', user)).toEqual([]);
    // The status file's version moves with the job.
    const st = await ns.stat(`/compute/jobs/${a.job_id}/status`, user);
    expect(st.version).toBeGreaterThanOrEqual(3);
  });

  it('providers/<id>/{info,models,health}', async () => {
    const { ns } = setupCompute();
    expect((await ns.readdir('/compute/providers', user)).map((e) => e.name)).toEqual(['local-echo']);
    const info = await readJson(ns, '/compute/providers/local-echo/info');
    expect(info).toMatchObject({ id: 'local-echo', type: 'local-echo', name: 'local echo (not a model)', streaming: true });
    expect(await readJson(ns, '/compute/providers/local-echo/models')).toEqual([
      { id: 'echo', context_length: 1_000_000, pricing: { input_per_mtok: 1_000_000, output_per_mtok: 1_000_000 }, quality: 0 },
    ]);
    expect(await readJson(ns, '/compute/providers/local-echo/health')).toMatchObject({ status: 'available' });
    await expectCode(readAll(ns, '/compute/providers/nope/info', user), 'ENOENT');
  });

  it('the trace shows each submit, completion with its cost, and failure', async () => {
    const { ns, storage } = setupCompute();
    const from = storage.eventStore.lastId();
    const ok = await submit(ns, { model: 'echo', prompt: 'hello world', max_cost: 50 });
    await waitStatus(ns, ok.job_id);
    const bad = await submit(ns, { model: 'echo', prompt: 'x y z', options: { chunk_delay_ms: 500 } });
    await writeAll(ns, bad.paths.ctl, 'cancel', user);
    const events = await collect(storage.events.subscribe(storage.events.channel(AGENT, '/logs').matcher('/trace'), from), 4, 2000);
    const traces = events.map((e) => e.data as Record<string, unknown>);
    expect(traces.map((t) => t['type'])).toEqual(['compute_submit', 'compute_complete', 'compute_submit', 'compute_cancelled']);
    expect(traces[0]).toMatchObject({ source: 'compute', job_id: ok.job_id, provider: 'local-echo', model: 'echo', reserved: 50 });
    expect(traces[1]).toMatchObject({ job_id: ok.job_id, cost: 10, reserved: 50, refunded: 40 });
    expect(traces[3]).toMatchObject({ job_id: bad.job_id, code: 'ECANCELED', released: expect.any(Number) });
  });

  it('a restart fails the jobs in flight with a reason, releases their reservations and keeps finished results', async () => {
    const dir = tempDir();
    const hanging = new HangingProvider();
    const before = setupCompute({ dir, providers: [new LocalEchoProvider(), hanging] });
    before.engine.ledger.setLimits(AGENT, { day: 1000 });
    const done = await submit(before.ns, { model: 'echo', prompt: 'kept', max_cost: 100 });
    await waitStatus(before.ns, done.job_id);
    const inflight = await submit(before.ns, { model: 'hang', prompt: 'never answered', max_cost: 300 });
    await waitStatus(before.ns, inflight.job_id, ['running']);
    expect(before.engine.ledger.usage(AGENT).day.reserved).toBe(300);

    // A new server on the same database, as after a crash (the old one is still hanging in its provider).
    const storage = Storage.open(dir, { migrations: serverMigrations() });
    const after = new ComputeEngine({ storage, providers: new ProviderRegistry([new LocalEchoProvider()]) });
    const ns = agentNamespace(storage, after);
    const st = await readJson(ns, inflight.paths.status);
    expect(st).toMatchObject({ status: 'failed', error: { code: 'EIO', message: 'server restarted while the job was running' } });
    await expectCode(readAll(ns, inflight.paths.result, user), 'EIO', 'server restarted');
    expect(after.ledger.usage(AGENT).day).toEqual({ limit: 1000, reserved: 0, spent: 6, remaining: 994 });
    expect(await readJson(ns, done.paths.result)).toMatchObject({ output: { text: 'kept' }, cost: 6 });
    expect((await readStream(ns, inflight.job_id)).at(-1)).toMatchObject({ finish_reason: 'error', error: { code: 'EIO' } });
    // The old server's job, once it gives up, changes nothing any more.
    await before.engine.close();
    expect(await readJson(ns, inflight.paths.status)).toMatchObject({ status: 'failed', error: { message: 'server restarted while the job was running' } });
    expect(after.ledger.usage(AGENT).day.reserved).toBe(0);
    await after.close();
    storage.close();
  });

  it('finished jobs are kept for job_retention_ms (7 days by default), then dropped at start', async () => {
    const dir = tempDir();
    const first = setupCompute({ dir });
    const job = await submit(first.ns, { model: 'echo', prompt: 'old news' });
    await waitStatus(first.ns, job.job_id);
    const storage = Storage.open(dir, { migrations: serverMigrations() });
    const sixDays = new ComputeEngine({ storage, providers: new ProviderRegistry([new LocalEchoProvider()]), now: () => Date.now() + 6 * 86_400_000 });
    expect(sixDays.jobs.ids(AGENT)).toEqual([job.job_id]);
    await sixDays.close();
    const eightDays = new ComputeEngine({ storage, providers: new ProviderRegistry([new LocalEchoProvider()]), now: () => Date.now() + 8 * 86_400_000 });
    expect(eightDays.jobs.ids(AGENT)).toEqual([]);
    await eightDays.close();
    storage.close();
  });

  it('a timeout fails the job with ETIMEDOUT and releases its reservation', async () => {
    const { ns, engine } = setupCompute({ providers: [new HangingProvider()] });
    const job = await submit(ns, { model: 'hang', prompt: 'x', timeout_ms: 100, max_cost: 5 });
    const st = await waitStatus(ns, job.job_id);
    expect(st).toMatchObject({ status: 'failed', error: { code: 'ETIMEDOUT', message: 'job did not finish within timeout_ms (100 ms)' } });
    await expectCode(readAll(ns, job.paths.result, user), 'ETIMEDOUT');
    expect(engine.ledger.usage(AGENT).day).toMatchObject({ reserved: 0, spent: 0 });
  });
});

describe('/compute/policy', () => {
  it('is admin-write: an agent reads it, only an admin replaces it', async () => {
    const { ns } = setupCompute();
    const policy = await readJson(ns, '/compute/policy');
    expect(policy).toMatchObject({ prefer: 'balanced', require_idempotency: false, blocked_models: [], default_timeout_ms: 120000 });
    await expectCode(writeJson(ns, '/compute/policy', { blocked_models: ['echo'] }, user), 'EACCES', '/compute/policy');
    expect((await ns.stat('/compute/policy', user)).mode & 0o222).toBe(0);
    await writeJson(ns, '/compute/policy', { blocked_models: ['echo'] }, admin);
    expect(await readJson(ns, '/compute/policy')).toMatchObject({ blocked_models: ['echo'], prefer: 'balanced' });
    expect((await ns.stat('/compute/policy', admin)).version).toBe(1);
  });

  it('blocks and allows models, requires keys and max costs, caps a job, and rejects bad policies', async () => {
    const { ns, engine } = setupCompute();
    await writeJson(ns, '/compute/policy', { blocked_models: ['ech*'] }, admin);
    await expectCode(submit(ns, { model: 'echo', prompt: 'hi' }), 'EACCES', "model 'echo' is blocked by /compute/policy");
    await writeJson(ns, '/compute/policy', { allowed_models: ['gpt-*'] }, admin);
    await expectCode(submit(ns, { model: 'echo', prompt: 'hi' }), 'EACCES', 'not in allowed_models');
    await writeJson(ns, '/compute/policy', { allowed_providers: ['openai'] }, admin);
    await expectCode(submit(ns, { model: 'echo', prompt: 'hi' }), 'EACCES', 'outside allowed_providers');
    await writeJson(ns, '/compute/policy', { require_idempotency: true, require_max_cost: true, max_cost_per_job: 100 }, admin);
    await expectCode(submit(ns, { model: 'echo', prompt: 'hi' }), 'EINVAL', "missing field 'idempotency_key'");
    await expectCode(submit(ns, { model: 'echo', prompt: 'hi', idempotency_key: 'k' }), 'EINVAL', "missing field 'max_cost'");
    await expectCode(submit(ns, { model: 'echo', prompt: 'hi', idempotency_key: 'k', max_cost: 101 }), 'EDQUOT', 'max_cost_per_job (100)');
    await submit(ns, { model: 'echo', prompt: 'hi', idempotency_key: 'k', max_cost: 100 });
    await expectCode(writeAll(ns, '/compute/policy', '{"prefer":"cheap"}', admin), 'EINVAL', "field 'prefer'");
    await expectCode(writeAll(ns, '/compute/policy', '{"bogus":1}', admin), 'EINVAL', "unknown field 'bogus'");
    await expectCode(writeAll(ns, '/compute/policy', 'not json', admin), 'EINVAL', 'malformed JSON');
    expect(await readJson(ns, '/compute/policy')).toMatchObject({ max_cost_per_job: 100 });
    await engine.drain();
  });

  it('default_model and default_max_cost fill in a request; per-tick and per-day caps bound /compute', async () => {
    const { ns, engine } = setupCompute({ policy: { default_model: 'echo' } });
    const job = await submit(ns, { prompt: 'no model named' });
    await waitStatus(ns, job.job_id);
    expect(await readJson(ns, job.paths.result)).toMatchObject({ model: 'echo' });
    await writeJson(ns, '/compute/policy', { default_model: 'echo', default_max_cost: 40, max_cost_per_tick: 100 }, admin);
    const a = await submit(ns, { prompt: 'x', options: { chunk_delay_ms: 300 } });
    expect((await readJson(ns, a.paths.status)).reserved).toBe(40);
    await submit(ns, { prompt: 'y', options: { chunk_delay_ms: 300 } });
    await expectCode(submit(ns, { prompt: 'z' }), 'EDQUOT', 'service:compute tick window has 8 micro-USD left of 100');
    const usage = await readJson<Usage>(ns, '/compute/usage');
    expect(usage.compute.tick).toMatchObject({ limit: 100, reserved: 80 });
    expect(usage.tick.limit).toBeNull();
    engine.ledger.resetTick(AGENT);
    await submit(ns, { prompt: 'next tick' });
    await engine.drain();
  });

  it('the policy survives a restart', async () => {
    const dir = tempDir();
    const one = setupCompute({ dir });
    await writeJson(one.ns, '/compute/policy', { blocked_models: ['echo'] }, admin);
    const storage = Storage.open(dir, { migrations: serverMigrations() });
    const two = setupCompute({ storage });
    await expectCode(submit(two.ns, { model: 'echo', prompt: 'hi' }), 'EACCES', 'blocked');
    await two.engine.close();
    storage.close();
  });
});

describe('/compute stream file', () => {
  it('a reader that opens the stream before output arrives blocks until it comes, and ends at the end', async () => {
    const { ns } = setupCompute();
    const job = await submit(ns, { model: 'echo', prompt: 'w1 w2 w3', options: { chunk_delay_ms: 50 } });
    const h = await ns.open(job.paths.stream, { read: true }, user);
    const first = text(await h.read(65536, 0));
    expect(JSON.parse(first.split('\n')[0]!)).toMatchObject({ delta: { text: 'w1 ' } });
    let rest = '';
    for (;;) {
      const b = await h.read(65536, 0);
      if (b.length === 0) break;
      rest += text(b);
    }
    await h.close();
    expect(rest.trim().split('\n').map((l) => JSON.parse(l).finish_reason)).toEqual([null, null, 'stop']);
  });
});
