/**
 * Messages between agents, through the files an agent uses: `peers/<id>/inbox` and outbox `to`. Every
 * envelope is signed by its sender's identity key (a NIP-01 event), the receiver's trigger says whether
 * it verified; policy, refusals (delivery_failed), the hop limit and replies.
 */
import { describe, expect, it } from 'vitest';
import { verifyEvent } from 'nostr-tools/pure';
import { createAgent, files, openServer, testProgram, trace, waitFor } from './support.js';
import { expectCode } from '../helpers.js';
import type { Trigger } from '../../src/runtime/spec.js';
import type { Agent9 } from '../../src/server/agent9.js';

/** A program that keeps every trigger it got (in its state) and sends what its `send` config says. */
const recorder = testProgram('recorder', (ctx) => {
  const seen = ((ctx.state as { seen?: Trigger[] } | undefined)?.seen ?? []).concat(ctx.triggers.filter((t) => t.type !== 'init'));
  const outbox = ctx.triggers.flatMap((t) =>
    t.type === 'message' && (t.envelope.payload as { send?: unknown[] } | null)?.send ? ((t.envelope.payload as { send: unknown[] }).send as never[]) : [],
  );
  return { state: { seen }, outbox };
});

async function server(): Promise<Agent9> {
  return openServer({ programs: [recorder] });
}

function seen(a9: Agent9, id: string): Trigger[] {
  const s = a9.runtime.store.getState(id);
  return s ? (JSON.parse(s.data) as { seen: Trigger[] }).seen : [];
}

const asAgent = (id: string) => ({ principal: { id: `agent:${id}`, admin: false, agentId: id } });

describe('two agents conversing', () => {
  it('through peers/: the receiver sees the sender, verified: true; the event is a valid NIP-01 event', async () => {
    const a9 = await server();
    await createAgent(a9, { name: 'alice', program: 'recorder' });
    await createAgent(a9, { name: 'bob', program: 'recorder' });
    const alice = files(await a9.agentNamespace('alice'), asAgent('alice'));
    expect(await alice.list('/peers')).toEqual(['bob']);
    expect(await alice.list('/peers/bob')).toEqual(['inbox']);
    await alice.write('/peers/bob/inbox', 'hello bob');
    const got = await waitFor(() => seen(a9, 'bob').find((t) => t.type === 'message'));
    expect(got).toMatchObject({ type: 'message', from: 'agent:alice', source: 'agent', verified: true });
    const env = (got as Extract<Trigger, { type: 'message' }>).envelope;
    expect(env.payload).toEqual({ text: 'hello bob' });
    expect(env.metadata).toMatchObject({ hops: 1 });
    const signed = env.signed!;
    expect(signed.kind).toBe(4090);
    expect(signed.pubkey).toBe(a9.runtime.keys.pubkey('alice'));
    expect(signed.tags).toContainEqual(['p', a9.runtime.keys.pubkey('bob')!]);
    expect(signed.content).toBe(JSON.stringify({ text: 'hello bob' }));
    expect(env.id).toBe(signed.id);
    expect(verifyEvent({ ...signed })).toBe(true);
    // Both traces say so.
    expect((await trace(a9, 'alice')).some((e) => e['type'] === 'message_sent' && e['envelope_id'] === env.id && e['status'] === 'delivered')).toBe(true);
  });

  it('through outbox `to`: delivered in the tick that emitted it; the reply names what it answers', async () => {
    const a9 = await server();
    await createAgent(a9, { name: 'alice', program: 'recorder' });
    await createAgent(a9, { name: 'echoer', program: 'echo' });
    const f = files(a9.namespace);
    // The operator asks alice to send to echoer; echoer answers alice's inbox.
    await f.write('/agents/alice/inbox', JSON.stringify({ payload: { send: [{ id: 'q-1', to: 'agent:echoer', payload: { ask: 42 } }] } }));
    const answer = await waitFor(() => seen(a9, 'alice').find((t) => t.type === 'message' && t.from === 'agent:echoer'));
    expect(answer).toMatchObject({ verified: true, envelope: { payload: { ask: 42 }, metadata: { in_reply_to: 'q-1', hops: 2 } } });
    const asked = JSON.parse(a9.runtime.store.outboxOne('alice', 'q-1')!.body) as { signed: { tags: string[][] } };
    // The reply's signed part points at the event it answers (NIP-10).
    const reply = (answer as Extract<Trigger, { type: 'message' }>).envelope.signed!;
    expect(reply.tags).toContainEqual(['e', (asked.signed as unknown as { id: string }).id, '', 'reply']);
    expect(asked.signed.tags).toContainEqual(['envelope', 'q-1']);
    // The outbox entry says it was delivered.
    expect(await f.json('/agents/alice/outbox/q-1.json')).toMatchObject({ to: 'agent:echoer', from: 'agent:alice', delivery: { status: 'delivered', to: 'agent:echoer' } });
  });
});

describe('forged and tampered envelopes are verified: false', () => {
  it('a wrong signature, a changed payload, someone else’s pubkey, a replay to another receiver', async () => {
    const a9 = await server();
    await createAgent(a9, { name: 'alice', program: 'recorder', schedule: { on_message: false } });
    await createAgent(a9, { name: 'bob', program: 'recorder', schedule: { on_message: false } });
    await createAgent(a9, { name: 'carol', program: 'recorder', schedule: { on_message: false } });
    const alice = files(await a9.agentNamespace('alice'), asAgent('alice'));
    const f = files(a9.namespace);
    type Env = { signed: Record<string, unknown> } & Record<string, unknown>;
    /**
     * alice sends `id` to bob; the operator takes it out of bob's inbox and puts back `change` of it
     * under the same id (an admin may hand on a signed event: whether it verifies is the receiver's to
     * check), or (`to`) gives it to another agent.
     */
    const forge = async (id: string, change: (e: Env) => void, to = 'bob') => {
      await alice.write('/peers/bob/inbox', JSON.stringify({ id, payload: { n: 1 } }));
      const e = JSON.parse(a9.runtime.store.inboxOne('bob', id)!.body) as Env;
      await f.remove(`/agents/bob/inbox.d/${id}.json`);
      change(e);
      await f.write(`/agents/${to}/inbox`, JSON.stringify(e));
    };
    await alice.write('/peers/bob/inbox', JSON.stringify({ id: 'orig', payload: { n: 1 } }));
    const good = JSON.parse(a9.runtime.store.inboxOne('bob', 'orig')!.body) as Env;
    // The same signed event under another envelope id is not what alice signed.
    await f.write('/agents/bob/inbox', JSON.stringify({ ...good, id: 'orig-copy' }));
    await forge('handed-on', () => undefined);
    await forge('bad-sig', (e) => (e.signed['sig'] = (e.signed['sig'] as string).replace(/^./, (c) => (c === '0' ? '1' : '0'))));
    await forge('changed-payload', (e) => (e['payload'] = { n: 2 }));
    await forge('other-pubkey', (e) => (e.signed['pubkey'] = a9.runtime.keys.pubkey('carol')));
    await forge('from-carol', (e) => (e['from'] = 'agent:carol'));
    await forge('replayed', () => undefined, 'carol');
    await a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    await a9.runtime.tick('carol', { type: 'manual', invoked_by: 'test' });
    const verdicts = Object.fromEntries(
      [...seen(a9, 'bob'), ...seen(a9, 'carol')].flatMap((t) => (t.type === 'message' ? [[t.envelope_id, t.verified]] : [])),
    );
    expect(verdicts).toEqual({
      orig: true,
      'handed-on': true,
      'orig-copy': false,
      'bad-sig': false,
      'changed-payload': false,
      'other-pubkey': false,
      'from-carol': false,
      replayed: false,
    });
  });

  it('a sender deleted since: its signature no longer checks against a current key', async () => {
    const a9 = await server();
    await createAgent(a9, { name: 'alice', program: 'recorder', schedule: { on_message: false } });
    await createAgent(a9, { name: 'bob', program: 'recorder', schedule: { on_message: false } });
    await files(await a9.agentNamespace('alice'), asAgent('alice')).write('/peers/bob/inbox', 'before the delete');
    await files(a9.namespace).remove('/agents/alice');
    await createAgent(a9, { name: 'alice', program: 'recorder', schedule: { on_message: false } });
    await a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    expect(seen(a9, 'bob').find((t) => t.type === 'message')).toMatchObject({ from: 'agent:alice', verified: false });
  });
});

describe('who may message whom', () => {
  it('default: any agent; per-agent allow/deny in config (admin-write); a refused send does not fail the tick', async () => {
    const a9 = await server();
    await createAgent(a9, { name: 'alice', program: 'recorder' });
    await createAgent(a9, { name: 'bob', program: 'recorder', messaging: { deny: ['alice'] } });
    await createAgent(a9, { name: 'carol', program: 'recorder' });
    const alice = files(await a9.agentNamespace('alice'), asAgent('alice'));
    expect(await alice.list('/peers')).toEqual(['carol']);
    await expectCode(alice.write('/peers/bob/inbox', 'hi'), 'EACCES', 'bob');
    await expectCode(alice.write('/peers/nobody/inbox', 'hi'), 'ENOENT');
    // An agent may not change its own policy.
    await expectCode(alice.write('/config', JSON.stringify({ messaging: { allow: ['*'] } })), 'EACCES');
    expect((await files(a9.namespace).json<{ messaging: unknown }>('/agents/bob/config')).messaging).toEqual({ allow: ['*'], deny: ['alice'], max_hops: 16 });

    // Outbox entries to bob (refused), to nobody (unknown) and to carol in one tick: the tick commits,
    // carol gets hers, the refused ones are recorded and come back as delivery_failed triggers.
    const send = [
      { id: 'to-bob', to: 'bob', payload: 1 },
      { id: 'to-nobody', to: 'agent:nobody', payload: 2 },
      { id: 'to-carol', to: 'carol', payload: 3 },
    ];
    await files(a9.namespace).write('/agents/alice/inbox', JSON.stringify({ payload: { send } }));
    await waitFor(() => seen(a9, 'carol').some((t) => t.type === 'message' && t.envelope_id === 'to-carol'));
    const failures = await waitFor(() => {
      const f = seen(a9, 'alice').filter((t) => t.type === 'delivery_failed');
      return f.length === 2 && f;
    });
    expect(failures).toEqual([
      { type: 'delivery_failed', envelope_id: 'to-bob', to: 'bob', code: 'EACCES', error: expect.stringContaining("may not message agent 'bob'") },
      { type: 'delivery_failed', envelope_id: 'to-nobody', to: 'agent:nobody', code: 'ENOENT', error: expect.stringContaining("no agent 'nobody'") },
    ]);
    const f = files(a9.namespace);
    expect(await f.json('/agents/alice/outbox/to-bob.json')).toMatchObject({ delivery: { status: 'failed', code: 'EACCES' } });
    expect(await f.json('/agents/alice/outbox/to-carol.json')).toMatchObject({ delivery: { status: 'delivered' } });
    expect((await trace(a9, 'bob')).some((e) => e['type'] === 'refused' && e['envelope_id'] === 'to-bob')).toBe(true);
    expect((await trace(a9, 'alice')).filter((e) => e['type'] === 'delivery_failed').map((e) => e['envelope_id'])).toEqual(['to-bob', 'to-nobody']);
    expect(a9.runtime.store.getAgent('alice')!.ticks_failed).toBe(0);
    expect(a9.runtime.store.getAgent('bob')!.queue_depth).toBe(0);
  });

  it('a full inbox under reject: EAGAIN to a writer, delivery_failed to a tick', async () => {
    const a9 = await server();
    await createAgent(a9, { name: 'alice', program: 'recorder' });
    await createAgent(a9, { name: 'bob', program: 'recorder', schedule: { on_message: false }, inbox: { max_depth: 1 } });
    const alice = files(await a9.agentNamespace('alice'), asAgent('alice'));
    await alice.write('/peers/bob/inbox', 'one');
    await expectCode(alice.write('/peers/bob/inbox', 'two'), 'EAGAIN');
    await files(a9.namespace).write('/agents/alice/inbox', JSON.stringify({ payload: { send: [{ id: 'three', to: 'bob', payload: 3 }] } }));
    const failed = await waitFor(() => seen(a9, 'alice').find((t) => t.type === 'delivery_failed'));
    expect(failed).toMatchObject({ envelope_id: 'three', code: 'EAGAIN' });
    expect((await trace(a9, 'bob')).filter((e) => e['type'] === 'rejected').length).toBeGreaterThanOrEqual(1);
  });
});

describe('replies and loops', () => {
  it('two echo agents ping-pong until the hop limit; the next hop is dead-lettered with its reason', async () => {
    const a9 = await server();
    await createAgent(a9, { name: 'ping', program: 'echo' });
    await createAgent(a9, { name: 'pong', program: 'echo' });
    await files(await a9.agentNamespace('ping'), asAgent('ping')).write('/peers/pong/inbox', 'ball');
    const dead = await waitFor(async () => {
      const d = [...a9.runtime.store.deadletterList('ping'), ...a9.runtime.store.deadletterList('pong')];
      return d.length > 0 && d;
    }, 20_000, 'the hop limit');
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ reason: 'hop_limit' });
    expect(JSON.parse(dead[0]!.body)).toMatchObject({ metadata: { hops: 17 } });
    expect(dead[0]!.error).toMatch(/17 hops, over max_hops 16/);
    await a9.runtime.scheduler.idle();
    // 16 hops were delivered in all: the first send and 15 answers, then the 17th went to the deadletter.
    const delivered = a9.runtime.store.getAgent('ping')!.delivered + a9.runtime.store.getAgent('pong')!.delivered;
    expect(delivered).toBe(16);
  });
});
