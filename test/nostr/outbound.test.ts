/**
 * Outbound through a real relay: a DM received over NIP-17 or NIP-04 is answered in the same scheme and
 * decrypts at the outside user's plain nostr-tools client; any event template is signed by the agent's
 * signer and published, with every relay's answer; bad templates get clear errors naming the path.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { verifyEvent, type Event } from 'nostr-tools/pure';
import * as nip04 from 'nostr-tools/nip04';
import * as nip17 from 'nostr-tools/nip17';
import { expectCode, tempDir } from '../helpers.js';
import { startRelay } from '../support/nostr-relay.js';
import { normalizeRelayUrl, GIFT_WRAP_BACKDATE_SEC } from '../../src/services/nostr/pool.js';
import { buildDm, parseEventTemplate, publishTemplate, sendDm, buildDmReply } from '../../src/services/nostr/outbound.js';
import type { NostrMessage } from '../../src/services/nostr/inbound.js';
import { bobAndAlice, closeEverything, deadRelayUrl, legacyDm, openConsumer, person, plainClient, query, waitFor } from './support.js';

afterEach(closeEverything);

const now = () => Math.floor(Date.now() / 1000);

describe('nostr outbound', () => {
  it('a NIP-17 DM in, a NIP-17 reply out that the sender unwraps; a NIP-04 DM in, a NIP-04 reply out', async () => {
    const { relay, consumer, bob, alice, client } = await bobAndAlice();
    const inbox: Event[] = [];
    client.subscribe([{ kinds: [1059, 4], '#p': [alice.pubkey] }], { onevent: (e) => inbox.push(e) });

    await client.publish(nip17.wrapEvent(alice.secretKey, { publicKey: bob.pubkey }, 'ping 17'));
    await client.publish(legacyDm(alice, bob.pubkey, 'ping 04'));
    await waitFor(() => consumer.delivered().length === 2, 15_000, 'both DMs');
    const [viaNip17, viaNip04] = consumer.delivered().map((d) => d.envelope.payload.nostr);

    const sent: string[] = [];
    for (const message of [viaNip17!, viaNip04!]) {
      const reply = await buildDmReply(bob.signer, message, `pong to ${message.content}`);
      const answers = await consumer.pool.publish(reply.event, [relay.url], { signer: bob.signer });
      expect(answers).toEqual({ [normalizeRelayUrl(relay.url)]: 'ok' });
      sent.push(reply.message_id);
    }
    await waitFor(() => inbox.length === 2, 10_000, 'both replies at alice');
    const wrap = inbox.find((e) => e.kind === 1059)!;
    const legacy = inbox.find((e) => e.kind === 4)!;

    const rumor = nip17.unwrapEvent(wrap, alice.secretKey);
    expect(rumor).toMatchObject({ kind: 14, pubkey: bob.pubkey, content: 'pong to ping 17' });
    expect(rumor.tags).toEqual([['p', alice.pubkey], ['e', viaNip17!.event_id]]);
    expect(rumor.id).toBe(sent[0]);
    expect(wrap.pubkey).not.toBe(bob.pubkey); // a one-time key
    expect(wrap.created_at).toBeLessThanOrEqual(now());
    expect(wrap.created_at).toBeGreaterThan(now() - GIFT_WRAP_BACKDATE_SEC - 5);

    expect(verifyEvent(legacy)).toBe(true);
    expect(legacy.pubkey).toBe(bob.pubkey);
    expect(nip04.decrypt(alice.secretKey, bob.pubkey, legacy.content)).toBe('pong to ping 04');
    expect(legacy.tags).toEqual([['p', alice.pubkey], ['e', viaNip04!.event_id]]);
  });

  it('sendDm publishes to every relay with retries: the live one says ok, the dead one its error', async () => {
    const live = await startRelay(tempDir());
    const gone = await deadRelayUrl();
    const consumer = openConsumer(tempDir(), { pool: { publishAttempts: 2 } });
    const bob = person();
    const alice = person();
    const report = await sendDm(consumer.pool, bob.signer, { to: alice.pubkey, text: 'anyone there?', scheme: 'nip17' }, [live.url, gone]);
    expect(report.scheme).toBe('nip17');
    expect(report.relays[normalizeRelayUrl(live.url)]).toBe('ok');
    expect(report.relays[normalizeRelayUrl(gone)]).toMatch(/ECONNREFUSED.*after 2 attempts/);
    const client = await plainClient(live.url);
    const [wrap] = await query(client, { ids: [report.event_id] });
    expect(nip17.unwrapEvent(wrap!, alice.secretKey)).toMatchObject({ id: report.message_id, content: 'anyone there?' });
  });

  it('publishes any event template signed by the agent and answers its id and each relay', async () => {
    const relay = await startRelay(tempDir());
    const consumer = openConsumer(tempDir());
    const bob = person();
    const template = parseEventTemplate({ kind: 30078, tags: [['d', 'agent9-test']], content: '{"state":1}' }, '/agents/bob/nostr/publish');
    const report = await publishTemplate(consumer.pool, bob.signer, template, [relay.url]);
    expect(report.relays).toEqual({ [normalizeRelayUrl(relay.url)]: 'ok' });
    const [stored] = await query(await plainClient(relay.url), { ids: [report.event_id] });
    expect(stored).toMatchObject({ kind: 30078, pubkey: bob.pubkey, tags: [['d', 'agent9-test']], content: '{"state":1}' });
    expect(verifyEvent(stored!)).toBe(true);
  });

  it('refuses bad templates and DMs with errors that name the path', async () => {
    const path = '/agents/bob/nostr/publish';
    expect(() => parseEventTemplate({ kind: -1 }, path)).toThrow(/kind must be an integer/);
    expect(() => parseEventTemplate({ kind: 1, tags: [[1]] }, path)).toThrow(/tags must be a list/);
    expect(() => parseEventTemplate({ kind: 1, content: 5 }, path)).toThrow(/content must be a string/);
    expect(() => parseEventTemplate({ kind: 1, sig: 'x' }, path)).toThrow(/unknown field "sig"/);
    expect(() => parseEventTemplate([], path)).toThrow(/expected an object/);
    try {
      parseEventTemplate({ kind: 1.5 }, path);
    } catch (err) {
      expect(err).toMatchObject({ code: 'EINVAL', path });
    }
    const bob = person();
    await expectCode(buildDm(bob.signer, { to: 'not a key', text: 'x', scheme: 'nip04' }, '/agents/bob/nostr/dm'), 'EINVAL', '/agents/bob/nostr/dm');
    await expectCode(buildDm(bob.signer, { to: bob.pubkey, text: '', scheme: 'nip17' }, '/agents/bob/nostr/dm'), 'EINVAL');
    await expectCode(buildDm(bob.signer, { to: bob.pubkey, text: 'x'.repeat(65_536), scheme: 'nip17' }, '/agents/bob/nostr/dm'), 'EFBIG');
  });

  it('a reply goes in the scheme of the message it answers', async () => {
    const bob = person();
    const alice = person();
    const base: Pick<NostrMessage, 'pubkey' | 'event_id'> = { pubkey: alice.pubkey, event_id: 'a'.repeat(64) };
    expect((await buildDmReply(bob.signer, { ...base, kind: 4 }, 'x')).event.kind).toBe(4);
    expect((await buildDmReply(bob.signer, { ...base, kind: 14 }, 'x')).event.kind).toBe(1059);
  });
});
