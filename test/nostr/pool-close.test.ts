/**
 * Closing the pool ends every socket and timer it started: those of a live connection (heartbeat,
 * subscriptions), of one waiting to reconnect to a dead relay, and of a publish sleeping between its
 * retries. Alone in its file so that no other test's timers are counted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { finalizeEvent } from 'nostr-tools/pure';
import { cleanup, tempDir } from '../helpers.js';
import { startRelay, stopRelays } from '../support/nostr-relay.js';
import { RelayPool, normalizeRelayUrl } from '../../src/services/nostr/pool.js';
import { deadRelayUrl, person, QUICK, sleep, waitFor } from './support.js';

afterEach(async () => {
  await stopRelays();
  cleanup();
});

/** Sockets and timers of this process (the relays' pipes are not counted: they are the test's). */
function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) {
    if (r === 'TCPSocketWrap' || r === 'Timeout' || r === 'TCPWRAP') out[r] = (out[r] ?? 0) + 1;
  }
  return out;
}

describe('relay pool close', () => {
  it('ends every socket and timer, also those of a relay it is waiting to reconnect to and of a publish between retries', async () => {
    const live = await startRelay(tempDir());
    const dead = await deadRelayUrl();
    const baseline = resources();
    const pool = new RelayPool({ ...QUICK, heartbeatMs: 200, heartbeatTimeoutMs: 100, cursorSaveMs: 50, publishAttempts: 50 });
    const alice = person();
    const note = (content: string) => finalizeEvent({ kind: 1, tags: [], content, created_at: Math.floor(Date.now() / 1000) }, alice.secretKey);
    const cursor = { load: () => undefined, save: () => undefined };
    pool.subscribe({ url: live.url, filters: [{ kinds: [1] }], signer: alice.signer, cursor, onevent: () => undefined });
    pool.subscribe({ url: dead, filters: [{ kinds: [1] }], signer: alice.signer, cursor, onevent: () => undefined });
    expect(await pool.publish(note('x'), [live.url])).toEqual({ [normalizeRelayUrl(live.url)]: 'ok' });
    const retrying = pool.publish(note('y'), [dead]);
    await waitFor(() => (pool.states().find((s) => s.url === normalizeRelayUrl(dead))?.counts.errors ?? 0) >= 3, 10_000, 'reconnect attempts');
    await sleep(300); // heartbeats ran
    const open = resources();
    expect(open.TCPSocketWrap ?? 0).toBeGreaterThan(baseline.TCPSocketWrap ?? 0);
    expect(open.Timeout ?? 0).toBeGreaterThan(baseline.Timeout ?? 0);

    await pool.close();
    expect(resources()).toEqual(baseline);
    expect(await retrying).toEqual({ [normalizeRelayUrl(dead)]: 'error: relay pool closed' });
    expect(() => pool.subscribe({ url: live.url, filters: [{ kinds: [1] }], onevent: () => undefined })).toThrow(/closed/);
  });
});
