/**
 * Many agents on one relay: relays cap the subscriptions of one connection (@nostr-relay at 20, and
 * it drops the oldest beyond, silently), so the agents of a server share a few requests on the shared
 * connection instead of holding one each. Every agent receives live, and agents added later too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { startRelay } from '../support/nostr-relay.js';
import { closeEverything, giftWrappedDm, person, plainClient, waitFor } from './support.js';
import { closeServers, nostrAgent, nostrServer, readJson, receiving } from './server-support.js';

afterEach(async () => {
  await closeServers();
  await closeEverything();
});

describe('nostr: many agents on one relay', () => {
  it('30 agents on one shared connection each receive their live DM; so does one added afterwards; the connection holds few subscriptions', async () => {
    const relay = await startRelay(tempDir());
    const a9 = await nostrServer({ relays: [relay.url] });
    const names = Array.from({ length: 30 }, (_, i) => `a${i}`);
    const keys = new Map<string, string>();
    for (const name of names) keys.set(name, await nostrAgent(a9, { name, schedule: { on_message: false } }));
    for (const name of names) await receiving(a9, name);

    const alice = person();
    const client = await plainClient(relay.url);
    const send = async (name: string) => {
      const m = giftWrappedDm(alice, keys.get(name)!, `to ${name}`);
      await client.publish(m.wrap);
      return m.rumorId;
    };
    const ids = new Map<string, string>();
    for (const name of names) ids.set(name, await send(name));
    const inboxOf = async (name: string) => ((await readJson(a9, `/agents/${name}/inbox`)) as { id: string }[]).map((e) => e.id);
    await waitFor(async () => (await Promise.all(names.map(inboxOf))).every((got) => got.length === 1), 20_000, 'a DM in every inbox');
    for (const name of names) expect(await inboxOf(name)).toEqual([ids.get(name)]);

    keys.set('late', await nostrAgent(a9, { name: 'late', schedule: { on_message: false } }));
    await receiving(a9, 'late');
    const lateId = await send('late');
    await waitFor(async () => (await inboxOf('late')).length === 1, 10_000, 'the late agent\'s DM');
    expect(await inboxOf('late')).toEqual([lateId]);
    // Nobody received twice what a new request asked for again.
    for (const name of names) expect(await inboxOf(name)).toEqual([ids.get(name)]);
    const [shared] = a9.nostr!.pool.states();
    expect(shared!.pubkey).toBeNull();
    expect(shared!.subscriptions).toBeLessThanOrEqual(8);
  }, 60_000);
});
