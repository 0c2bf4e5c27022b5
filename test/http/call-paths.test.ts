/**
 * Paths in call answers are valid where the call was made, over a real loopback socket: a job or a
 * session started through the global view (`/agents/<id>/compute/new`, an admin token) names its files
 * under `/agents/<id>/`, one started through the agent's own view (an agent token) names them as that
 * view does; each named path is then read with the same token. /containers runs on the real engine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { BUSYBOX, removeLabelled, requireEngine } from '../containers/engine.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { serveAgent9, type Served } from './served.js';

let s: Served;
let provider: DockerProvider;
let bobToken: string;

beforeAll(async () => {
  provider = await requireEngine();
  s = await serveAgent9();
  bobToken = await s.agentWithToken('bob');
});

afterAll(async () => {
  const instance = s?.a9.containers?.instanceId;
  await s?.close();
  if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  cleanup();
});

type Answer = { paths: Record<string, string> } & Record<string, unknown>;

/**
 * Every path of an answer exists for the caller's own token: HEAD answers 200, or 429 EAGAIN for a
 * result that is not ready yet (never 404).
 */
async function reachable(answer: Answer, token?: string): Promise<void> {
  for (const [name, path] of Object.entries(answer.paths)) {
    const res = await s.call(path, { method: 'HEAD', ...(token ? { token } : {}) });
    if (res.status === 429) expect(res.headers.get('x-agent9-error'), `${name}: ${path}`).toBe('EAGAIN');
    else expect(res.status, `${name}: ${path}`).toBe(200);
  }
}

describe('paths in call answers', () => {
  it('a compute job started through /agents/bob/compute/new names /agents/bob/compute/jobs/<id>/...', async () => {
    const job = await s.ok<Answer>('/agents/bob/compute/new', { method: 'POST', body: JSON.stringify({ model: 'echo', prompt: 'hello' }) });
    const id = job['job_id'] as string;
    expect(job.paths).toEqual({
      status: `/agents/bob/compute/jobs/${id}/status`,
      result: `/agents/bob/compute/jobs/${id}/result`,
      stream: `/agents/bob/compute/jobs/${id}/stream`,
      ctl: `/agents/bob/compute/jobs/${id}/ctl`,
    });
    await reachable(job);
    // The stream of the named path ends with the job; its result is then there.
    await (await s.call(job.paths['stream']!)).text();
    expect(await s.ok(job.paths['result']!)).toMatchObject({ output: { text: 'hello' } });
  });

  it("the same call through bob's own view (an agent token) names /compute/jobs/<id>/...", async () => {
    const job = await s.ok<Answer>('/compute/new', { method: 'POST', body: JSON.stringify({ model: 'echo', prompt: 'mine' }), token: bobToken });
    expect(job.paths['result']).toBe(`/compute/jobs/${job['job_id'] as string}/result`);
    await reachable(job, bobToken);
    // A repeated idempotency key answers the first job, named where this call was made.
    const req = JSON.stringify({ model: 'echo', prompt: 'once', idempotency_key: 'k1' });
    const first = await s.ok<Answer>('/compute/new', { method: 'POST', body: req, token: bobToken });
    const again = await s.ok<Answer>('/agents/bob/compute/new', { method: 'POST', body: req });
    expect(again['replayed']).toBe(true);
    expect(again.paths['status']).toBe(`/agents/bob${first.paths['status']!}`);
  });

  it('a goal made through goals/new is named where the call was made', async () => {
    const global = await s.ok<{ id: string; path: string }>('/agents/bob/goals/new', { method: 'POST', body: JSON.stringify({ description: 'from admin' }) });
    expect(global.path).toBe(`/agents/bob/goals/${global.id}.json`);
    expect(await s.ok(global.path)).toMatchObject({ description: 'from admin' });
    const own = await s.ok<{ id: string; path: string }>('/goals/new', { method: 'POST', body: JSON.stringify({ description: 'from bob' }), token: bobToken });
    expect(own.path).toBe(`/goals/${own.id}.json`);
    expect(await s.ok(own.path, { token: bobToken })).toMatchObject({ description: 'from bob' });
  });

  it('a container session and an exec in it name their files where the call was made', async () => {
    const session = await s.ok<Answer>('/agents/bob/containers/new', { method: 'POST', body: JSON.stringify({ image: BUSYBOX, kind: 'interactive' }) });
    const sid = session['session_id'] as string;
    expect(session.paths['exec']).toBe(`/agents/bob/containers/sessions/${sid}/exec`);
    expect(Object.values(session.paths).every((p) => p.startsWith(`/agents/bob/containers/sessions/${sid}/`))).toBe(true);
    await reachable(session);
    const exec = await s.ok<Answer>(`/agents/bob/containers/sessions/${sid}/exec/new`, { method: 'POST', body: JSON.stringify({ command: 'echo hi' }) });
    expect(exec.paths['stdout']).toBe(`/agents/bob/containers/sessions/${sid}/exec/${exec['exec_id'] as string}/stdout`);
    await reachable(exec);
    // An exec's stdout is the process's own bytes, not JSON lines.
    const stdout = await s.call(exec.paths['stdout']!);
    expect(stdout.headers.get('content-type')).toBe('application/octet-stream');
    expect(await stdout.text()).toBe('hi\n');
    const own = await s.ok<Answer>(`/containers/sessions/${sid}/exec/new`, { method: 'POST', body: JSON.stringify({ command: 'echo mine' }), token: bobToken });
    expect(own.paths['result']).toBe(`/containers/sessions/${sid}/exec/${own['exec_id'] as string}/result`);
    await reachable(own, bobToken);
    await s.call(`${session.paths['ctl']!}?append=1`, { method: 'POST', body: 'kill' });
  });
});
