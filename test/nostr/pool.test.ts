/**
 * The relay pool against real relay processes: sharing and per-agent AUTH connections, reconnect and
 * resubscribe after a SIGKILL of the relay, publishing with retries to a dead relay beside a live one,
 * and per-relay state. (The close is tested alone in pool-close.test.ts, where no other test's timers count.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { finalizeEvent, type Event } from 'nostr-tools/pure';
import { cleanup, tempDir } from '../helpers.js';
import { startRelay, stopRelays } from '../support/nostr-relay.js';
import { RelayPool, normalizeRelayUrl, type SubscriptionCursor } from '../../src/services/nostr/pool.js';
import { backoffDelay } from '../../src/services/nostr/timing.js';
import { authenticate, closeClients, deadRelayUrl, person, plainClient, QUICK, sleep, waitFor } from './support.js';

const pools: RelayPool[] = [];
function openPool(options = {}): RelayPool {
  const pool = new RelayPool({ ...QUICK, ...options });
  pools.push(pool);
  return pool;
}

afterEach(async () => {
  while (pools.length) await pools.pop()!.close();
  closeClients();
  await stopRelays();
  cleanup();
});

const now = () => Math.floor(Date.now() / 1000);
const note = (sk: Uint8Array, content: string, tags: string[][] = []): Event => finalizeEvent({ kind: 1, tags, content, created_at: now() }, sk);

describe('relay pool', () => {
  it('shares one connection per relay among subscriptions and reports its state', async () => {
    const relay = await startRelay(tempDir());
    const pool = openPool();
    const alice = person();
    const bob = person();
    const got: string[] = [];
    pool.subscribe({ url: relay.url, filters: [{ kinds: [1], authors: [alice.pubkey] }], signer: alice.signer, onevent: (e) => got.push(`a:${e.content}`) });
    pool.subscribe({ url: relay.url, filters: [{ kinds: [1], authors: [alice.pubkey] }], signer: bob.signer, onevent: (e) => got.push(`b:${e.content}`) });
    await waitFor(() => pool.states()[0]?.status === 'connected', 10_000, 'connected');
    const result = await pool.publish(note(alice.secretKey, 'one'), [relay.url]);
    expect(result).toEqual({ [normalizeRelayUrl(relay.url)]: 'ok' });
    await waitFor(() => got.length === 2, 5000, 'both subscriptions');
    expect(got.sort()).toEqual(['a:one', 'b:one']);
    const states = pool.states();
    expect(states).toHaveLength(1);
    expect(states[0]).toMatchObject({ url: normalizeRelayUrl(relay.url), pubkey: null, status: 'connected', last_error: null, subscriptions: 2 });
    expect(states[0]!.counts).toMatchObject({ in: 2, out: 1, errors: 0, reconnects: 0 });
    expect(states[0]!.connected_since).toBeGreaterThan(Date.now() - 60_000);
    expect(states[0]!.last_event_at).toBeGreaterThanOrEqual(states[0]!.connected_since!);
  });

  it('reconnects after the relay is SIGKILLed and resubscribes from the persisted point minus the margin', async () => {
    const relay = await startRelay(tempDir());
    const pool = openPool({ resumeMarginSec: 3600 });
    const alice = person();
    let point: number | undefined;
    const saved: number[] = [];
    const cursor: SubscriptionCursor = { load: () => point, save: (s) => (saved.push(s), (point = s)) };
    const got: string[] = [];
    pool.subscribe({ url: relay.url, filters: [{ kinds: [1], authors: [alice.pubkey] }], cursor, onevent: (e) => got.push(e.content) });
    await waitFor(() => saved.length > 0, 10_000, 'EOSE saved the point');
    expect(Math.abs(saved[0]! - now())).toBeLessThanOrEqual(2);

    const outside = await plainClient(relay.url);
    await outside.publish(note(alice.secretKey, 'before'));
    await waitFor(() => got.includes('before'), 5000, 'the first event');

    await relay.kill();
    await waitFor(() => pool.states()[0]?.status !== 'connected', 5000, 'the pool noticing');
    expect(['disconnected', 'connecting']).toContain(pool.states()[0]!.status);
    await relay.restart();
    const after = await plainClient(relay.url);
    await after.publish(note(alice.secretKey, 'after'));
    // The resubscription asked from the point minus the margin, so the relay sends "before" again: the
    // pool loses nothing, and repeats are for the inbound side's processed ids to drop.
    const count = (c: string) => got.filter((x) => x === c).length;
    await waitFor(() => count('after') === 1 && count('before') === 2, 15_000, 'the new event and the repeat of the old one');
    await sleep(200);
    expect(got.sort()).toEqual(['after', 'before', 'before']);
    const state = pool.states()[0]!;
    expect(state).toMatchObject({ status: 'connected' });
    expect(state.counts.reconnects).toBe(1);
    expect(state.counts.errors).toBeGreaterThanOrEqual(1);
  });

  it('publishes with retries: a dead relay answers its error after every attempt, a live one "ok"', async () => {
    const live = await startRelay(tempDir());
    const dead = await deadRelayUrl();
    const pool = openPool({ publishAttempts: 3 });
    const alice = person();
    const started = Date.now();
    const result = await pool.publish(note(alice.secretKey, 'hi'), [live.url, dead]);
    expect(result[normalizeRelayUrl(live.url)]).toBe('ok');
    expect(result[normalizeRelayUrl(dead)]).toMatch(/ECONNREFUSED.*\(after 3 attempts\)/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100); // the backoff between tries
    const deadState = pool.states().find((s) => s.url === normalizeRelayUrl(dead))!;
    expect(deadState.status).toMatch(/disconnected|failed/);
    expect(deadState.counts.errors).toBe(3);
    expect(deadState.last_error).toMatch(/ECONNREFUSED/);
    const liveState = pool.states().find((s) => s.url === normalizeRelayUrl(live.url))!;
    expect(liveState.counts).toMatchObject({ out: 1, errors: 0 });
  });

  it('answers a refusal without retrying it', async () => {
    const relay = await startRelay(tempDir());
    const pool = openPool({ publishAttempts: 4 });
    const alice = person();
    const event = note(alice.secretKey, 'x');
    const forged = { ...event, content: 'changed after signing' };
    const result = await pool.publish(forged, [relay.url]);
    expect(result[normalizeRelayUrl(relay.url)]).toMatch(/^invalid: id is wrong$/);
    expect(pool.states()[0]!.counts.out).toBe(1);
  });

  it('gives each agent its own authenticated connection to a relay that demands AUTH', async () => {
    const relay = await startRelay(tempDir(), { auth: true });
    const pool = openPool();
    const alice = person();
    const bob = person();
    const got: string[] = [];
    for (const who of [alice, bob]) {
      pool.subscribe({ url: relay.url, filters: [{ kinds: [1], '#p': [who.pubkey] }], signer: who.signer, onevent: (e) => got.push(`${who === alice ? 'alice' : 'bob'}:${e.content}`) });
    }
    await waitFor(() => pool.states().filter((s) => s.pubkey && s.status === 'connected').length === 2, 10_000, 'two authenticated connections');
    const url = normalizeRelayUrl(relay.url);

    // Anonymous publishing is refused; with an identity the pool authenticates first.
    const carol = person();
    const toAlice = note(carol.secretKey, 'for alice', [['p', alice.pubkey]]);
    expect((await pool.publish(toAlice, [relay.url]))[url]).toMatch(/^auth-required:/);
    expect((await pool.publish(toAlice, [relay.url], { signer: carol.signer }))[url]).toBe('ok');
    await waitFor(() => got.length === 1, 5000, 'alice receiving');
    expect(got).toEqual(['alice:for alice']);

    const states = pool.states();
    const own = states.filter((s) => s.pubkey !== null).map((s) => s.pubkey);
    expect(own.sort()).toEqual([alice.pubkey, bob.pubkey, carol.pubkey].sort());
    for (const s of states.filter((s) => s.pubkey)) expect(s.status).toBe('connected');
  });

  it('resubscribes an authenticated connection after the AUTH relay restarts', async () => {
    const relay = await startRelay(tempDir(), { auth: true });
    const pool = openPool({ authRelays: [relay.url] });
    const alice = person();
    const got: string[] = [];
    pool.subscribe({ url: relay.url, filters: [{ kinds: [1], '#p': [alice.pubkey] }], signer: alice.signer, cursor: { load: () => undefined, save: () => undefined }, onevent: (e) => got.push(e.content) });
    await waitFor(() => pool.states()[0]?.status === 'connected', 10_000, 'connected');
    expect(pool.states()[0]!.pubkey).toBe(alice.pubkey);
    await relay.restart();
    const sender = person();
    const client = await plainClient(relay.url);
    await authenticate(client, sender);
    await client.publish(note(sender.secretKey, 'after restart', [['p', alice.pubkey]]));
    await waitFor(() => got.includes('after restart'), 15_000, 'the event after the restart');
    expect(pool.states()[0]!.counts.reconnects).toBe(1);
  });

  it('bounds the backoff and spreads it with jitter', () => {
    const o = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, o, () => 0))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(10, o, () => 1)).toBe(500);
    expect(backoffDelay(1000, o, () => 0.999)).toBeGreaterThanOrEqual(500);
  });
});
