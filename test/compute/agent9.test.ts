/** /compute inside the server assembly: every agent's namespace has it, budgets are the server's. */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readAll } from '../../src/fs/ops.js';
import { admin, expectCode, tempDir, user } from '../helpers.js';
import { createAgent, files, openServer, waitFor } from '../runtime/support.js';

interface Window {
  limit: number | null;
  reserved: number;
  spent: number;
  remaining: number | null;
}

describe('/compute in Agent9', () => {
  it('every agent has /compute; jobs, status budget and the trace agree', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    expect(await f.read('/agents/bob/mounts')).toMatch(/^\/compute compute rw$/m);
    a9.budgets.setLimits('bob', { tick: 1000, day: 5000 });
    const job = JSON.parse(await f.call('/agents/bob/compute/new', '{"model":"echo","prompt":"hello world","max_cost":100}')) as { job_id: string };
    await waitFor(async () => (await f.json<{ status: string }>(`/agents/bob/compute/jobs/${job.job_id}/status`)).status === 'complete');
    expect(await f.json(`/agents/bob/compute/jobs/${job.job_id}/result`)).toMatchObject({ output: { text: 'hello world' }, cost: 10 });
    const status = await f.json<{ budget: { tick: Window; day: Window } }>('/agents/bob/status');
    expect(status.budget.day).toEqual({ limit: 5000, reserved: 0, spent: 10, remaining: 4990 });
    expect((await f.json<{ day: Window }>('/agents/bob/compute/usage')).day).toEqual(status.budget.day);
    const trace = await f.read('/agents/bob/logs/recent');
    expect(trace).toContain('compute_submit');
    expect(trace).toContain('compute_complete');
  });

  it('a tick starts a new tick window for /compute too', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    a9.budgets.setLimits('bob', { tick: 30 });
    const slow = '{"model":"echo","prompt":"x y","max_cost":30,"options":{"chunk_delay_ms":300}}';
    await f.call('/agents/bob/compute/new', slow);
    await expectCode(f.call('/agents/bob/compute/new', '{"model":"echo","prompt":"x","max_cost":6}'), 'EDQUOT', 'agent tick window has 0');
    await f.append('/agents/bob/ctl', 'tick');
    // The job of the last tick still holds its reservation there; this tick has its whole limit.
    expect((await f.json<{ tick: Window }>('/agents/bob/compute/usage')).tick).toEqual({ limit: 30, reserved: 0, spent: 0, remaining: 30 });
    await f.call('/agents/bob/compute/new', slow);
    expect((await f.json<{ tick: Window }>('/agents/bob/compute/usage')).tick).toEqual({ limit: 30, reserved: 30, spent: 0, remaining: 0 });
  });

  it("the agent's own namespace: an agent reads its policy but cannot write it; the admin can", async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const own = await a9.agentNamespace('bob');
    const asBob = { principal: { id: 'agent:bob', admin: false, agentId: 'bob' } };
    expect(JSON.parse(new TextDecoder().decode(await readAll(own, '/compute/policy', asBob)))).toMatchObject({ prefer: 'balanced' });
    await expectCode(files(own, asBob).write('/compute/policy', '{"blocked_models":[]}'), 'EACCES', '/compute/policy');
    await files(a9.namespace, admin).write('/agents/bob/compute/policy', '{"blocked_models":["echo"]}');
    await expectCode(files(own, asBob).call('/compute/new', '{"model":"echo","prompt":"x"}'), 'EACCES', 'blocked');
    await expectCode(files(a9.namespace, user).call('/agents/nobody/compute/new', '{"model":"echo","prompt":"x"}'), 'ENOENT');
  });

  it('deleting an agent drops its jobs, policy, keys and budget: a new agent of the same name starts clean', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    a9.budgets.setLimits('bob', { day: 100 });
    await f.write('/agents/bob/compute/policy', '{"blocked_models":["gpt-*"]}');
    const slow = JSON.parse(await f.call('/agents/bob/compute/new', '{"model":"echo","prompt":"a b c","max_cost":50,"idempotency_key":"k","options":{"chunk_delay_ms":2000}}')) as {
      job_id: string;
    };
    await f.remove('/agents/bob', true);
    await waitFor(() => a9.compute!.jobs.ids('bob').length === 0);
    await createAgent(a9, { name: 'bob', program: 'echo' });
    expect(await f.list('/agents/bob/compute/jobs')).toEqual([]);
    expect(await f.json('/agents/bob/compute/policy')).toMatchObject({ blocked_models: [] });
    expect((await f.json<{ day: Window }>('/agents/bob/compute/usage')).day).toMatchObject({ limit: null, reserved: 0, spent: 0 });
    const again = JSON.parse(await f.call('/agents/bob/compute/new', '{"model":"echo","prompt":"a b c","max_cost":50,"idempotency_key":"k"}')) as { job_id: string; replayed?: boolean };
    expect(again.job_id).not.toBe(slow.job_id);
    expect(again.replayed).toBeUndefined();
  });

  it('config.json configures the providers and the default policy; a broken one stops the server with a clear error', async () => {
    const home = tempDir();
    writeFileSync(join(home, 'config.json'), JSON.stringify({ compute: { policy: { default_model: 'echo' }, providers: { 'local-echo': { type: 'local-echo' } } } }));
    const a9 = await openServer({ home, scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    expect(await files(a9.namespace).json('/agents/bob/compute/policy')).toMatchObject({ default_model: 'echo' });
    await a9.close();
    writeFileSync(join(home, 'config.json'), '{"compute":{"policy":{"prefer":"fastest"}}}');
    await expect(openServer({ home, scheduler: false })).rejects.toThrow(/config.json compute.policy: field 'prefer'/);
  });
});
