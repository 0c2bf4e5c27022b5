/**
 * The test relay itself (test/support/nostr-relay.ts), used by a plain nostr-tools client: it is what
 * the other Nostr tests stand on, so it must behave as a relay does, across a SIGKILL too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { finalizeEvent, verifyEvent, type Event } from 'nostr-tools/pure';
import { cleanup, tempDir } from '../helpers.js';
import { startRelay, stopRelays } from '../support/nostr-relay.js';
import { closeClients, person, plainClient, query, waitFor } from './support.js';

afterEach(async () => {
  closeClients();
  await stopRelays();
  cleanup();
});

const now = () => Math.floor(Date.now() / 1000);
const note = (sk: Uint8Array, content: string): Event => finalizeEvent({ kind: 1, tags: [], content, created_at: now() }, sk);

describe('test relay', () => {
  it('publishes to a live subscription and answers stored queries, also after SIGKILL and restart on the same port', async () => {
    const relay = await startRelay(tempDir());
    const alice = person();
    const reader = await plainClient(relay.url);
    const live: Event[] = [];
    reader.subscribe([{ kinds: [1], authors: [alice.pubkey] }], { onevent: (e) => live.push(e) });
    const writer = await plainClient(relay.url);
    const event = note(alice.secretKey, 'hello');
    await expect(writer.publish(event)).resolves.toBeDefined();
    await waitFor(() => live.length === 1, 5000, 'the live event');
    expect(live[0]!.id).toBe(event.id);
    expect(verifyEvent(live[0]!)).toBe(true);

    const port = relay.port;
    const pid = relay.pid;
    await relay.restart();
    expect(relay.port).toBe(port);
    expect(relay.pid).not.toBe(pid);
    const again = await plainClient(relay.url);
    const stored = await query(again, { ids: [event.id] });
    expect(stored.map((e) => e.id)).toEqual([event.id]);
  });

  it('rejects an event whose signature does not verify', async () => {
    const relay = await startRelay(tempDir());
    const alice = person();
    const client = await plainClient(relay.url);
    const event = note(alice.secretKey, 'signed');
    const forged = { ...event, sig: event.sig.slice(0, -2) + (event.sig.endsWith('00') ? '11' : '00') };
    await expect(client.publish(forged)).rejects.toThrow(/signature is wrong/);
    expect(await query(client, { ids: [event.id] })).toEqual([]);
  });

  it('demands NIP-42 AUTH for REQ and EVENT when asked to, and serves after AUTH', async () => {
    const relay = await startRelay(tempDir(), { auth: true });
    const alice = person();
    const client = await plainClient(relay.url);
    const event = note(alice.secretKey, 'after auth');
    await expect(client.publish(event)).rejects.toThrow(/^auth-required:/);
    const closed = await new Promise<string>((resolve) => client.subscribe([{ kinds: [1] }], { onclose: resolve }));
    expect(closed).toMatch(/^auth-required:/);

    await client.auth(async (template) => finalizeEvent(template, alice.secretKey));
    await expect(client.publish(event)).resolves.toBeDefined();
    expect((await query(client, { ids: [event.id] })).map((e) => e.id)).toEqual([event.id]);
  });

  it('in hostile mode stores and serves an event with a forged signature (for the client-side checks)', async () => {
    const relay = await startRelay(tempDir(), { acceptForged: true });
    const alice = person();
    const client = await plainClient(relay.url);
    const event = note(alice.secretKey, 'genuine');
    const forged = { ...event, content: 'tampered' };
    await client.publish(forged);
    // A plain nostr-tools client drops it (verifyEvent fails); the raw message is what the relay sent.
    const raw = await new Promise<string>((resolve) => {
      client.subscribe([{ ids: [event.id] }], {
        oninvalidevent: (e) => resolve((e as Event).content),
        oneose: () => resolve('nothing'),
      });
    });
    expect(raw).toBe('tampered');
  });
});
