/**
 * Nostr in a running agent9: an outside user with a plain nostr-tools client on a real relay process
 * DMs an echo agent whose spec says `"nostr": {"enabled": true}`; the DM becomes an inbox envelope
 * `from: "nostr:<npub>"`, the tick runs, and the echo's reply comes back as a DM in the scheme the user
 * wrote in, which the user decrypts. Mentions, forged events, and the files of /nostr and /runtime/nostr.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { finalizeEvent } from 'nostr-tools/pure';
import * as nip19 from 'nostr-tools/nip19';
import { tempDir } from '../helpers.js';
import { startRelay } from '../support/nostr-relay.js';
import { normalizeRelayUrl } from '../../src/services/nostr/pool.js';
import { closeEverything, giftWrappedDm, legacyDm, person, plainClient, query, waitFor } from './support.js';
import { callFile, closeServers, writeJson, inboxOf, nostrAgent, nostrServer, outbox, readJson, receiving, traces, triggers } from './server-support.js';

afterEach(async () => {
  await closeServers();
  await closeEverything();
});

const now = () => Math.floor(Date.now() / 1000);

describe('nostr in agent9', () => {
  it('a NIP-17 DM and a NIP-04 DM tick an echo agent; each reply decrypts at the sender, in the scheme it came in', async () => {
    const relay = await startRelay(tempDir());
    const a9 = await nostrServer({ relays: [relay.url] });
    const bob = await nostrAgent(a9, { name: 'bob' });
    await receiving(a9, 'bob');
    const alice = person();
    const client = await plainClient(relay.url);
    const replies = inboxOf(client, alice);

    const { wrap, rumorId } = giftWrappedDm(alice, bob, 'hello over nip-17');
    expect(wrap.created_at).toBeLessThanOrEqual(now()); // back-dated, as NIP-59 has it
    await client.publish(wrap);
    const legacy = legacyDm(alice, bob, 'hello over nip-04');
    await client.publish(legacy);

    await waitFor(() => replies.messages().length >= 2, 15_000, 'two replies');
    const got = replies.messages();
    const nip17Reply = got.find((m) => m.kind === 14)!;
    const nip04Reply = got.find((m) => m.kind === 4)!;
    expect(nip17Reply).toMatchObject({ from: bob, text: 'hello over nip-17' });
    expect(nip17Reply.tags).toEqual(expect.arrayContaining([['p', alice.pubkey], ['e', rumorId]]));
    expect(nip04Reply).toMatchObject({ from: bob, text: 'hello over nip-04' });
    expect(nip04Reply.tags).toEqual(expect.arrayContaining([['p', alice.pubkey], ['e', legacy.id]]));

    // What the program saw: two message triggers from nostr:<alice's npub>, ids those of the messages.
    const from = `nostr:${nip19.npubEncode(alice.pubkey)}`;
    const seen = await triggers(a9, 'bob');
    expect(seen.map((t) => t.envelope_id).sort()).toEqual([rumorId, legacy.id].sort());
    expect(seen.every((t) => t.from === from && t.source === 'nostr')).toBe(true);
    // The echo's outbox entries are addressed to the sender; each is recorded as sent.
    const out = await outbox(a9, 'bob');
    expect(out.map((e) => e.to)).toEqual([from, from]);
    for (const e of out) {
      const rec = (await readJson(a9, `/agents/bob/nostr/outgoing/${e.id}.json`)) as { status: string; scheme: string; answers: Record<string, string> };
      expect(rec.status).toBe('sent');
      expect(Object.values(rec.answers)).toEqual(['ok']);
    }
    const schemes = await Promise.all(out.map(async (e) => ((await readJson(a9, `/agents/bob/nostr/outgoing/${e.id}.json`)) as { scheme: string }).scheme));
    expect(schemes.sort()).toEqual(['nip04', 'nip17']);
    expect((await traces(a9, 'bob', 'nostr_sent')).length).toBe(2);
  });

  it('a mention becomes an envelope with the origin payload; a forged event is dropped, counted and traced', async () => {
    const relay = await startRelay(tempDir(), { acceptForged: true });
    const a9 = await nostrServer({ relays: [relay.url] });
    // No tick on message: the envelope stays in the inbox to be looked at.
    const bob = await nostrAgent(a9, { name: 'bob', schedule: { on_message: false } });
    await receiving(a9, 'bob');
    const alice = person();
    const client = await plainClient(relay.url);

    const note = finalizeEvent({ kind: 1, tags: [['p', bob]], content: 'hey @bob', created_at: now() }, alice.secretKey);
    await client.publish(note);
    const forged = { ...legacyDm(alice, bob, 'a forgery'), sig: '00'.repeat(64) };
    await client.publish(forged);

    await waitFor(async () => ((await readJson(a9, '/agents/bob/inbox')) as unknown[]).length === 1, 10_000, 'the mention in the inbox');
    const [env] = (await readJson(a9, '/agents/bob/inbox')) as Record<string, unknown>[];
    expect(env).toMatchObject({
      id: note.id,
      source: 'nostr',
      from: `nostr:${nip19.npubEncode(alice.pubkey)}`,
      created_at: note.created_at * 1000,
      payload: {
        type: 'nostr_mention',
        nostr: { event_id: note.id, kind: 1, pubkey: alice.pubkey, created_at: note.created_at, tags: [['p', bob]], content: 'hey @bob', raw_content: null, decrypted: null },
      },
      metadata: { nostr: { relay: normalizeRelayUrl(relay.url) } },
    });
    await waitFor(async () => ((await readJson(a9, '/agents/bob/nostr/status')) as { inbound: { dropped: { bad_signature: number } } }).inbound.dropped.bad_signature === 1, 10_000, 'the forgery counted');
    const dropped = await traces(a9, 'bob', 'nostr_dropped');
    expect(dropped).toEqual([expect.objectContaining({ reason: 'bad_signature', event_id: forged.id, source: 'nostr' })]);
    const server = (await readJson(a9, '/runtime/nostr')) as { counts: { in: number; delivered: number; dropped: number; dropped_by_reason: Record<string, number> } };
    expect(server.counts).toMatchObject({ in: 2, delivered: 1, dropped: 1, dropped_by_reason: { bad_signature: 1 } });
  });

  it('the dm and publish call files answer the signed event id and each relay\'s answer; a dead relay is reported, retried and fails visibly', async () => {
    const relay = await startRelay(tempDir());
    const dead = await startRelay(tempDir());
    await dead.kill();
    const a9 = await nostrServer({ relays: [relay.url, dead.url], config: { send: { attempts: 2, initial_ms: 100, max_ms: 200 } } });
    await nostrAgent(a9, { name: 'bob' });
    const alice = person();
    const client = await plainClient(relay.url);

    const answer = (await callFile(a9, '/agents/bob/nostr/publish', { kind: 1, tags: [['t', 'agent9']], content: 'hello, world' })) as {
      status: string;
      event_id: string;
      answers: Record<string, string>;
    };
    expect(answer.status).toBe('sent');
    expect(answer.answers[normalizeRelayUrl(relay.url)]).toBe('ok');
    expect(answer.answers[normalizeRelayUrl(dead.url)]).toMatch(/after \d+ attempts/);
    const [stored] = await query(client, { ids: [answer.event_id] });
    expect(stored).toMatchObject({ kind: 1, content: 'hello, world', pubkey: (await readJson(a9, '/agents/bob/nostr/status') as { pubkey: string }).pubkey });

    const dm = (await callFile(a9, '/agents/bob/nostr/dm', { to: nip19.npubEncode(alice.pubkey), text: 'psst', scheme: 'nip04' })) as { status: string; message_id: string; scheme: string };
    expect(dm).toMatchObject({ status: 'sent', scheme: 'nip04' });
    const replies = inboxOf(client, alice);
    await waitFor(() => replies.messages().some((m) => m.text === 'psst' && m.id === dm.message_id), 10_000, 'the DM');

    // Only the dead relay: every try fails; the record says so and the trace has each failure.
    await writeJson(a9, '/agents/bob/config', { nostr: { enabled: true, relays: [dead.url] } });
    const failed = (await callFile(a9, '/agents/bob/nostr/dm', { to: alice.pubkey, text: 'lost' })) as { id: string; status: string; error: string };
    expect(failed.status).toBe('pending');
    await waitFor(async () => ((await readJson(a9, `/agents/bob/nostr/outgoing/${failed.id}.json`)) as { status: string }).status === 'failed', 20_000, 'given up');
    const rec = (await readJson(a9, `/agents/bob/nostr/outgoing/${failed.id}.json`)) as { attempts: number; error: string };
    expect(rec.attempts).toBe(2);
    expect(rec.error).toContain(dead.url);
    const failures = (await traces(a9, 'bob', 'nostr_send_failed')).filter((t) => t['id'] === failed.id);
    expect(failures.map((f) => f['final'])).toEqual([false, true]);
    expect(((await readJson(a9, '/agents/bob/nostr/status')) as { outgoing: { failed: number } }).outgoing.failed).toBe(1);
  });
});
