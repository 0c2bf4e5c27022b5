/** /status, /ctl, /goals, /memory, /outbox, /metrics, /config through the namespaces, with their errors. */
import { describe, expect, it } from 'vitest';
import { createAgent, files, openServer, trace, waitFor } from '../runtime/support.js';
import { expectCode, user } from '../helpers.js';
import { LIFECYCLE_STATES } from '../../src/runtime/spec.js';

type Status = Record<string, unknown> & { state: string; counters: Record<string, number> };

describe('/status', () => {
  it('test_env_status_read: /status is JSON naming the agent, with every field of the design', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const local = files(await a9.agentNamespace('bob'));
    const s = await local.json<Status>('/status');
    expect(s.id).toBe('bob');
    expect(s.name).toBe('bob');
    for (const k of ['pubkey', 'state', 'created_at', 'last_tick_at', 'last_tick_cause', 'tick_count', 'queue_depth']) expect(s).toHaveProperty(k);
    expect(LIFECYCLE_STATES).toContain(s.state);
    expect(s.state).toBe('creating');
    await local.write('/inbox', 'x');
    await a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    const after = await local.json<Status>('/status');
    expect(after).toMatchObject({ state: 'active', tick_count: 1, last_tick_cause: 'manual', queue_depth: 0 });
    expect(after.last_tick_at).toBeGreaterThanOrEqual(s.created_at as number);
    // Read-only for everyone.
    await expectCode(local.write('/status', '{}'), 'EACCES');
  });
});

describe('/ctl', () => {
  it('tick, hibernate, wake, stop, start move the real lifecycle; bad commands are EINVAL with the usage', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    const state = async () => (await f.json<Status>('/agents/bob/status')).state;
    await f.write('/agents/bob/ctl', 'tick');
    expect(await state()).toBe('active');
    await f.write('/agents/bob/ctl', 'hibernate');
    expect(await state()).toBe('dormant');
    await f.write('/agents/bob/ctl', 'wake');
    expect(await state()).toBe('active');
    await f.write('/agents/bob/ctl', 'stop');
    expect(await state()).toBe('terminated');
    await expectCode(f.write('/agents/bob/ctl', 'tick'), 'EPERM', '/agents/bob/ctl');
    // A stopped agent still takes mail.
    await f.write('/agents/bob/inbox', 'kept');
    await f.write('/agents/bob/ctl', 'start\ntick');
    expect(await state()).toBe('active');
    expect((await f.list('/agents/bob/outbox')).length).toBe(1);
    const e = await expectCode(f.write('/agents/bob/ctl', 'explode'), 'EINVAL', '/agents/bob/ctl');
    expect(e.message).toContain('tick [reason] | hibernate | wake | stop | start');
    await expectCode(f.write('/agents/bob/ctl', 'stop now'), 'EINVAL');
    // All lines are checked first: nothing ran.
    await expectCode(f.write('/agents/bob/ctl', 'stop\nbogus'), 'EINVAL');
    expect(await state()).toBe('active');
    // Admin only.
    await expectCode(files(a9.namespace, user).write('/agents/bob/ctl', 'stop'), 'EACCES');
    const changes = (await trace(a9, 'bob')).filter((x) => x['type'] === 'state_change').map((x) => `${x['from']}>${x['to']}`);
    expect(changes).toEqual(['creating>active', 'active>dormant', 'dormant>active', 'active>terminated', 'terminated>active']);
  });

  it('a failed tick fails the ctl write with the tick error', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: { type: 'exec', command: 'echo broken >&2; exit 3' } });
    const e = await expectCode(files(a9.namespace).write('/agents/bob/ctl', 'tick'), 'EIO', '/agents/bob/ctl');
    expect(e.message).toContain('tick 1 failed');
    expect(e.message).toContain('exit code 3');
    expect(e.message).toContain('broken');
  });

  it('after max_failures consecutive failed ticks the agent is failed; start makes it active again', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: { type: 'exec', command: 'exit 1' }, limits: { max_failures: 2 } });
    const f = files(a9.namespace);
    await expectCode(f.write('/agents/bob/ctl', 'tick'), 'EIO');
    await expectCode(f.write('/agents/bob/ctl', 'tick'), 'EIO');
    expect((await f.json<Status>('/agents/bob/status')).state).toBe('failed');
    await f.write('/agents/bob/config', JSON.stringify({ program: { type: 'exec', command: 'true' } }));
    await f.write('/agents/bob/ctl', 'start');
    expect((await f.json<Status>('/agents/bob/status')).state).toBe('creating');
    await f.write('/agents/bob/ctl', 'tick');
    expect((await f.json<Status>('/agents/bob/status')).state).toBe('active');
  });
});

describe('/goals', () => {
  it('CRUD with validation; new mints an id; rename; version guard', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo', goals: [{ description: 'initial', priority: 5 }] });
    const f = files(a9.namespace);
    expect(await f.list('/agents/bob/goals')).toEqual(['new', 'goal-1.json']);
    expect(await f.json('/agents/bob/goals/goal-1.json')).toEqual({ description: 'initial', priority: 5, status: 'pending' });
    await f.write('/agents/bob/goals/ship.json', JSON.stringify({ description: 'ship it', extra: { owner: 'me' } }));
    expect(await f.json('/agents/bob/goals/ship.json')).toEqual({ description: 'ship it', priority: 0, status: 'pending', extra: { owner: 'me' } });
    const v1 = (await f.stat('/agents/bob/goals/ship.json')).version;
    await f.write('/agents/bob/goals/ship.json', JSON.stringify({ description: 'ship it', status: 'done' }));
    expect((await f.stat('/agents/bob/goals/ship.json')).version).toBe(v1 + 1);
    let e = await expectCode(f.write('/agents/bob/goals/bad.json', JSON.stringify({ priority: 1 })), 'EINVAL', '/agents/bob/goals/bad.json');
    expect(e.message).toContain('description');
    e = await expectCode(f.write('/agents/bob/goals/bad.json', JSON.stringify({ description: 'x', status: 'maybe' })), 'EINVAL');
    expect(e.message).toContain('status');
    await expectCode(f.write('/agents/bob/goals/bad.json', '{oops'), 'EINVAL');
    await expectCode(f.stat('/agents/bob/goals/bad.json'), 'ENOENT');
    const created = JSON.parse(await f.call('/agents/bob/goals/new', JSON.stringify({ description: 'minted' }))) as { id: string; path: string };
    // Named where the call was made: the global view, where bob's goals are under /agents/bob.
    expect(created.path).toBe(`/agents/bob/goals/${created.id}.json`);
    expect((await f.json<{ description: string }>(created.path)).description).toBe('minted');
    await expectCode(f.call('/agents/bob/goals/new', JSON.stringify({ id: 'ship', description: 'dup' })), 'EEXIST');
    await a9.namespace.rename('/agents/bob/goals/ship.json', '/agents/bob/goals/shipped.json', { principal: { id: 'admin', admin: true } });
    await f.remove('/agents/bob/goals/goal-1.json');
    expect((await f.list('/agents/bob/goals')).sort()).toEqual(['new', `${created.id}.json`, 'shipped.json'].sort());
    await expectCode(f.remove('/agents/bob/goals/goal-1.json'), 'ENOENT');
    await expectCode(a9.namespace.writeFile('/agents/bob/goals/shipped.json', new TextEncoder().encode('{"description":"x"}'), { ifVersion: 99 }, { principal: { id: 'admin', admin: true } }), 'ESTALE');
  });
});

describe('/memory', () => {
  it('is a durable data tree: write, append, mkdir, list, survives restart', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    await a9.namespace.mkdir('/agents/bob/memory/notes', 0o755, { principal: { id: 'admin', admin: true } });
    await f.write('/agents/bob/memory/notes/today.md', '# today\n');
    await f.append('/agents/bob/memory/notes/today.md', '- wrote tests\n');
    expect(await f.read('/agents/bob/memory/notes/today.md')).toBe('# today\n- wrote tests\n');
    expect(await f.list('/agents/bob/memory')).toEqual(['notes']);
    const local = files(await a9.agentNamespace('bob'));
    expect(await local.read('/memory/notes/today.md')).toBe('# today\n- wrote tests\n');
  });
});

describe('/outbox, /metrics, /config', () => {
  it('outbox is read-only and lists replies; metrics count; config edits keep all state', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo', env: { A: '1' } });
    const f = files(a9.namespace);
    await f.write('/agents/bob/inbox', 'one');
    await f.write('/agents/bob/ctl', 'tick');
    const [name] = await f.list('/agents/bob/outbox');
    expect(await f.json(`/agents/bob/outbox/${name}`)).toMatchObject({ from: 'bob', to: 'admin', payload: { text: 'one' } });
    await expectCode(f.write(`/agents/bob/outbox/${name}`, 'x'), 'EACCES');
    expect(await f.json('/agents/bob/metrics/ticks')).toMatchObject({ count: 1, failed: 0 });
    expect(await f.json('/agents/bob/metrics/queue')).toMatchObject({ depth: 0, max_depth: 1000, enqueued: 1, delivered: 1 });
    expect(await f.json('/agents/bob/metrics/outbox')).toEqual({ messages_out: 1 });

    await f.write('/agents/bob/inbox', 'pending');
    await f.write('/agents/bob/goals/g.json', '{"description":"keep me"}');
    await f.write('/agents/bob/memory/m', 'kept');
    const before = await f.json<{ name: string; env: Record<string, string>; limits: { batch_size: number } }>('/agents/bob/config');
    expect(before).toMatchObject({ name: 'bob', program: { type: 'echo' }, env: { A: '1' }, schedule: { on_message: true, interval_ms: null } });
    await f.write('/agents/bob/config', JSON.stringify({ env: { A: '2', B: 'x' }, limits: { batch_size: 3 } }));
    const after = await f.json<typeof before>('/agents/bob/config');
    expect(after.env).toEqual({ A: '2', B: 'x' });
    expect(after.limits.batch_size).toBe(3);
    // Everything else is as it was.
    expect((await f.json<unknown[]>('/agents/bob/inbox')).length).toBe(1);
    expect(await f.read('/agents/bob/memory/m')).toBe('kept');
    expect((await f.json<{ description: string }>('/agents/bob/goals/g.json')).description).toBe('keep me');
    expect(JSON.parse(a9.runtime.store.getState('bob')!.data)).toEqual({ echoed: 1 });
    expect((await f.json<Status>('/agents/bob/status')).tick_count).toBe(1);
    // Bad edits change nothing.
    await expectCode(f.write('/agents/bob/config', JSON.stringify({ name: 'robert' })), 'EINVAL', 'name');
    await expectCode(f.write('/agents/bob/config', JSON.stringify({ limits: { batch_size: 0 } })), 'EINVAL', 'batch_size');
    await expectCode(f.write('/agents/bob/config', JSON.stringify({ program: 'python' })), 'EINVAL', 'unknown type');
    await expectCode(files(a9.namespace, user).write('/agents/bob/config', '{}'), 'EACCES');
    expect((await f.json<typeof before>('/agents/bob/config')).limits.batch_size).toBe(3);
  });

  it('the agent sees its own namespace at / with the same files', async () => {
    const a9 = await openServer();
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const local = files(await a9.agentNamespace('bob'), { principal: { id: 'agent:bob', admin: false, agentId: 'bob' } });
    expect((await local.list('/')).sort()).toEqual(
      ['budget', 'compute', 'config', 'containers', 'ctl', 'deadletter', 'export', 'goals', 'identity', 'inbox', 'inbox.d', 'inbox.policy', 'logs', 'memory', 'metrics', 'mounts', 'nostr', 'outbox', 'status'].sort(),
    );
    await local.write('/memory/self.txt', 'mine');
    await expectCode(local.write('/ctl', 'stop'), 'EACCES');
    await local.write('/inbox', 'note to self');
    await waitFor(async () => (await local.list('/outbox')).length === 1);
    const [reply] = await local.list('/outbox');
    expect(await local.json(`/outbox/${reply}`)).toMatchObject({ to: 'bob', payload: { text: 'note to self' } });
  });
});

describe('budget in /status', () => {
  it('shows the ledger usage per tick and day; every tick starts a new tick window', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    type Usage = { limit: number | null; reserved: number; spent: number; remaining: number | null };
    const budget = async () => (await f.json<{ budget: { tick: Usage; day: Usage } }>('/agents/bob/status')).budget;
    expect(await budget()).toEqual({
      tick: { limit: null, reserved: 0, spent: 0, remaining: null },
      day: { limit: null, reserved: 0, spent: 0, remaining: null },
    });
    a9.budgets.setLimits('bob', { tick: 100, day: 1000 });
    await f.write('/agents/bob/ctl', 'tick');
    const tickBefore = a9.budgets.tickInfo('bob').tick;
    const r = a9.budgets.reserve('bob', 30);
    a9.budgets.reconcile(r, 20);
    expect(await budget()).toEqual({
      tick: { limit: 100, reserved: 0, spent: 20, remaining: 80 },
      day: { limit: 1000, reserved: 0, spent: 20, remaining: 980 },
    });
    expect(await f.json('/agents/bob/metrics/spend')).toEqual(await budget());
    await f.write('/agents/bob/ctl', 'tick');
    expect(a9.budgets.tickInfo('bob').tick).toBe(tickBefore + 1);
    expect(await budget()).toEqual({
      tick: { limit: 100, reserved: 0, spent: 0, remaining: 100 },
      day: { limit: 1000, reserved: 0, spent: 20, remaining: 980 },
    });
  });
});
