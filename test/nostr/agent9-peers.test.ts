/**
 * Nostr beyond one relay and one server: a relay that demands NIP-42 AUTH (each agent authenticates
 * with its own key; the outside user with theirs), and two agent9 servers on one relay whose agents
 * talk to each other through it, each seeing the other as `nostr:<npub>`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as nip19 from 'nostr-tools/nip19';
import { tempDir } from '../helpers.js';
import { startRelay } from '../support/nostr-relay.js';
import { authenticate, closeEverything, giftWrappedDm, person, plainClient, waitFor } from './support.js';
import { closeServers, inboxOf, nostrAgent, nostrServer, outbox, readJson, receiving, triggers } from './server-support.js';

afterEach(async () => {
  await closeServers();
  await closeEverything();
});

describe('nostr: AUTH relays and other servers', () => {
  it('on a relay that demands AUTH, the agent authenticates as itself, receives the DM and its reply reaches the authenticated sender', async () => {
    const relay = await startRelay(tempDir(), { auth: true });
    const a9 = await nostrServer({ relays: [relay.url] });
    const bob = await nostrAgent(a9, { name: 'bob' });
    await receiving(a9, 'bob');
    const [state] = a9.nostr!.relayStates('bob');
    expect(state).toMatchObject({ pubkey: bob, status: 'connected' });
    const relayFile = (await readJson(a9, `/agents/bob/nostr/relays/ws:127.0.0.1:${relay.port}`)) as { pubkey: string; shared: boolean; status: string };
    expect(relayFile).toMatchObject({ pubkey: bob, shared: false, status: 'connected' });

    const alice = person();
    const client = await plainClient(relay.url);
    await authenticate(client, alice);
    const replies = inboxOf(client, alice);
    const { wrap } = giftWrappedDm(alice, bob, 'behind auth');
    await client.publish(wrap);
    await waitFor(() => replies.messages().length === 1, 15_000, 'the reply');
    expect(replies.messages()[0]).toMatchObject({ from: bob, text: 'behind auth', kind: 14 });
  });

  it('two agent9 servers on one relay: an agent on A writes to an agent on B by npub, B\'s echo answers, A receives the answer', async () => {
    const relay = await startRelay(tempDir());
    const serverA = await nostrServer({ relays: [relay.url] });
    const serverB = await nostrServer({ relays: [relay.url] });
    const bPub = await nostrAgent(serverB, { name: 'bee' });
    const bNpub = nip19.npubEncode(bPub);
    // A's agent sends once, when ticked through its ctl, and answers nothing it receives (no ping-pong).
    const script = `
      let input = ''; process.stdin.on('data', (d) => (input += d)).on('end', () => {
        const t = JSON.parse(input).triggers;
        const start = t.some((x) => x.type === 'ctl');
        console.log(JSON.stringify(start ? { outbox: [{ to: 'nostr:${bNpub}', payload: { text: 'hello from A' } }] } : {}));
      });`;
    const aPub = await nostrAgent(serverA, { name: 'ay', program: { type: 'exec', command: [process.execPath, '-e', script] } });
    await receiving(serverA, 'ay');
    await receiving(serverB, 'bee');

    await serverA.namespace.writeFile('/agents/ay/ctl', new TextEncoder().encode('tick'), {}, { principal: { id: 'admin', admin: true } });
    // B received it from A's identity, answered it; A received the answer from B's identity.
    await waitFor(async () => (await triggers(serverB, 'bee')).length === 1, 20_000, 'B got the message');
    const [atB] = await triggers(serverB, 'bee');
    expect(atB).toMatchObject({ from: `nostr:${nip19.npubEncode(aPub)}`, source: 'nostr' });
    await waitFor(async () => (await triggers(serverA, 'ay')).length === 1, 20_000, 'A got the answer');
    const [atA] = await triggers(serverA, 'ay');
    expect(atA).toMatchObject({ from: `nostr:${bNpub}`, source: 'nostr' });
    const [sent] = await outbox(serverA, 'ay');
    const rec = (await readJson(serverA, `/agents/ay/nostr/outgoing/${sent!.id}.json`)) as { status: string; scheme: string; message_id: string };
    expect(rec).toMatchObject({ status: 'sent', scheme: 'nip17' });
    expect(atB!.envelope_id).toBe(rec.message_id);
  });
});
