/** /logs (trace stream, recent, trajectory, query) and watch semantics over the global and agent views. */
import { describe, expect, it } from 'vitest';
import { createAgent, files, openServer, watchN } from '../runtime/support.js';
import { admin, expectCode, text } from '../helpers.js';
import { readAll } from '../../src/fs/ops.js';

describe('/logs', () => {
  it('test_env_logs_watch: watch /logs/trace receives the trace events a tick emits', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const local = await a9.agentNamespace('bob');
    const watching = watchN(local, '/logs/trace', undefined, 3, 3000);
    await new Promise((r) => setTimeout(r, 50));
    await a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    const events = await watching;
    expect(events.map((e) => e.type)).toEqual(['data', 'data', 'data']);
    expect(events.map((e) => (e.data as { type: string }).type)).toEqual(['tick_start', 'trigger', 'trigger']);
    expect(events.every((e) => e.path === '/logs/trace')).toBe(true);
  });

  it('reading logs/trace is a stream of JSON lines that ends when the agent is deleted', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const reading = readAll(a9.namespace, '/agents/bob/logs/trace', admin).then(text);
    await new Promise((r) => setTimeout(r, 50));
    await a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    await files(a9.namespace).remove('/agents/bob', true);
    const lines = (await reading).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l['type'])).toEqual(['tick_start', 'trigger', 'trigger', 'state_change', 'tick_end']);
    for (const l of lines) {
      expect(typeof l['id']).toBe('number');
      expect(typeof l['time']).toBe('number');
    }
  });

  it('recent, trajectory and query read the retained trace back', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    for (let i = 0; i < 3; i++) await f.write('/agents/bob/ctl', `tick round ${i}`);
    const recent = await f.json<{ type: string; id: number }[]>('/agents/bob/logs/recent');
    const trajectory = (await f.read('/agents/bob/logs/trajectory')).trim().split('\n').map((l) => JSON.parse(l) as { id: number; time: number; type: string });
    expect(trajectory[0]!.type).toBe('created');
    expect(recent.map((r) => r.id)).toEqual(trajectory.map((t) => t.id));
    expect(trajectory.filter((t) => t.type === 'tick_end')).toHaveLength(3);
    const ends = (await f.call('/agents/bob/logs/query', JSON.stringify({ types: ['tick_end'] }))).trim().split('\n').map((l) => JSON.parse(l) as { tick: number; id: number });
    expect(ends.map((e) => e.tick)).toEqual([1, 2, 3]);
    const after = (await f.call('/agents/bob/logs/query', JSON.stringify({ after: ends[1]!.id }))).trim().split('\n');
    expect(after.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['tick_start', 'trigger', 'tick_end']);
    const t0 = trajectory[0]!.time;
    const iso = new Date(t0 - 1000).toISOString();
    expect((await f.call('/agents/bob/logs/query', JSON.stringify({ from: iso, limit: 2 }))).trim().split('\n')).toHaveLength(2);
    expect(await f.call('/agents/bob/logs/query', JSON.stringify({ to: t0 - 1 }))).toBe('');
    await expectCode(f.call('/agents/bob/logs/query', '{"from": "yesterday"}'), 'EINVAL', 'from');
    await expectCode(f.write('/agents/bob/logs/recent', '[]'), 'EACCES');
  });
});

describe('watch', () => {
  it('test_watch_semantics: replay after a cursor then live, no gap and no duplicate while writers race', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    await f.write('/agents/bob/inbox', 'first');
    const [base] = await watchN(a9.namespace, '/agents/bob/inbox', 0, 1);
    expect(base).toMatchObject({ type: 'modified', path: '/agents/bob/inbox' });
    const cursor = base!.id;
    // 20 writes before the watch starts (replayed), 20 while it runs (live), racing.
    for (let i = 0; i < 20; i++) await f.write('/agents/bob/inbox', `before ${i}`);
    const watching = watchN(a9.namespace, '/agents/bob', cursor, 40, 5000);
    await Promise.all(Array.from({ length: 20 }, (_, i) => f.write('/agents/bob/inbox', `during ${i}`)));
    const events = await watching;
    expect(events).toHaveLength(40);
    const ids = events.map((e) => e.id);
    expect(new Set(ids).size).toBe(40);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(ids[0]).toBeGreaterThan(cursor);
    expect(events.every((e) => e.path === '/agents/bob/inbox' && e.type === 'modified')).toBe(true);
    // Versions of the inbox increase with every change.
    const versions = events.map((e) => e.version!);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
  });

  it('watching a subtree sees the paths of the agent view; /agents sees agents come and go', async () => {
    const a9 = await openServer({ scheduler: false });
    const watchingAgents = watchN(a9.namespace, '/agents', undefined, 3, 3000);
    await new Promise((r) => setTimeout(r, 20));
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    await f.write('/agents/bob/goals/g.json', '{"description":"d"}');
    const events = await watchingAgents;
    expect(events.map((e) => [e.type, e.path])).toEqual([
      ['created', '/agents/bob'],
      ['data', '/agents/bob/logs/trace'],
      ['created', '/agents/bob/goals/g.json'],
    ]);
    // The agent's own view names the same events without the prefix.
    const local = await a9.agentNamespace('bob');
    const mine = await watchN(local, '/', 0, 2, 2000);
    expect(mine.map((e) => e.path)).toEqual(['/logs/trace', '/goals/g.json']);
    const gone = watchN(a9.namespace, '/agents/bob', undefined, 2, 3000);
    await new Promise((r) => setTimeout(r, 20));
    await f.remove('/agents/bob', true);
    expect((await gone).map((e) => [e.type, e.path])).toEqual([
      ['deleted', '/agents/bob'],
      ['end', '/agents/bob/logs/trace'],
    ]);
  });

  it('watching outbox and goals of an agent sees created files with versions', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    const watching = watchN(a9.namespace, '/agents/bob/outbox', undefined, 2, 3000);
    await new Promise((r) => setTimeout(r, 20));
    await f.write('/agents/bob/inbox', 'a');
    await f.write('/agents/bob/inbox', 'b');
    await f.write('/agents/bob/ctl', 'tick');
    const events = await watching;
    expect(events.map((e) => e.type)).toEqual(['created', 'created']);
    const names = await f.list('/agents/bob/outbox');
    expect(events.map((e) => e.path.split('/').pop())).toEqual(names);
  });
});
