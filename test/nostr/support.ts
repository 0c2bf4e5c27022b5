/**
 * Shared parts of the Nostr tests: people with keys (the outside users, and agents' signers), a plain
 * nostr-tools client as an outside user would run it, consumers (consumer.ts) closed after each test.
 */
import { vi } from 'vitest';
import WebSocket from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import type { Filter } from 'nostr-tools/filter';
import * as nip04 from 'nostr-tools/nip04';
import * as nip59 from 'nostr-tools/nip59';
import { cleanup, openStorage, tempDir } from '../helpers.js';
import { startRelay, stopRelays, type TestRelay, type TestRelayOptions } from '../support/nostr-relay.js';
import { assembleConsumer, type Consumer, type ConsumerOptions } from './consumer.js';
import { secretKeySigner, type NostrSigner } from '../../src/services/nostr/signer.js';

useWebSocketImplementation(WebSocket);

export { QUICK, type Consumer } from './consumer.js';

export interface Person {
  secretKey: Uint8Array;
  pubkey: string;
  signer: NostrSigner;
}

export function person(): Person {
  const secretKey = generateSecretKey();
  return { secretKey, pubkey: getPublicKey(secretKey), signer: secretKeySigner(secretKey) };
}

const clients: Relay[] = [];

/** A plain nostr-tools client, the way someone outside agent9 talks to a relay. */
export async function plainClient(url: string): Promise<Relay> {
  const relay = await Relay.connect(url);
  clients.push(relay);
  return relay;
}

/** NIP-42 AUTH of a plain client as `who`, once the relay's challenge has arrived. */
export async function authenticate(relay: Relay, who: Person): Promise<void> {
  await waitFor(() => relay.auth(async (t) => finalizeEvent(t, who.secretKey)).then(() => true, () => false), 5000, 'AUTH accepted');
}

export function closeClients(): void {
  while (clients.length) clients.pop()!.close();
}

/** The events a plain client finds for `filter` (the stored ones, until EOSE). */
export function query(relay: Relay, filter: Filter): Promise<Event[]> {
  return new Promise((resolve) => {
    const found: Event[] = [];
    const sub = relay.subscribe([filter], {
      onevent: (e) => found.push(e),
      oneose: () => {
        sub.close();
        resolve(found);
      },
    });
  });
}

const nowSec = () => Math.floor(Date.now() / 1000);

/** A legacy NIP-04 DM as an outside client makes it. */
export function legacyDm(from: Person, to: string, text: string): Event {
  return finalizeEvent({ kind: 4, tags: [['p', to]], content: nip04.encrypt(from.secretKey, to, text), created_at: nowSec() }, from.secretKey);
}

/** Polls `check` until it gives a value other than undefined or false (vitest's waitFor underneath). */
export function waitFor<T>(check: () => T | Promise<T>, ms = 10_000, what = 'condition'): Promise<Exclude<T, undefined | false>> {
  return vi.waitFor(
    async () => {
      const v = await check();
      if (v === undefined || v === false) throw new Error(`timed out waiting for ${what}`);
      return v as Exclude<T, undefined | false>;
    },
    { timeout: ms, interval: 20 },
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A relay URL nothing listens on: a relay started and killed. */
export async function deadRelayUrl(): Promise<string> {
  const relay = await startRelay(tempDir());
  await relay.kill();
  return relay.url;
}

const consumers: Consumer[] = [];

/** A consumer on the SQLite database in `dir` (see consumer.ts), closed after the test. */
export function openConsumer(dir: string, options: ConsumerOptions = {}): Consumer {
  const consumer = assembleConsumer(openStorage(dir), options);
  consumers.push(consumer);
  return consumer;
}

/** The usual scene: a relay, a consumer with agent "bob" watching it, and "alice" outside with a plain client. */
export async function bobAndAlice(relayOptions: TestRelayOptions = {}): Promise<{ relay: TestRelay; consumer: Consumer; bob: Person; alice: Person; client: Relay }> {
  const relay = await startRelay(tempDir(), relayOptions);
  const consumer = openConsumer(tempDir());
  const bob = person();
  consumer.receiver.watch({ agentId: 'bob', signer: bob.signer, relays: [relay.url] });
  return { relay, consumer, bob, alice: person(), client: await plainClient(relay.url) };
}

export async function closeConsumers(): Promise<void> {
  while (consumers.length) await consumers.pop()!.close();
}

/** What every Nostr test ends with: clients, consumers and relays closed, temporary files gone. */
export async function closeEverything(): Promise<void> {
  closeClients();
  await closeConsumers();
  await stopRelays();
  cleanup();
}

/** A NIP-17 DM as an outside client makes it (nostr-tools' seal and wrap, with the standard back-dating), and the id its recipient sees. */
export function giftWrappedDm(from: Person, to: string, text: string): { wrap: Event; rumorId: string } {
  const rumor = nip59.createRumor({ kind: 14, content: text, tags: [['p', to]], created_at: nowSec() }, from.secretKey);
  return { wrap: nip59.createWrap(nip59.createSeal(rumor, from.secretKey, to), to), rumorId: rumor.id };
}
