/** The logic of `agentctl compute` over a namespace in process (the CLI runs it over the HTTP client). */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cancelJob, computeBase, listJobs, runPrompt, type Chunk } from '../../src/mcp/compute-client.js';
import { Namespace } from '../../src/fs/namespace.js';
import { FsError } from '../../src/fs/errors.js';
import { LocalEchoProvider } from '../../src/services/compute/index.js';
import type { ComputeProvider } from '../../src/services/compute/types.js';
import { cleanup, expectCode, user } from '../helpers.js';
import { closeEngines, setupCompute, submit, waitStatus } from './setup.js';

afterEach(closeEngines);
afterAll(cleanup);

describe('compute client', () => {
  it('runPrompt streams the chunks as they come and returns the result', async () => {
    const { ns } = setupCompute();
    const chunks: Chunk[] = [];
    const out = await runPrompt(ns, '/compute', { model: 'echo', prompt: 'one two three' }, user, (c) => chunks.push(c));
    expect(chunks.map((c) => c.delta.text).join('')).toBe('one two three');
    expect(chunks.at(-1)!.finish_reason).toBe('stop');
    expect(out.result).toMatchObject({ job_id: out.jobId, output: { text: 'one two three' } });
  });

  it('a failed job throws its code and message; a refused submit its error', async () => {
    const failing = {
      ...new LocalEchoProvider(),
      id: 'failing',
      info: () => ({ ...new LocalEchoProvider().info(), id: 'failing', models: [{ id: 'boom' }] }),
      supports: (m: string) => m === 'boom',
      health: new LocalEchoProvider().health,
      run: async () => {
        throw new FsError('EREMOTEIO', '/', 'provider failing: model exploded');
      },
    } satisfies ComputeProvider;
    const { ns } = setupCompute({ providers: [new LocalEchoProvider(), failing] });
    const seen: Chunk[] = [];
    const e = await expectCode(runPrompt(ns, '/compute', { model: 'boom', prompt: 'x', system: 'be careful' }, user, (c) => seen.push(c)), 'EREMOTEIO');
    expect(e.message).toContain('provider failing: model exploded');
    expect(seen.at(-1)).toMatchObject({ finish_reason: 'error' });
    await expectCode(runPrompt(ns, '/compute', { model: 'nope', prompt: 'x' }, user, () => undefined), 'EINVAL', 'no provider serves');
  });

  it('listJobs and cancelJob', async () => {
    const { ns } = setupCompute();
    const slow = await submit(ns, { model: 'echo', prompt: 'a b c', options: { chunk_delay_ms: 500 } });
    const fast = await submit(ns, { model: 'echo', prompt: 'quick' });
    await waitStatus(ns, fast.job_id);
    const cancelled = await cancelJob(ns, '/compute', slow.job_id, user);
    expect(cancelled).toMatchObject({ status: 'cancelled', error: { code: 'ECANCELED' } });
    const jobs = await listJobs(ns, '/compute', user);
    expect(jobs.map((j) => [j.job_id, j.status])).toEqual([
      [slow.job_id, 'cancelled'],
      [fast.job_id, 'complete'],
    ]);
    await expectCode(cancelJob(ns, '/compute', 'nope', user), 'ENOENT');
  });

  it('computeBase: a named agent, an agent namespace at the root, the only agent, or a clear error', async () => {
    const { ns } = setupCompute();
    expect(await computeBase(ns, 'bob', user)).toBe('/agents/bob/compute');
    expect(await computeBase(ns, undefined, user)).toBe('/compute');
    const global = new Namespace();
    global.mount('/agents/a', ns);
    expect(await computeBase(global, undefined, user)).toBe('/agents/a/compute');
    global.mount('/agents/b', ns);
    await expectCode(computeBase(global, undefined, user), 'EINVAL', 'name an agent with --agent (agents: a, b)');
  });
});
