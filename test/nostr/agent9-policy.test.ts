/**
 * Who may reach an agent over Nostr, and what is refused: the sender policy and the rate limit
 * (admin-write, drops counted and traced), bad `nostr` sections and config.json sections, outbox
 * entries to bad addresses or from agents without Nostr (the tick commits; the record says why), and
 * an agent deleted: its subscriptions and rows go.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as nip19 from 'nostr-tools/nip19';
import { Agent9 } from '../../src/server/agent9.js';
import { admin, bytes, expectCode, tempDir } from '../helpers.js';
import { startRelay } from '../support/nostr-relay.js';
import { closeEverything, giftWrappedDm, legacyDm, person, plainClient, sleep, waitFor } from './support.js';
import { callFile, closeServers, nostrAgent, nostrServer, readJson, receiving, traces, triggers, writeJson } from './server-support.js';

afterEach(async () => {
  await closeServers();
  await closeEverything();
});

const agentCx = (id: string) => ({ principal: { id: `agent:${id}`, admin: false, agentId: id } });

describe('nostr: policy and refusals', () => {
  it('an allow list and a rate limit, written by an admin only, drop the rest; each drop is counted and traced', async () => {
    const relay = await startRelay(tempDir());
    const a9 = await nostrServer({ relays: [relay.url] });
    const bob = await nostrAgent(a9, { name: 'bob', schedule: { on_message: false } });
    await receiving(a9, 'bob');
    const alice = person();
    const carol = person();

    // The agent itself (an agent-scoped caller) may read its policy, not change it.
    const ns = await a9.agentNamespace('bob');
    await expectCode(ns.writeFile!('/nostr/policy', bytes(JSON.stringify({ senders: 'anyone', per_minute: 10_000 })), {}, agentCx('bob')), 'EACCES', '/nostr/policy');
    await expectCode(writeJson(a9, '/agents/bob/nostr/policy', { senders: ['not a key'] }), 'EINVAL', 'senders[0]');
    await writeJson(a9, '/agents/bob/nostr/policy', { senders: [nip19.npubEncode(alice.pubkey)], per_minute: 2 });
    expect(await readJson(a9, '/agents/bob/nostr/policy')).toEqual({ senders: [alice.pubkey], per_minute: 2 });
    // The config shows the same section.
    expect(((await readJson(a9, '/agents/bob/config')) as { nostr: unknown }).nostr).toEqual({ enabled: true, senders: [alice.pubkey], per_minute: 2 });

    const client = await plainClient(relay.url);
    const fromAlice = [0, 1, 2].map((i) => giftWrappedDm(alice, bob, `alice ${i}`));
    for (const m of fromAlice) await client.publish(m.wrap);
    const fromCarol = legacyDm(carol, bob, 'carol');
    await client.publish(fromCarol);

    await waitFor(async () => {
      const s = (await readJson(a9, '/agents/bob/nostr/status')) as { inbound: { received: number } };
      return s.inbound.received === 4;
    }, 10_000, 'four events handled');
    const inbox = (await readJson(a9, '/agents/bob/inbox')) as { id: string }[];
    expect(inbox.map((e) => e.id).sort()).toEqual([fromAlice[0]!.rumorId, fromAlice[1]!.rumorId].sort());
    const status = (await readJson(a9, '/agents/bob/nostr/status')) as { inbound: { dropped: Record<string, number> } };
    expect(status.inbound.dropped).toMatchObject({ rate_limited: 1, sender_not_allowed: 1 });
    const dropped = await traces(a9, 'bob', 'nostr_dropped');
    expect(dropped.map((d) => [d['reason'], d['pubkey']]).sort()).toEqual([
      ['rate_limited', alice.pubkey],
      ['sender_not_allowed', carol.pubkey],
    ]);
    // A dropped message stays dropped: the same wrap again (a resend, another relay) is a duplicate, not a second judgement.
    await client.publish(fromAlice[2]!.wrap);
    await sleep(300);
    expect(((await readJson(a9, '/agents/bob/inbox')) as unknown[]).length).toBe(2);
  });

  it('refuses a bad nostr section in a spec or config (EINVAL naming the field, nothing changed) and a bad config.json section at start', async () => {
    const a9 = await nostrServer();
    await expectCode(callFile(a9, '/agents/new', { name: 'x', program: 'echo', nostr: { enabled: 'yes' } }), 'EINVAL', 'nostr.enabled');
    await expectCode(callFile(a9, '/agents/new', { name: 'x', program: 'echo', nostr: { enabled: true, relays: ['http://nope'] } }), 'EINVAL', 'nostr.relays');
    await expectCode(callFile(a9, '/agents/new', { name: 'x', program: 'echo', nostr: { enabld: true } }), 'EINVAL', 'enabld');
    expect(a9.runtime.agents.has('x')).toBe(false);
    await nostrAgent(a9, { name: 'y', nostr: false });
    await expectCode(writeJson(a9, '/agents/y/config', { nostr: { per_minute: -1 }, env: { A: '1' } }), 'EINVAL', 'per_minute');
    const config = (await readJson(a9, '/agents/y/config')) as { env: Record<string, string>; nostr: unknown };
    expect(config.env).toEqual({});
    expect(config.nostr).toEqual({ enabled: false, senders: 'anyone', per_minute: 10 });

    const home = tempDir();
    writeFileSync(join(home, 'config.json'), JSON.stringify({ nostr: { relays: ['https://relay.example.com'] } }));
    await expectCode(Agent9.open({ home }), 'EINVAL', 'config.json');
  });

  it('an outbox entry to a bad address, or from an agent without Nostr, is a failed record and a trace; the tick commits', async () => {
    const relay = await startRelay(tempDir());
    const a9 = await nostrServer({ relays: [relay.url] });
    await nostrAgent(a9, { name: 'bob' });
    await nostrAgent(a9, { name: 'off', nostr: { enabled: false } });
    const alice = person();
    // The echo answers the sender named in `from` (an admin may set it).
    await callFile(a9, '/agents/bob/inbox', { id: 'm1', from: 'nostr:npub1notakey', payload: { text: 'hi' } });
    await callFile(a9, '/agents/off/inbox', { id: 'm2', from: `nostr:${nip19.npubEncode(alice.pubkey)}`, payload: { text: 'hi' } });
    await waitFor(async () => (await triggers(a9, 'bob')).length === 1 && (await triggers(a9, 'off')).length === 1, 10_000, 'both ticked');
    const badId = ((await a9.namespace.readdir('/agents/bob/outbox', admin))[0]!.name).replace(/\.json$/, '');
    const offId = ((await a9.namespace.readdir('/agents/off/outbox', admin))[0]!.name).replace(/\.json$/, '');
    expect(await readJson(a9, `/agents/bob/nostr/outgoing/${badId}.json`)).toMatchObject({ status: 'failed', error: expect.stringContaining('to: ') });
    expect(await readJson(a9, `/agents/off/nostr/outgoing/${offId}.json`)).toMatchObject({ status: 'failed', error: expect.stringContaining('not enabled') });
    expect(await traces(a9, 'off', 'nostr_send_failed')).toEqual([expect.objectContaining({ id: offId, final: true })]);
    // The dm call file of an agent without Nostr is refused outright.
    await expectCode(callFile(a9, '/agents/off/nostr/dm', { to: alice.pubkey, text: 'x' }), 'EPERM', '/nostr/dm');
    await expectCode(callFile(a9, '/agents/bob/nostr/dm', { to: alice.pubkey }), 'EINVAL', 'text');
    await expectCode(callFile(a9, '/agents/bob/nostr/publish', { kind: 'one' }), 'EINVAL', 'kind');
  });

  it('a deleted agent stops receiving; its settings, points, processed ids and outgoing records go', async () => {
    const relay = await startRelay(tempDir());
    const a9 = await nostrServer({ relays: [relay.url] });
    const bob = await nostrAgent(a9, { name: 'bob' });
    await receiving(a9, 'bob');
    const client = await plainClient(relay.url);
    const alice = person();
    await client.publish(giftWrappedDm(alice, bob, 'before').wrap);
    await waitFor(async () => (await triggers(a9, 'bob')).length === 1, 10_000, 'delivered');

    await a9.namespace.remove('/agents/bob', admin);
    await waitFor(() => a9.nostr!.receiver.agents().length === 0, 5000, 'unwatched');
    const rows = (table: string) => a9.storage.db.prepare(`SELECT count(*) FROM ${table} WHERE agent_id = 'bob'`).pluck().get();
    await waitFor(() => ['nostr_agents', 'nostr_processed', 'nostr_cursors', 'nostr_outgoing', 'nostr_peers'].every((t) => rows(t) === 0), 5000, 'rows gone');
    expect(((await readJson(a9, '/runtime/nostr')) as { agents: { receiving: number } }).agents.receiving).toBe(0);
  });
});
