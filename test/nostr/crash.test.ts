/**
 * The consumer killed with SIGKILL while DMs stream in, more DMs sent while it is down, then a new
 * consumer on the same SQLite file: every message is in the inbox table exactly once. A kill between a
 * delivery and its commit loses both the draft and the processed mark, so the message comes again
 * within the resume margin; a kill after the commit keeps both, so the repeat is dropped.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import * as nip17 from 'nostr-tools/nip17';
import type { Event } from 'nostr-tools/pure';
import { tempDir } from '../helpers.js';
import { startRelay } from '../support/nostr-relay.js';
import { closeEverything, legacyDm, openConsumer, person, plainClient, sleep, waitFor } from './support.js';

afterEach(closeEverything);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./fixtures/consumer-process.ts', import.meta.url));
const TOTAL = 24;

describe('nostr: consumer killed with SIGKILL', () => {
  it('every DM, sent before, during and after the kill, is delivered exactly once', async () => {
    const relay = await startRelay(tempDir());
    const home = tempDir();
    const bob = person();
    const alice = person();
    const config = { home, relay: relay.url, secretKey: Buffer.from(bob.secretKey).toString('hex'), perMinute: 10_000 };
    const child = spawn(process.execPath, ['--import', './test/support/ts-loader.mjs', CHILD, JSON.stringify(config)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const printed: string[] = [];
    let live = false;
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'live') live = true;
      else if (line.startsWith('delivered ')) printed.push(line.slice('delivered '.length));
    });
    await waitFor(() => live, 30_000, 'the child consumer live');

    const client = await plainClient(relay.url);
    const ids: string[] = [];
    const send = async (i: number) => {
      const event: Event = i % 2 ? legacyDm(alice, bob.pubkey, `dm ${i}`) : nip17.wrapEvent(alice.secretKey, { publicKey: bob.pubkey }, `dm ${i}`);
      ids.push(i % 2 ? event.id : nip17.unwrapEvent(event, bob.secretKey).id);
      await client.publish(event);
    };
    let i = 0;
    for (; i < TOTAL / 2; i++) {
      await send(i);
      if (printed.length >= 4 && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await sleep(20);
    }
    if (child.signalCode === null) child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(stderr).toBe('');
    expect(printed.length).toBeGreaterThanOrEqual(4);
    expect(printed.length).toBeLessThan(TOTAL);
    for (; i < TOTAL; i++) await send(i); // while no consumer runs

    const after = openConsumer(home, { pool: {} });
    after.receiver.watch({ agentId: 'bob', signer: bob.signer, relays: [relay.url], policy: { senders: 'anyone', perMinute: 10_000 } });
    await waitFor(() => after.delivered().length >= TOTAL, 30_000, 'every DM in the inbox');
    await waitFor(() => after.inbound.counts('bob')!.received >= TOTAL, 10_000, 'the resend handled');
    await sleep(300);
    const inbox = after.delivered().map((d) => d.envelope.id);
    expect(inbox.length).toBe(TOTAL);
    expect(new Set(inbox)).toEqual(new Set(ids));
    expect(after.storage.db.pragma('integrity_check', { simple: true })).toBe('ok');
    // What the child committed came again and was dropped as a repeat.
    expect(after.inbound.counts('bob')!.duplicates).toBeGreaterThanOrEqual(printed.length - 1);
  });
});
