/** /inbox, /inbox.d, /inbox.policy and /deadletter through the global view, as users write them. */
import { describe, expect, it } from 'vitest';
import { createAgent, files, openServer, trace } from '../runtime/support.js';
import { expectCode, user } from '../helpers.js';

type Env = { id: string; source: string; from: string; created_at: number; payload: unknown; metadata?: unknown };

async function stopped(name = 'bob', extra: Record<string, unknown> = {}) {
  const a9 = await openServer({ scheduler: false });
  await createAgent(a9, { name, program: 'echo', ...extra });
  return { a9, f: files(a9.namespace) };
}

describe('/inbox', () => {
  it('test_env_inbox_write: writing an envelope and reading back gives a 1-element array with the same id', async () => {
    const { a9 } = await stopped();
    const local = files(await a9.agentNamespace('bob'));
    await local.write('/inbox', JSON.stringify({ id: 'env-42', payload: { hello: 'world' }, metadata: { k: 1 } }));
    const queued = await local.json<Env[]>('/inbox');
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({ id: 'env-42', payload: { hello: 'world' }, metadata: { k: 1 }, from: 'admin', source: 'user' });
  });

  it('`echo hi > /agents/bob/inbox` enqueues exactly one text envelope; > and >> both send one message', async () => {
    const { f } = await stopped();
    await f.write('/agents/bob/inbox', 'hi\n');
    await f.append('/agents/bob/inbox', 'two\nlines\n');
    const queued = await f.json<Env[]>('/agents/bob/inbox');
    expect(queued.map((e) => e.payload)).toEqual([{ text: 'hi' }, { text: 'two\nlines' }]);
    expect(queued[0]!.id).not.toBe(queued[1]!.id);
    // JSON without a payload field is text too.
    await f.write('/agents/bob/inbox', '{"task": 1}');
    expect((await f.json<Env[]>('/agents/bob/inbox'))[2]!.payload).toEqual({ text: '{"task": 1}' });
    const s = await f.json<{ queue_depth: number; counters: { enqueued: number } }>('/agents/bob/status');
    expect(s.queue_depth).toBe(3);
    expect(s.counters.enqueued).toBe(3);
  });

  it('an id already queued is not queued twice; bad envelopes are EINVAL naming the field', async () => {
    const { f } = await stopped();
    const env = JSON.stringify({ id: 'same', payload: 1 });
    await f.write('/agents/bob/inbox', env);
    await f.write('/agents/bob/inbox', env);
    expect((await f.json<Env[]>('/agents/bob/inbox')).length).toBe(1);
    let e = await expectCode(f.write('/agents/bob/inbox', JSON.stringify({ id: '../x', payload: 1 })), 'EINVAL', '/agents/bob/inbox');
    expect(e.message).toContain('id');
    e = await expectCode(f.write('/agents/bob/inbox', JSON.stringify({ payload: 1, colour: 'red' })), 'EINVAL');
    expect(e.message).toContain("'colour'");
    await expectCode(f.write('/agents/bob/inbox', 'x'.repeat(1024 * 1024 + 1)), 'EFBIG');
    await expectCode(f.write('/agents/nobody/inbox', 'hi'), 'ENOENT', '/agents/nobody');
    expect((await f.json<Env[]>('/agents/bob/inbox')).length).toBe(1);
  });

  it('only admins choose from/source; an agent principal is always named as the sender', async () => {
    const { a9, f } = await stopped();
    await f.write('/agents/bob/inbox', JSON.stringify({ payload: 1, from: 'nostr:abc', source: 'nostr' }));
    const asAgent = files(a9.namespace, { principal: { id: 'token:t1', admin: false, agentId: 'alice' } });
    await asAgent.write('/agents/bob/inbox', JSON.stringify({ payload: 2, from: 'mallory', source: 'forged' }));
    const q = await f.json<Env[]>('/agents/bob/inbox');
    expect(q[0]).toMatchObject({ from: 'nostr:abc', source: 'nostr' });
    expect(q[1]).toMatchObject({ from: 'alice', source: 'agent' });
  });

  it('/inbox.d: read one envelope by id, rm discards it (counted, traced)', async () => {
    const { a9, f } = await stopped();
    await f.write('/agents/bob/inbox', JSON.stringify({ id: 'a', payload: 1 }));
    await f.write('/agents/bob/inbox', JSON.stringify({ id: 'b', payload: 2 }));
    expect(await f.list('/agents/bob/inbox.d')).toEqual(['a.json', 'b.json']);
    expect(await f.json<Env>('/agents/bob/inbox.d/b.json')).toMatchObject({ id: 'b', payload: 2 });
    await f.remove('/agents/bob/inbox.d/a.json');
    expect((await f.json<Env[]>('/agents/bob/inbox')).map((e) => e.id)).toEqual(['b']);
    await expectCode(f.read('/agents/bob/inbox.d/a.json'), 'ENOENT', '/agents/bob/inbox.d/a.json');
    await expectCode(f.remove('/agents/bob/inbox.d/a.json'), 'ENOENT');
    await expectCode(f.write('/agents/bob/inbox.d/b.json', '{}'), 'EACCES');
    expect((await f.json<{ counters: { discarded: number } }>('/agents/bob/status')).counters.discarded).toBe(1);
    expect((await trace(a9, 'bob')).some((e) => e['type'] === 'discarded' && e['envelope_id'] === 'a')).toBe(true);
  });

  it('/inbox.policy: admins write it (partial writes keep other fields), others get EACCES, bad values EINVAL', async () => {
    const { a9, f } = await stopped();
    expect(await f.json('/agents/bob/inbox.policy')).toEqual({ max_depth: 1000, overflow: 'reject', deadletter_max: 100 });
    await f.write('/agents/bob/inbox.policy', '{"max_depth": 5}');
    expect(await f.json('/agents/bob/inbox.policy')).toEqual({ max_depth: 5, overflow: 'reject', deadletter_max: 100 });
    await expectCode(files(a9.namespace, user).write('/agents/bob/inbox.policy', '{"max_depth": 9}'), 'EACCES');
    const e = await expectCode(f.write('/agents/bob/inbox.policy', '{"overflow": "sometimes"}'), 'EINVAL');
    expect(e.message).toContain('overflow');
    await expectCode(f.write('/agents/bob/inbox.policy', '{not json'), 'EINVAL');
    expect((await f.json<{ max_depth: number }>('/agents/bob/inbox.policy')).max_depth).toBe(5);
  });

  it('overflow reject: a full inbox fails the write with EAGAIN and nothing is lost or added', async () => {
    const { f } = await stopped('bob', { inbox: { max_depth: 3, overflow: 'reject' } });
    for (let i = 0; i < 3; i++) await f.write('/agents/bob/inbox', `m${i}`);
    const e = await expectCode(f.write('/agents/bob/inbox', 'm3'), 'EAGAIN', '/agents/bob/inbox');
    expect((e as unknown as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    expect((await f.json<Env[]>('/agents/bob/inbox')).map((x) => x.payload)).toEqual([{ text: 'm0' }, { text: 'm1' }, { text: 'm2' }]);
    expect((await f.json<{ counters: { rejected: number } }>('/agents/bob/status')).counters.rejected).toBe(1);
  });

  it('overflow drop-oldest: the oldest envelope makes room, counted as dropped and traced', async () => {
    const { a9, f } = await stopped('bob', { inbox: { max_depth: 2, overflow: 'drop-oldest' } });
    for (let i = 0; i < 4; i++) await f.write('/agents/bob/inbox', JSON.stringify({ id: `m${i}`, payload: i }));
    expect((await f.json<Env[]>('/agents/bob/inbox')).map((x) => x.id)).toEqual(['m2', 'm3']);
    const s = await f.json<{ queue_depth: number; counters: { dropped: number } }>('/agents/bob/status');
    expect(s.queue_depth).toBe(2);
    expect(s.counters.dropped).toBe(2);
    const dropped = (await trace(a9, 'bob')).filter((e) => e['type'] === 'dropped').map((e) => e['envelope_id']);
    expect(dropped).toEqual(['m0', 'm1']);
  });

  it('test_overflow_deadletter: with overflow=deadletter a full inbox dead-letters new envelopes; the deadletter is bounded', async () => {
    const { a9, f } = await stopped('bob', { inbox: { max_depth: 2, overflow: 'deadletter', deadletter_max: 3 } });
    for (let i = 0; i < 7; i++) await f.write('/agents/bob/inbox', JSON.stringify({ id: `m${i}`, payload: i }));
    expect((await f.json<Env[]>('/agents/bob/inbox')).map((x) => x.id)).toEqual(['m0', 'm1']);
    // m2..m6 overflowed; the deadletter keeps the newest 3 and drops (counts, traces) the older ones.
    expect((await f.list('/agents/bob/deadletter')).sort()).toEqual(['ctl', 'm4.json', 'm5.json', 'm6.json']);
    expect(await f.json('/agents/bob/deadletter/m6.json')).toMatchObject({ envelope: { id: 'm6', payload: 6 }, reason: 'overflow', attempts: 0 });
    const s = await f.json<{ queue_depth: number; deadletter_depth: number; counters: { deadlettered: number; dropped: number } }>('/agents/bob/status');
    expect(s).toMatchObject({ queue_depth: 2, deadletter_depth: 3 });
    expect(s.counters.deadlettered).toBe(5);
    expect(s.counters.dropped).toBe(2);
    const t = await trace(a9, 'bob');
    expect(t.filter((e) => e['type'] === 'deadlettered').map((e) => e['envelope_id'])).toEqual(['m2', 'm3', 'm4', 'm5', 'm6']);
    expect(t.filter((e) => e['type'] === 'dropped').map((e) => e['envelope_id'])).toEqual(['m2', 'm3']);
    // Every envelope is accounted for: queued, dead-lettered or counted as dropped.
    expect(2 + s.deadletter_depth + s.counters.dropped).toBe(7);
  });
});

describe('/deadletter', () => {
  it('replay moves an envelope back to the end of the inbox; discard and purge drop them; rm discards', async () => {
    const { a9, f } = await stopped('bob', { inbox: { max_depth: 1, overflow: 'deadletter' } });
    for (const id of ['a', 'b', 'c', 'd']) await f.write('/agents/bob/inbox', JSON.stringify({ id, payload: id }));
    expect((await f.list('/agents/bob/deadletter')).sort()).toEqual(['b.json', 'c.json', 'ctl', 'd.json']);
    await f.write('/agents/bob/inbox.policy', '{"max_depth": 10}');
    await f.write('/agents/bob/deadletter/ctl', 'replay b');
    expect((await f.json<Env[]>('/agents/bob/inbox')).map((e) => e.id)).toEqual(['a', 'b']);
    await f.write('/agents/bob/deadletter/ctl', 'discard c.json');
    await f.remove('/agents/bob/deadletter/d.json');
    expect(await f.list('/agents/bob/deadletter')).toEqual(['ctl']);
    await f.write('/agents/bob/inbox.policy', '{"max_depth": 1}');
    await f.write('/agents/bob/inbox', JSON.stringify({ id: 'e', payload: 'e' }));
    await f.write('/agents/bob/deadletter/ctl', 'purge');
    expect(await f.list('/agents/bob/deadletter')).toEqual(['ctl']);
    await expectCode(f.write('/agents/bob/deadletter/ctl', 'replay nope'), 'ENOENT', 'nope');
    const bad = await expectCode(f.write('/agents/bob/deadletter/ctl', 'resurrect b'), 'EINVAL', '/agents/bob/deadletter/ctl');
    expect(bad.message).toContain('replay <id> | discard <id> | purge');
    const s = await f.json<{ counters: { replayed: number; discarded: number } }>('/agents/bob/status');
    expect(s.counters).toMatchObject({ replayed: 1, discarded: 3 });
    expect((await trace(a9, 'bob')).some((e) => e['type'] === 'purged')).toBe(true);
  });

  it('replaying into a full inbox fails with EAGAIN and keeps the envelope dead-lettered', async () => {
    const { f } = await stopped('bob', { inbox: { max_depth: 1, overflow: 'deadletter' } });
    await f.write('/agents/bob/inbox', JSON.stringify({ id: 'a', payload: 1 }));
    await f.write('/agents/bob/inbox', JSON.stringify({ id: 'b', payload: 2 }));
    await expectCode(f.write('/agents/bob/deadletter/ctl', 'replay b'), 'EAGAIN');
    expect(await f.list('/agents/bob/deadletter')).toContain('b.json');
  });
});

describe('concurrent writers (group commit)', () => {
  it('each concurrent write gets its own outcome: queued, duplicate or EAGAIN; nothing else is affected', async () => {
    const { a9, f } = await stopped('bob', { inbox: { max_depth: 5, overflow: 'reject' } });
    const writes = Array.from({ length: 12 }, (_, i) =>
      f.write('/agents/bob/inbox', JSON.stringify({ id: `w${i % 8}`, payload: i })).then(
        () => 'ok',
        (e: { code: string }) => e.code,
      ),
    );
    const outcomes = await Promise.all(writes);
    const queued = (await f.json<{ id: string }[]>('/agents/bob/inbox')).map((e) => e.id);
    expect(queued).toEqual(['w0', 'w1', 'w2', 'w3', 'w4']);
    // w0..w4 queued; w5..w7 rejected; the repeats of w0..w3 are duplicates of queued envelopes (success).
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'EAGAIN', 'EAGAIN', 'EAGAIN', 'ok', 'ok', 'ok', 'ok']);
    const s = await f.json<{ queue_depth: number; counters: { enqueued: number; rejected: number } }>('/agents/bob/status');
    expect(s).toMatchObject({ queue_depth: 5, counters: { enqueued: 5, rejected: 3 } });
    expect((await trace(a9, 'bob')).filter((e) => e['type'] === 'rejected')).toHaveLength(3);
  });

  it('many concurrent writers to many agents: every write lands exactly once', async () => {
    const a9 = await openServer({ scheduler: false });
    for (const name of ['a', 'b', 'c']) await createAgent(a9, { name, program: 'echo' });
    const f = files(a9.namespace);
    await Promise.all(
      Array.from({ length: 16 }, async (_, w) => {
        for (let i = 0; i < 20; i++) await f.write(`/agents/${'abc'[(w + i) % 3]}/inbox`, JSON.stringify({ id: `w${w}-${i}`, payload: i }));
      }),
    );
    const all = (await Promise.all(['a', 'b', 'c'].map((n) => f.json<{ id: string }[]>(`/agents/${n}/inbox`)))).flat().map((e) => e.id);
    expect(all.length).toBe(320);
    expect(new Set(all).size).toBe(320);
    // Concurrent writes shared transactions.
    const commits = (await f.json<{ enqueue_commits: { transactions: number; writes: number } }>('/runtime/status')).enqueue_commits;
    expect(commits.writes).toBe(320);
    expect(commits.transactions).toBeLessThan(320);
  });
});
