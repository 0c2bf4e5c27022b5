/**
 * Nothing lost, nothing doubled: the relay SIGKILLed and restarted mid-subscription; the consumer
 * closed and opened again on the same SQLite file while DMs were sent (gift wraps back-dated by up to
 * two days included); a relay that demands AUTH; a delivery that fails is taken again later.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { finalizeEvent, generateSecretKey, getEventHash, type Event } from 'nostr-tools/pure';
import * as nip17 from 'nostr-tools/nip17';
import * as nip44 from 'nostr-tools/nip44';
import { openStorage, tempDir } from '../helpers.js';
import { startRelay } from '../support/nostr-relay.js';
import { normalizeRelayUrl, GIFT_WRAP_BACKDATE_SEC } from '../../src/services/nostr/pool.js';
import { NostrInbound } from '../../src/services/nostr/inbound.js';
import { NostrStore } from '../../src/services/nostr/store.js';
import { authenticate, bobAndAlice, closeEverything, legacyDm, openConsumer, person, plainClient, sleep, waitFor, type Consumer, type Person } from './support.js';

afterEach(closeEverything);

const now = () => Math.floor(Date.now() / 1000);


/** A NIP-17 DM whose seal and gift wrap carry the oldest time NIP-59 allows: two days back, less `slackSec`. */
function backdatedWrap(from: Person, to: string, text: string, slackSec = 120): Event {
  const at = now() - GIFT_WRAP_BACKDATE_SEC + slackSec;
  const unsigned = { kind: 14, pubkey: from.pubkey, created_at: now(), tags: [['p', to]], content: text };
  const rumor = { ...unsigned, id: getEventHash(unsigned) };
  const seal = finalizeEvent({ kind: 13, tags: [], content: nip44.v2.encrypt(JSON.stringify(rumor), nip44.v2.utils.getConversationKey(from.secretKey, to)), created_at: at }, from.secretKey);
  const oneTime = generateSecretKey();
  return finalizeEvent({ kind: 1059, tags: [['p', to]], content: nip44.v2.encrypt(JSON.stringify(seal), nip44.v2.utils.getConversationKey(oneTime, to)), created_at: at }, oneTime);
}

const texts = (c: Consumer) => c.delivered().map((d) => (d.envelope.payload as { nostr: { content: string } }).nostr.content);

describe('nostr: no loss, no duplicate', () => {
  it('the relay is SIGKILLed and restarted mid-subscription: the pool comes back, every DM arrives once', async () => {
    const { relay, consumer, bob, alice, client } = await bobAndAlice();
    await client.publish(nip17.wrapEvent(alice.secretKey, { publicKey: bob.pubkey }, 'one'));
    await client.publish(legacyDm(alice, bob.pubkey, 'two'));
    await waitFor(() => consumer.delivered().length === 2, 15_000, 'the first two');

    await relay.kill();
    await relay.restart();
    const again = await plainClient(relay.url);
    await again.publish(nip17.wrapEvent(alice.secretKey, { publicKey: bob.pubkey }, 'three'));
    await again.publish(legacyDm(alice, bob.pubkey, 'four'));
    await waitFor(() => consumer.delivered().length === 4, 15_000, 'all four');
    // The resubscription asks from the point minus the margin: "one" and "two" come again and are dropped.
    await waitFor(() => consumer.inbound.counts('bob')!.duplicates >= 2, 10_000, 'the repeats');
    await sleep(300);
    expect(texts(consumer).sort()).toEqual(['four', 'one', 'three', 'two']);
    const ids = consumer.delivered().map((d) => d.envelope.id);
    expect(new Set(ids).size).toBe(4);
    expect(consumer.pool.states()[0]).toMatchObject({ status: 'connected', counts: { reconnects: 1 } });
  });

  it('the consumer is away while DMs are sent (one back-dated two days): after it opens again each arrives once', async () => {
    const relay = await startRelay(tempDir());
    const dir = tempDir();
    const bob = person();
    const alice = person();
    const first = openConsumer(dir);
    first.receiver.watch({ agentId: 'bob', signer: bob.signer, relays: [relay.url] });
    const client = await plainClient(relay.url);
    await client.publish(legacyDm(alice, bob.pubkey, 'before'));
    await waitFor(() => first.delivered().length === 1, 15_000, 'the first DM');
    const point = first.store.cursor('bob', normalizeRelayUrl(relay.url)).load();
    expect(point).toBeDefined();
    await first.close();

    const old = backdatedWrap(alice, bob.pubkey, 'sent while away, wrapped two days back');
    await client.publish(old);
    await client.publish(nip17.wrapEvent(alice.secretKey, { publicKey: bob.pubkey }, 'sent while away, nip-17'));
    await client.publish(legacyDm(alice, bob.pubkey, 'sent while away, nip-04'));

    const second = openConsumer(dir);
    second.receiver.watch({ agentId: 'bob', signer: bob.signer, relays: [relay.url] });
    await waitFor(() => second.delivered().length === 4, 15_000, 'the three sent while away');
    await waitFor(() => second.inbound.counts('bob')!.duplicates >= 1, 10_000, '"before" dropped as a repeat');
    await sleep(300);
    expect(old.created_at).toBeLessThan(point! - GIFT_WRAP_BACKDATE_SEC + 600);
    expect(texts(second).sort()).toEqual(['before', 'sent while away, nip-04', 'sent while away, nip-17', 'sent while away, wrapped two days back']);
    expect(new Set(second.delivered().map((d) => d.envelope.id)).size).toBe(4);
    expect(second.inbound.counts('bob')).toMatchObject({ delivered: 3, duplicates: 1 });
  });

  it('a relay that demands AUTH: the agent authenticates with its own key and receives its DMs', async () => {
    const { consumer, bob, alice, client } = await bobAndAlice({ auth: true });
    await authenticate(client, alice);
    await client.publish(nip17.wrapEvent(alice.secretKey, { publicKey: bob.pubkey }, 'behind auth, nip-17'));
    await client.publish(legacyDm(alice, bob.pubkey, 'behind auth, nip-04'));
    await waitFor(() => consumer.delivered().length === 2, 15_000, 'both DMs');
    expect(texts(consumer).sort()).toEqual(['behind auth, nip-04', 'behind auth, nip-17']);
    const own = consumer.pool.states().find((s) => s.pubkey === bob.pubkey);
    expect(own).toMatchObject({ status: 'connected', subscriptions: 1 });
  });

  it('a delivery that fails records nothing: the same event is taken when it comes again', async () => {
    const storage = openStorage(tempDir());
    const store = new NostrStore(storage);
    const bob = person();
    const alice = person();
    let refuse = true;
    const inbox: string[] = [];
    const inbound = new NostrInbound(store, (d) => {
      if (refuse) throw new Error('inbox full');
      inbox.push(d.envelope.id);
    });
    inbound.addAgent({ agentId: 'bob', signer: bob.signer });
    const dm = legacyDm(alice, bob.pubkey, 'retry me');
    expect(await inbound.process('bob', dm, 'ws://relay.example/')).toEqual({ status: 'failed', error: 'inbox full' });
    expect(store.isProcessed('bob', dm.id)).toBe(false);
    refuse = false;
    expect(await inbound.process('bob', dm, 'ws://relay.example/')).toMatchObject({ status: 'delivered' });
    expect(await inbound.process('bob', dm, 'ws://relay.example/')).toEqual({ status: 'duplicate', id: dm.id });
    expect(inbox).toEqual([dm.id]);
    expect(store.outcome('bob', dm.id)).toBe('delivered');
  });
});
