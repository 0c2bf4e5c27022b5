/** Agent management through files: /agents/new, listing, delete, errors, /runtime/status, the demo agent. */
import { describe, expect, it } from 'vitest';
import { createAgent, files, openServer } from './support.js';
import { expectCode, tempDir } from '../helpers.js';
import { createDemoAgent } from '../../src/server/agent9.js';
import { ReadWrite } from '../../src/mounts/access.js';

describe('agents through /agents', () => {
  it('new creates an agent and answers its status; ls /agents lists it; EEXIST on a taken name', async () => {
    const a9 = await openServer({ scheduler: false });
    const f = files(a9.namespace);
    expect(await f.list('/agents')).toEqual(['new', 'import']);
    const status = await createAgent(a9, { name: 'bob', program: { type: 'echo' }, env: { GREETING: 'hi' } });
    expect(status).toMatchObject({ id: 'bob', state: 'creating', program: 'echo', tick_count: 0, queue_depth: 0 });
    expect(await f.list('/agents')).toEqual(['new', 'import', 'bob']);
    expect((await f.stat('/agents/bob')).type).toBe('dir');
    expect((await f.stat('/agents/new')).kind).toBe('call');
    const e = await expectCode(f.call('/agents/new', JSON.stringify({ name: 'bob', program: 'echo' })), 'EEXIST', '/agents/new');
    expect(e.message).toContain("'bob'");
    expect(await f.read('/mounts')).toMatch(/^\/agents agents rw$/m);
  });

  it('bad specs are EINVAL naming the problem, and create nothing', async () => {
    const a9 = await openServer({ scheduler: false });
    const f = files(a9.namespace);
    const bad = async (spec: unknown, part: string) => {
      const e = await expectCode(f.call('/agents/new', typeof spec === 'string' ? spec : JSON.stringify(spec)), 'EINVAL', '/agents/new');
      expect(e.message).toContain(part);
    };
    await bad({ name: 'Bob', program: 'echo' }, 'invalid agent name');
    await bad({ name: 'new', program: 'echo' }, 'reserved');
    await bad({ name: 'import', program: 'echo' }, 'reserved');
    await bad({ name: '-x', program: 'echo' }, 'invalid agent name');
    await bad({ name: 'a'.repeat(64), program: 'echo' }, 'invalid agent name');
    await bad({ name: 'bob' }, 'program');
    await bad({ name: 'bob', program: 'cobol' }, "unknown type 'cobol'");
    await bad({ name: 'bob', program: { type: 'exec' } }, 'command');
    await bad({ name: 'bob', program: { type: 'echo', extra: 1 } }, 'echo takes no options');
    await bad({ name: 'bob', program: 'echo', limits: { batch_size: -1 } }, 'limits.batch_size');
    await bad({ name: 'bob', program: 'echo', schedule: { interval_ms: 5 } }, 'schedule.interval_ms');
    await bad({ name: 'bob', program: 'echo', inbox: { overflow: 'explode' } }, 'inbox.overflow');
    await bad({ name: 'bob', program: 'echo', env: { 'BAD-NAME': 'x' } }, 'env');
    await bad({ name: 'bob', program: 'echo', colour: 'red' }, "'colour'");
    await bad({ name: 'bob', program: 'echo', goals: [{ priority: 1 }] }, 'goals[0]');
    await bad('{"name": ', 'malformed JSON');
    await bad('', 'write an agent spec');
    await expectCode(f.read('/agents/new'), 'EINVAL', 'write an agent spec');
    expect(await f.list('/agents')).toEqual(['new', 'import']);
  });

  it('unknown agents are ENOENT naming the path; agents cannot be made with mkdir or renamed', async () => {
    const a9 = await openServer({ scheduler: false });
    const f = files(a9.namespace);
    await expectCode(f.read('/agents/ghost/status'), 'ENOENT', '/agents/ghost');
    await expectCode(f.stat('/agents/ghost'), 'ENOENT', '/agents/ghost');
    await expectCode(f.list('/agents/ghost'), 'ENOENT');
    await expectCode(f.remove('/agents/ghost', true), 'ENOENT');
    await expectCode(f.write('/agents/ghost/inbox', 'hi'), 'ENOENT');
    const cx = { principal: { id: 'admin', admin: true } };
    await expectCode(a9.namespace.mkdir('/agents/ghost', 0o755, cx), 'EPERM', '/agents/ghost');
    await createAgent(a9, { name: 'bob', program: 'echo' });
    await createAgent(a9, { name: 'ann', program: 'echo' });
    await expectCode(a9.namespace.mkdir('/agents/bob', 0o755, cx), 'EEXIST');
    await expectCode(a9.namespace.rename('/agents/bob', '/agents/robert', cx), 'EPERM');
    await f.write('/agents/bob/memory/x', 'x');
    await expectCode(a9.namespace.rename('/agents/bob/memory/x', '/agents/ann/memory/x', cx), 'EXDEV');
    await expectCode(f.remove('/agents/new'), 'EBUSY');
  });

  it('removing /agents/<id> deletes the agent and everything it had; the name can be used again', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    await f.write('/agents/bob/inbox', 'x');
    await f.write('/agents/bob/memory/note', 'data');
    await f.write('/agents/bob/goals/g.json', '{"description":"d"}');
    const oldKey = await f.read('/agents/bob/identity/pubkey');
    await f.remove('/agents/bob', true);
    expect(await f.list('/agents')).toEqual(['new', 'import']);
    const db = a9.storage.db;
    for (const table of ['inbox', 'goals', 'agent_keys', 'agent_state', 'seen', 'outbox', 'deadletter']) {
      expect(db.prepare(`SELECT count(*) FROM ${table} WHERE agent_id = 'bob'`).pluck().get(), table).toBe(0);
    }
    expect(db.prepare("SELECT count(*) FROM data_nodes WHERE tree = 'memory:bob'").pluck().get()).toBe(0);
    await createAgent(a9, { name: 'bob', program: 'echo' });
    expect(await f.json('/agents/bob/inbox')).toEqual([]);
    expect(await f.list('/agents/bob/memory')).toEqual([]);
    expect(await f.read('/agents/bob/identity/pubkey')).not.toBe(oldKey);
  });

  it('deleting an agent waits for its running tick', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: { type: 'exec', command: 'sleep 0.3; echo done' } });
    const ticking = a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    await new Promise((r) => setTimeout(r, 50));
    await files(a9.namespace).remove('/agents/bob', true);
    const report = await ticking;
    expect(report.ok).toBe(true);
    expect(a9.runtime.agents.has('bob')).toBe(false);
  });

  it('/runtime/status counts agents by state; the demo agent is created once', async () => {
    const a9 = await openServer({ scheduler: false, home: tempDir() });
    const first = createDemoAgent(a9);
    expect(first).toMatchObject({ id: 'demo', program: 'echo' });
    expect(createDemoAgent(a9).pubkey).toBe(first.pubkey);
    await createAgent(a9, { name: 'x', program: 'echo' });
    await files(a9.namespace).write('/agents/x/ctl', 'stop');
    const s = await files(a9.namespace).json<{ agents: { total: number; by_state: Record<string, number> } }>('/runtime/status');
    expect(s.agents).toEqual({ total: 2, by_state: { creating: 1, terminated: 1 } });
    await expectCode(files(a9.namespace).write('/runtime/status', '{}'), 'EACCES');
  });
});

describe('agent views', () => {
  it('are built on access and only the most recent are kept; a mount added later reaches every agent', async () => {
    const a9 = await openServer({ scheduler: false, namespaceCache: 3 });
    for (let i = 0; i < 6; i++) await createAgent(a9, { name: `a${i}`, program: 'echo' });
    const f = files(a9.namespace);
    for (let i = 0; i < 6; i++) await f.read(`/agents/a${i}/status`);
    const s = await f.json<{ namespaces_cached: number }>('/runtime/status');
    expect(s.namespaces_cached).toBe(3);
    // Evicted views are rebuilt transparently.
    expect((await f.json<{ id: string }>('/agents/a0/status')).id).toBe('a0');
    a9.addAgentMount({
      path: '/scratch',
      build: ({ rt, id }) => rt.storage.dataTree(`scratch:${id}`, { scope: id, prefix: '/scratch' }),
      access: ReadWrite,
    });
    await f.write('/agents/a1/scratch/x', 'works');
    expect(await f.read('/agents/a1/scratch/x')).toBe('works');
    expect(await f.read('/agents/a5/mounts')).toMatch(/^\/scratch data rw$/m);
  });
});
