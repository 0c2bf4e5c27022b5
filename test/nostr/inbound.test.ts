/**
 * Inbound, end to end through real relay processes: an outside user with a plain nostr-tools client
 * sends DMs (NIP-17 gift wraps with the standard back-dating, NIP-04) and mentions to an agent; the
 * consumer (pool, receiver, inbound, store on SQLite) turns them into inbox drafts. Forgeries are
 * dropped and counted; the sender policy and the rate limit hold.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { finalizeEvent, getEventHash, type Event } from 'nostr-tools/pure';
import * as nip04 from 'nostr-tools/nip04';
import * as nip17 from 'nostr-tools/nip17';
import * as nip19 from 'nostr-tools/nip19';
import * as nip44 from 'nostr-tools/nip44';
import { createWrap } from 'nostr-tools/nip59';
import { tempDir } from '../helpers.js';
import { startRelay } from '../support/nostr-relay.js';
import { normalizeRelayUrl } from '../../src/services/nostr/pool.js';
import { parseNostrReachPolicy } from '../../src/services/nostr/policy.js';
import { closeEverything, legacyDm, openConsumer, person, plainClient, sleep, waitFor, type Person } from './support.js';

afterEach(closeEverything);

const now = () => Math.floor(Date.now() / 1000);


function mention(from: Person, to: string, text: string): Event {
  return finalizeEvent({ kind: 1, tags: [['p', to]], content: text, created_at: now() }, from.secretKey);
}

/** A seal by `sealer` around a rumor that claims `author`: what an impersonator would send. */
function sealedRumor(sealer: Person, author: string, to: string, text: string): { wrap: Event; rumorId: string } {
  const unsigned = { kind: 14, pubkey: author, created_at: now(), tags: [['p', to]], content: text };
  const rumor = { ...unsigned, id: getEventHash(unsigned) };
  const key = nip44.v2.utils.getConversationKey(sealer.secretKey, to);
  const seal = finalizeEvent({ kind: 13, tags: [], content: nip44.v2.encrypt(JSON.stringify(rumor), key), created_at: now() }, sealer.secretKey);
  return { wrap: createWrap(seal, to), rumorId: rumor.id };
}

async function agentOn(urls: string[], options: Parameters<typeof openConsumer>[1] = {}, policy?: unknown) {
  const dir = tempDir();
  const consumer = openConsumer(dir, options);
  const agent = person();
  consumer.receiver.watch({ agentId: 'bob', signer: agent.signer, relays: urls, ...(policy ? { policy: parseNostrReachPolicy(policy, '/agents/bob/config') } : {}) });
  await waitFor(() => urls.every((u) => consumer.store.cursor('bob', normalizeRelayUrl(u)).load() !== undefined), 15_000, 'subscriptions live');
  return { consumer, agent, dir };
}

describe('nostr inbound', () => {
  it('a NIP-17 DM, a NIP-04 DM and a mention become inbox drafts as the contract says', async () => {
    const relay = await startRelay(tempDir());
    const { consumer, agent } = await agentOn([relay.url]);
    const alice = person();
    const client = await plainClient(relay.url);

    const wrap = nip17.wrapEvent(alice.secretKey, { publicKey: agent.pubkey }, 'hello over nip-17');
    expect(wrap.created_at).toBeLessThanOrEqual(now()); // back-dated, as NIP-59 says
    const rumor = nip17.unwrapEvent(wrap, agent.secretKey);
    const dm = legacyDm(alice, agent.pubkey, 'hello over nip-04');
    const note = mention(alice, agent.pubkey, 'hey @bob');
    for (const e of [wrap, dm, note]) await client.publish(e);
    await waitFor(() => consumer.delivered().length === 3, 10_000, 'three drafts');

    const [first, second, third] = consumer.delivered();
    const from = `nostr:${nip19.npubEncode(alice.pubkey)}`;
    const url = normalizeRelayUrl(relay.url);
    expect(first).toEqual({
      agentId: 'bob',
      envelope: {
        id: rumor.id,
        source: 'nostr',
        from,
        created_at: rumor.created_at * 1000,
        payload: {
          type: 'nostr_dm',
          nostr: { event_id: rumor.id, kind: 14, pubkey: alice.pubkey, created_at: rumor.created_at, tags: rumor.tags, content: 'hello over nip-17', raw_content: wrap.content, decrypted: true },
        },
        metadata: { nostr: { relay: url, wrap_id: wrap.id } },
      },
    });
    expect(second!.envelope).toEqual({
      id: dm.id,
      source: 'nostr',
      from,
      created_at: dm.created_at * 1000,
      payload: { type: 'nostr_dm', nostr: { event_id: dm.id, kind: 4, pubkey: alice.pubkey, created_at: dm.created_at, tags: dm.tags, content: 'hello over nip-04', raw_content: dm.content, decrypted: true } },
      metadata: { nostr: { relay: url } },
    });
    expect(third!.envelope.payload).toEqual({
      type: 'nostr_mention',
      nostr: { event_id: note.id, kind: 1, pubkey: alice.pubkey, created_at: note.created_at, tags: note.tags, content: 'hey @bob', raw_content: null, decrypted: null },
    });
    expect(consumer.inbound.counts('bob')).toMatchObject({ received: 3, delivered: 3, duplicates: 0 });
  });

  it('a kind-4 DM that does not open arrives as sent, with decrypted: false', async () => {
    const relay = await startRelay(tempDir());
    const { consumer, agent } = await agentOn([relay.url]);
    const alice = person();
    const other = person();
    // Encrypted for someone else but tagged for bob: bob cannot read it.
    const dm = finalizeEvent({ kind: 4, tags: [['p', agent.pubkey]], content: nip04.encrypt(alice.secretKey, other.pubkey, 'not for bob'), created_at: now() }, alice.secretKey);
    await (await plainClient(relay.url)).publish(dm);
    await waitFor(() => consumer.delivered().length === 1, 10_000, 'the draft');
    expect(consumer.delivered()[0]!.envelope.payload).toMatchObject({ type: 'nostr_dm', nostr: { content: dm.content, raw_content: dm.content, decrypted: false } });
  });

  it('drops and counts an event with a forged signature sent by a hostile relay', async () => {
    const relay = await startRelay(tempDir(), { acceptForged: true });
    const drops: string[] = [];
    const { consumer, agent } = await agentOn([relay.url], { inbound: { onDrop: (d) => drops.push(`${d.reason}:${d.pubkey}`) } });
    const alice = person();
    const genuine = legacyDm(alice, agent.pubkey, 'real');
    const forged = { ...legacyDm(alice, agent.pubkey, 'forged'), sig: genuine.sig };
    const client = await plainClient(relay.url);
    await client.publish(forged);
    await client.publish(genuine);
    await waitFor(() => consumer.delivered().length === 1 && consumer.inbound.counts('bob')!.dropped.bad_signature === 1, 10_000, 'one draft, one drop');
    expect(consumer.delivered()[0]!.envelope.id).toBe(genuine.id);
    expect(drops).toEqual([`bad_signature:${alice.pubkey}`]);
    expect(consumer.store.isProcessed('bob', forged.id)).toBe(false); // a forged id is never recorded
  });

  it('drops a gift wrap whose seal is by someone else than the message claims (impersonation), and one whose seal is forged', async () => {
    const relay = await startRelay(tempDir());
    const { consumer, agent } = await agentOn([relay.url]);
    const alice = person();
    const mallory = person();
    const client = await plainClient(relay.url);
    const impersonation = sealedRumor(mallory, alice.pubkey, agent.pubkey, 'I am alice, honest');
    await client.publish(impersonation.wrap);

    const unsigned = { kind: 14, pubkey: alice.pubkey, created_at: now(), tags: [['p', agent.pubkey]], content: 'seal with a bad signature' };
    const rumor = { ...unsigned, id: getEventHash(unsigned) };
    const key = nip44.v2.utils.getConversationKey(alice.secretKey, agent.pubkey);
    const seal = finalizeEvent({ kind: 13, tags: [], content: nip44.v2.encrypt(JSON.stringify(rumor), key), created_at: now() }, alice.secretKey);
    const badSeal = { ...seal, sig: seal.sig.replace(/^./, (c) => (c === '0' ? '1' : '0')) };
    await client.publish(createWrap(badSeal, agent.pubkey));

    const honest = nip17.wrapEvent(alice.secretKey, { publicKey: agent.pubkey }, 'really alice');
    await client.publish(honest);
    await waitFor(() => consumer.delivered().length === 1, 10_000, 'the honest DM');
    await waitFor(() => consumer.inbound.counts('bob')!.received === 3, 5000, 'all three handled');
    expect(consumer.delivered()[0]!.envelope.payload).toMatchObject({ nostr: { content: 'really alice', pubkey: alice.pubkey } });
    expect(consumer.inbound.counts('bob')!.dropped).toMatchObject({ seal_pubkey_mismatch: 1, bad_seal: 1 });
    expect(consumer.store.isProcessed('bob', impersonation.rumorId)).toBe(false);
  });

  it('the same DM through two relays, and wrapped twice, is one draft', async () => {
    const one = await startRelay(tempDir());
    const two = await startRelay(tempDir());
    const { consumer, agent } = await agentOn([one.url, two.url]);
    const alice = person();
    const wrap = nip17.wrapEvent(alice.secretKey, { publicKey: agent.pubkey }, 'said once');
    const dm = legacyDm(alice, agent.pubkey, 'legacy, once');
    const c1 = await plainClient(one.url);
    const c2 = await plainClient(two.url);
    await Promise.all([c1.publish(wrap), c2.publish(wrap), c1.publish(dm), c2.publish(dm)]);
    // A second wrap of the same message (what a client resending it would publish).
    const rumor = nip17.unwrapEvent(wrap, agent.secretKey);
    const key = nip44.v2.utils.getConversationKey(alice.secretKey, agent.pubkey);
    const reseal = finalizeEvent({ kind: 13, tags: [], content: nip44.v2.encrypt(JSON.stringify(rumor), key), created_at: now() }, alice.secretKey);
    await c2.publish(createWrap(reseal, agent.pubkey));

    await waitFor(() => consumer.inbound.counts('bob')!.received === 5, 10_000, 'all five events');
    await sleep(200);
    expect(consumer.delivered().map((d) => d.envelope.id).sort()).toEqual([rumor.id, dm.id].sort());
    expect(consumer.inbound.counts('bob')).toMatchObject({ delivered: 2, duplicates: 3 });
  });

  it('a sender policy with an allow list delivers only from the listed pubkeys', async () => {
    const relay = await startRelay(tempDir());
    const alice = person();
    const stranger = person();
    const { consumer, agent } = await agentOn([relay.url], {}, { senders: [nip19.npubEncode(alice.pubkey)] });
    const client = await plainClient(relay.url);
    await client.publish(legacyDm(stranger, agent.pubkey, 'let me in'));
    await client.publish(nip17.wrapEvent(stranger.secretKey, { publicKey: agent.pubkey }, 'please'));
    await client.publish(legacyDm(alice, agent.pubkey, 'hi, friend'));
    await waitFor(() => consumer.inbound.counts('bob')!.received === 3, 10_000, 'three events');
    expect(consumer.delivered().map((d) => d.envelope.payload)).toMatchObject([{ nostr: { content: 'hi, friend' } }]);
    expect(consumer.inbound.counts('bob')!.dropped.sender_not_allowed).toBe(2);
  });

  it('a sender past the rate limit is dropped and counted; others are not affected; the bucket refills', async () => {
    const relay = await startRelay(tempDir());
    let clock = Date.now();
    const { consumer, agent } = await agentOn([relay.url], { inbound: { now: () => clock } }, { per_minute: 3 });
    const noisy = person();
    const quiet = person();
    const client = await plainClient(relay.url);
    for (let i = 0; i < 5; i++) await client.publish(legacyDm(noisy, agent.pubkey, `noise ${i}`));
    await client.publish(legacyDm(quiet, agent.pubkey, 'one quiet word'));
    await waitFor(() => consumer.inbound.counts('bob')!.received === 6, 10_000, 'six events');
    const texts = () => consumer.delivered().map((d) => (d.envelope.payload as { nostr: { content: string } }).nostr.content);
    expect(texts()).toEqual(['noise 0', 'noise 1', 'noise 2', 'one quiet word']);
    expect(consumer.inbound.counts('bob')!.dropped.rate_limited).toBe(2);

    clock += 20_000; // a third of a minute: one token back
    await client.publish(legacyDm(noisy, agent.pubkey, 'later'));
    await client.publish(legacyDm(noisy, agent.pubkey, 'too soon'));
    await waitFor(() => consumer.inbound.counts('bob')!.received === 8, 10_000, 'two more');
    expect(texts().slice(4)).toEqual(['later']);
    expect(consumer.inbound.counts('bob')!.dropped.rate_limited).toBe(3);
  });
});
