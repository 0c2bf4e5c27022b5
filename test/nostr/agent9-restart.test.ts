/**
 * Nothing lost, nothing doubled: the relay killed (SIGKILL) and started again in the middle of a
 * conversation with an echo agent; agent9 itself (`agentctl serve`, a child process) killed with
 * SIGKILL while DMs stream in, more DMs sent while it is down, and started again on the same data
 * directory. Each DM reaches the agent's program once and is answered once.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Event } from 'nostr-tools/pure';
import { tempDir } from '../helpers.js';
import { agentctl, ensureBuilt, startServe, type ServeProcess } from '../cli/helpers.js';
import { startRelay } from '../support/nostr-relay.js';
import { closeEverything, giftWrappedDm, legacyDm, person, plainClient, sleep, waitFor, type Person } from './support.js';
import { closeServers, inboxOf, nostrAgent, nostrServer, receiving, triggers } from './server-support.js';

// agentctl is built once, before the clock of any test starts (a build under load takes a while).
beforeAll(() => ensureBuilt(), 240_000);

afterEach(async () => {
  await closeServers();
  await closeEverything();
});

/** DM number `i`: NIP-17 for even numbers, NIP-04 for odd ones; the id the agent sees. */
function dm(from: Person, to: string, i: number): { event: Event; id: string } {
  if (i % 2) {
    const event = legacyDm(from, to, `dm ${i}`);
    return { event, id: event.id };
  }
  const { wrap, rumorId } = giftWrappedDm(from, to, `dm ${i}`);
  return { event: wrap, id: rumorId };
}

function countBy<T>(items: T[]): Map<T, number> {
  const m = new Map<T, number>();
  for (const x of items) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

describe('nostr: restarts', () => {
  it('the relay killed and started again mid-conversation: every DM answered once, none lost, none doubled', async () => {
    const relay = await startRelay(tempDir());
    const a9 = await nostrServer({ relays: [relay.url], config: { reconnect: { initial_ms: 100, max_ms: 500 } } });
    const bob = await nostrAgent(a9, { name: 'bob', nostr: { enabled: true, per_minute: 1000 } });
    await receiving(a9, 'bob');
    const alice = person();
    const ids: string[] = [];
    const TOTAL = 12;

    let client = await plainClient(relay.url);
    for (let i = 0; i < TOTAL / 2; i++) {
      const m = dm(alice, bob, i);
      ids.push(m.id);
      await client.publish(m.event);
    }
    // Killed while the replies are on their way: some are sent, some wait for the relay.
    await sleep(150);
    await relay.kill();
    await sleep(500);
    await relay.restart();
    client = await plainClient(relay.url);
    for (let i = TOTAL / 2; i < TOTAL; i++) {
      const m = dm(alice, bob, i);
      ids.push(m.id);
      await client.publish(m.event);
    }

    const replies = inboxOf(client, alice);
    await waitFor(() => new Set(replies.messages().map((r) => r.text)).size === TOTAL, 30_000, 'a reply to every DM');
    await sleep(1000); // anything doubled would arrive meanwhile
    const texts = replies.messages().map((r) => r.text);
    expect([...countBy(texts).values()].every((n) => n === 1), JSON.stringify(texts)).toBe(true);
    expect(new Set(texts)).toEqual(new Set(Array.from({ length: TOTAL }, (_, i) => `dm ${i}`)));
    const seen = (await triggers(a9, 'bob')).map((t) => t.envelope_id);
    expect(seen.length).toBe(TOTAL);
    expect(new Set(seen)).toEqual(new Set(ids));
  }, 60_000);

  it('agent9 killed with SIGKILL while DMs arrive, more sent while it is down: after the restart each is delivered once and answered once', async () => {
    const relay = await startRelay(tempDir());
    const home = tempDir();
    writeFileSync(join(home, 'config.json'), JSON.stringify({ nostr: { relays: [relay.url], reconnect: { initial_ms: 100, max_ms: 500 } } }));
    let server: ServeProcess = await startServe(home);
    const api = (s: ServeProcess) => async (method: string, path: string, body?: unknown) => {
      const res = await fetch(s.url + path, {
        method,
        headers: { authorization: `Bearer ${s.token}` },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return text;
    };
    try {
      await api(server)('POST', '/agents/new', { name: 'bob', program: 'echo', nostr: { enabled: true, per_minute: 1000 } });
      const bob = (await api(server)('GET', '/agents/bob/identity/pubkey')).trim();
      await waitFor(async () => (JSON.parse(await api(server)('GET', '/agents/bob/nostr/status')) as { relays: Record<string, string> }).relays[`${relay.url}/`] === 'connected', 15_000, 'bob connected');
      await sleep(300); // past EOSE

      const alice = person();
      const client = await plainClient(relay.url);
      const replies = inboxOf(client, alice);
      const ids: string[] = [];
      const TOTAL = 16;
      let i = 0;
      for (; i < TOTAL / 2; i++) {
        const m = dm(alice, bob, i);
        ids.push(m.id);
        await client.publish(m.event);
        if (i === 3) await waitFor(() => replies.messages().length >= 1, 10_000, 'a first reply');
        if (i === 5) expect(await server.stop('SIGKILL')).toBe(128);
        await sleep(30);
      }
      for (; i < TOTAL; i++) {
        const m = dm(alice, bob, i);
        ids.push(m.id);
        await client.publish(m.event); // nobody is listening for bob now
      }

      server = await startServe(home);
      await waitFor(() => new Set(replies.messages().map((r) => r.text)).size === TOTAL, 40_000, 'a reply to every DM');
      await sleep(1500);
      const texts = replies.messages().map((r) => r.text);
      expect([...countBy(texts).values()].every((n) => n === 1), JSON.stringify(texts)).toBe(true);
      const trajectory = (await api(server)('GET', '/agents/bob/logs/trajectory')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; trigger?: { type: string; envelope_id: string } });
      const delivered = trajectory.filter((e) => e.type === 'trigger' && e.trigger?.type === 'message').map((e) => e.trigger!.envelope_id);
      // The triggers of a tick are traced in its commit: each DM reached a committed tick exactly once.
      expect(delivered.length).toBe(TOTAL);
      expect(new Set(delivered)).toEqual(new Set(ids));
      const outbox = JSON.parse(await api(server)('GET', '/agents/bob/outbox/')) as unknown[];
      expect(outbox.length).toBe(TOTAL);

      // The same server through agentctl: a DM sent by the dm call file, the server's counts, and the
      // agent's own token refused on its policy (admin-write).
      const env = { AGENT9_HOME: home };
      const sent = await agentctl(['call', '/agents/bob/nostr/dm', JSON.stringify({ to: alice.pubkey, text: 'through agentctl', scheme: 'nip04' })], { env });
      expect(sent.code, sent.stderr).toBe(0);
      expect(JSON.parse(sent.stdout)).toMatchObject({ status: 'sent', scheme: 'nip04' });
      await waitFor(() => replies.messages().some((m) => m.text === 'through agentctl' && m.kind === 4), 10_000, 'the DM through agentctl');
      const counts = await agentctl(['cat', '/runtime/nostr'], { env });
      expect(counts.code, counts.stderr).toBe(0);
      expect((JSON.parse(counts.stdout) as { counts: { in: number; out: number } }).counts.out).toBeGreaterThanOrEqual(1);
      const minted = JSON.parse(await api(server)('POST', '/runtime/tokens/new', { agent: 'bob' })) as { token: string };
      const refused = await agentctl(['write', '/nostr/policy', JSON.stringify({ senders: 'anyone', per_minute: 10_000 })], { env: { AGENT9_URL: server.url, AGENT9_TOKEN: minted.token } });
      expect(refused.code).toBe(3);
      expect(refused.stderr).toContain('EACCES');
    } finally {
      await server.stop('SIGKILL');
    }
  }, 120_000);
});
