/** /containers in the server: every agent has its own, the global view nests it, deleting an agent ends its sessions. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collect, expectCode, tempDir } from '../helpers.js';
import { createAgent, files, openServer, waitFor } from '../runtime/support.js';
import { BUSYBOX, removeLabelled, requireEngine } from './engine.js';

let provider: DockerProvider;
const instances: string[] = [];

beforeAll(async () => {
  provider = await requireEngine();
});

afterAll(async () => {
  for (const instance of instances) await removeLabelled(provider, { 'agent9.instance': instance });
});

describe('/containers in Agent9', () => {
  it('gives each agent its own /containers in the global and the agent-local view', async () => {
    const a9 = await openServer({ scheduler: false });
    instances.push(a9.containers!.instanceId);
    await createAgent(a9, { name: 'bob', program: 'echo' });
    await createAgent(a9, { name: 'carol', program: 'echo' });
    const g = files(a9.namespace);
    expect(await g.read('/agents/bob/mounts')).toContain('/containers containers rw\n');

    const result = JSON.parse(await g.call('/agents/bob/containers/new', JSON.stringify({ image: BUSYBOX, commands: ['echo hi'], wait: true })));
    expect(result).toMatchObject({ status: 'complete', exit_code: 0, stdout: 'hi\n' });
    const sid = result.session_id as string;

    // The same session seen by the agent itself at /containers; another agent does not see it.
    const local = files(await a9.agentNamespace('bob'), { principal: { id: 'agent:bob', admin: false, agentId: 'bob' } });
    expect(await local.list('/containers/sessions')).toEqual([sid]);
    expect(await local.json(`/containers/sessions/${sid}/status`)).toMatchObject({ status: 'complete' });
    await expectCode(g.read(`/agents/carol/containers/sessions/${sid}/status`), 'ENOENT', sid);
    await expectCode(local.write('/containers/policy', '{}'), 'EACCES', 'admin');

    // Watching through the global view sees the output under the agent's path.
    const events = await collect(a9.namespace.watch(`/agents/bob/containers/sessions/${sid}/output`, 0, { principal: { id: 'admin', admin: true } }), 5, 3000);
    expect(events.map((e) => [e.type, e.path])).toEqual([
      ['data', `/agents/bob/containers/sessions/${sid}/output`],
      ['end', `/agents/bob/containers/sessions/${sid}/output`],
    ]);
    // The session was paid from the agent's budget, as /status shows.
    const status = await g.json<{ budget: { day: { spent: number } } }>('/agents/bob/status');
    expect(status.budget.day.spent).toBe(result.cost);
    expect(result.cost).toBeGreaterThan(0);
  });

  it('ends the sessions of a deleted agent and removes their containers', async () => {
    const a9 = await openServer({ scheduler: false });
    instances.push(a9.containers!.instanceId);
    await createAgent(a9, { name: 'dave', program: 'echo' });
    const g = files(a9.namespace);
    await g.write('/agents/dave/containers/policy', '{"max_concurrent": 1}');
    const answer = JSON.parse(await g.call('/agents/dave/containers/new', JSON.stringify({ image: BUSYBOX, kind: 'interactive', idempotency_key: 'k' })));
    await a9.containers!.containerOf('dave', answer.session_id, '/');
    expect((await provider.list({ 'agent9.session': answer.session_id })).length).toBe(1);
    await g.remove('/agents/dave', true);
    await waitFor(async () => (await provider.list({ 'agent9.session': answer.session_id })).length === 0, 10_000, 'the container to go');
    expect(a9.containers!.sessions.ids('dave')).toEqual([]);
    // A new agent with the same name starts clean: no sessions, the default policy, no idempotency keys.
    await createAgent(a9, { name: 'dave', program: 'echo' });
    expect(await g.list('/agents/dave/containers/sessions')).toEqual([]);
    expect(await g.json('/agents/dave/containers/policy')).toMatchObject({ max_concurrent: 8 });
    const again = JSON.parse(await g.call('/agents/dave/containers/new', JSON.stringify({ image: BUSYBOX, kind: 'interactive', idempotency_key: 'k' })));
    expect(again.session_id).not.toBe(answer.session_id);
    expect(again.replayed).toBeUndefined();
    await g.append(`/agents/dave/containers/sessions/${again.session_id}/ctl`, 'kill');
  });

  it('takes its engine and default policy from config.json', async () => {
    const home = tempDir();
    writeFileSync(join(home, 'config.json'), JSON.stringify({ containers: { docker: { socket: '/nonexistent/docker.sock' }, policy: { max_concurrent: 3 } } }));
    const a9 = await openServer({ home, scheduler: false });
    await createAgent(a9, { name: 'frank', program: 'echo' });
    const g = files(a9.namespace);
    expect(await g.json('/agents/frank/containers/providers/docker/health')).toMatchObject({ status: 'unavailable' });
    expect(await g.json('/agents/frank/containers/policy')).toMatchObject({ max_concurrent: 3 });
    await expectCode(g.call('/agents/frank/containers/new', '{"commands": ["true"]}'), 'EREMOTEIO', '/nonexistent/docker.sock');

    const bad = tempDir();
    writeFileSync(join(bad, 'config.json'), JSON.stringify({ containers: { dockr: {} } }));
    await expectCode(openServer({ home: bad, scheduler: false }), 'EINVAL', "'dockr'");
  });

  it('can be turned off', async () => {
    const a9 = await openServer({ scheduler: false, containers: false });
    await createAgent(a9, { name: 'erin', program: 'echo' });
    expect(await files(a9.namespace).list('/agents/erin')).not.toContain('containers');
  });
});
