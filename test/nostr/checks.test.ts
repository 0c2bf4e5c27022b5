/**
 * The checks of inbound processing, event by event (events may come from anywhere: here they are
 * handed over directly, the store is real SQLite): malformed, not addressed, unsupported kinds, a
 * message whose id is not its hash, the agent's own messages; and the policy parser's errors.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { finalizeEvent, getEventHash, type Event } from 'nostr-tools/pure';
import * as nip17 from 'nostr-tools/nip17';
import * as nip44 from 'nostr-tools/nip44';
import { createWrap } from 'nostr-tools/nip59';
import { cleanup, openStorage, tempDir } from '../helpers.js';
import { NostrInbound, type InboxDraft } from '../../src/services/nostr/inbound.js';
import { NostrStore } from '../../src/services/nostr/store.js';
import { parseNostrReachPolicy } from '../../src/services/nostr/policy.js';
import { legacyDm, person, type Person } from './support.js';

afterEach(() => cleanup());

const RELAY = 'ws://relay.example/';
const now = () => Math.floor(Date.now() / 1000);

function setup() {
  const storage = openStorage(tempDir());
  const store = new NostrStore(storage);
  const drafts: InboxDraft[] = [];
  const inbound = new NostrInbound(store, (d) => void drafts.push(d));
  const bob = person();
  inbound.addAgent({ agentId: 'bob', signer: bob.signer });
  return { store, inbound, bob, drafts, process: (e: unknown) => inbound.process('bob', e, RELAY) };
}

/** A gift wrap around `rumor` sealed by `sealer`, as a (mis)behaving client could build it. */
function wrapRumor(sealer: Person, to: string, rumor: Record<string, unknown>): Event {
  const seal = finalizeEvent({ kind: 13, tags: [], content: nip44.v2.encrypt(JSON.stringify(rumor), nip44.v2.utils.getConversationKey(sealer.secretKey, to)), created_at: now() }, sealer.secretKey);
  return createWrap(seal, to);
}

describe('nostr inbound checks', () => {
  it('drops what is not a signed event, not for this agent, or of another kind, and records none of it', async () => {
    const { process, bob, store, inbound } = setup();
    const alice = person();
    expect(await process({ kind: 4, content: 'x' })).toMatchObject({ status: 'dropped', reason: 'malformed' });
    expect(await process('not even an object')).toMatchObject({ status: 'dropped', reason: 'malformed' });
    const toOther = legacyDm(alice, person().pubkey, 'not for bob');
    expect(await process(toOther)).toMatchObject({ status: 'dropped', reason: 'not_addressed' });
    const reaction = finalizeEvent({ kind: 7, tags: [['p', bob.pubkey]], content: '+', created_at: now() }, alice.secretKey);
    expect(await process(reaction)).toMatchObject({ status: 'dropped', reason: 'unsupported_kind' });
    expect(store.processedCount('bob')).toBe(0);
    expect(inbound.counts('bob')).toMatchObject({ received: 4, delivered: 0, dropped: { malformed: 2, not_addressed: 1, unsupported_kind: 1 } });
  });

  it('drops a gift-wrapped message whose id is not the hash of its content, and one of a kind other than 14', async () => {
    const { process, bob, drafts, store } = setup();
    const alice = person();
    const unsigned = { kind: 14, pubkey: alice.pubkey, created_at: now(), tags: [['p', bob.pubkey]], content: 'hi' };
    const lying = wrapRumor(alice, bob.pubkey, { ...unsigned, id: 'f'.repeat(64) });
    expect(await process(lying)).toMatchObject({ status: 'dropped', reason: 'bad_rumor' });
    expect(store.isProcessed('bob', 'f'.repeat(64))).toBe(false);
    expect(store.outcome('bob', lying.id)).toBe('dropped:bad_rumor');
    const reaction = { ...unsigned, kind: 7 };
    expect(await process(wrapRumor(alice, bob.pubkey, { ...reaction, id: getEventHash(reaction) }))).toMatchObject({ status: 'dropped', reason: 'unsupported_kind' });
    expect(drafts).toEqual([]);
  });

  it("drops the agent's own messages (a NIP-17 copy to itself) and a gift wrap that does not open", async () => {
    const { process, bob, inbound } = setup();
    const alice = person();
    expect(await process(nip17.wrapEvent(bob.secretKey, { publicKey: bob.pubkey }, 'note to self'))).toMatchObject({ status: 'dropped', reason: 'own_event' });
    const forAlice = nip17.wrapEvent(bob.secretKey, { publicKey: alice.pubkey }, 'for alice');
    const readdressed = finalizeEvent({ kind: 1059, tags: [['p', bob.pubkey]], content: forAlice.content, created_at: now() }, alice.secretKey);
    expect(await process(readdressed)).toMatchObject({ status: 'dropped', reason: 'undecryptable' });
    expect(inbound.counts('bob')!.dropped).toMatchObject({ own_event: 1, undecryptable: 1 });
  });

  it('a repeat of a dropped event is a duplicate, not a second judgement', async () => {
    const { process, bob, inbound } = setup();
    inbound.setPolicy('bob', parseNostrReachPolicy({ senders: [] }, '/agents/bob/config'));
    const dm = legacyDm(person(), bob.pubkey, 'knock knock');
    expect(await process(dm)).toMatchObject({ status: 'dropped', reason: 'sender_not_allowed' });
    expect(await process(dm)).toEqual({ status: 'duplicate', id: dm.id });
    expect(inbound.counts('bob')).toMatchObject({ duplicates: 1, dropped: { sender_not_allowed: 1 } });
  });

  it('the policy parser names the path and the field in its errors', () => {
    const path = '/agents/bob/config';
    expect(parseNostrReachPolicy(undefined, path)).toMatchObject({ senders: 'anyone', perMinute: 10 });
    expect(() => parseNostrReachPolicy({ senders: ['nope'] }, path)).toThrow(/senders\[0\]/);
    expect(() => parseNostrReachPolicy({ senders: 'everyone' }, path)).toThrow(/"anyone" or a list/);
    expect(() => parseNostrReachPolicy({ per_minute: -1 }, path)).toThrow(/per_minute/);
    expect(() => parseNostrReachPolicy({ rate: 5 }, path)).toThrow(/unknown field "rate"/);
    try {
      parseNostrReachPolicy('x', path);
    } catch (err) {
      expect(err).toMatchObject({ code: 'EINVAL', path });
    }
  });

  it('refuses a retention of processed ids that is not longer than the resume margin', () => {
    const storage = openStorage(tempDir());
    expect(() => new NostrStore(storage, { retentionMs: 24 * 3600 * 1000 })).toThrow(/longer than the resume margin/);
  });

  it('sweeps processed ids once their retention has passed', () => {
    const storage = openStorage(tempDir());
    let clock = Date.now();
    const store = new NostrStore(storage, { now: () => clock });
    store.markProcessed('bob', ['a'.repeat(64)], 'delivered', now());
    clock += store.retentionMs - 1000;
    expect(store.sweep()).toBe(0);
    clock += 2000;
    expect(store.sweep()).toBe(1);
    expect(store.isProcessed('bob', 'a'.repeat(64))).toBe(false);
  });
});
