/**
 * Nostr through agent9 against the relay and libraries it is built on, in the same run:
 * - DM -> reply round trip: an outside client (nostr-tools) sends a NIP-17 DM to an echo agent and waits
 *   for the reply it can decrypt, against two publish -> subscribe hops of the same relay (pre-built
 *   gift wraps, so no crypto) plus one local echo tick (an envelope written to another agent's inbox,
 *   until its echo is in the outbox);
 * - inbound rate: NIP-17 DMs checked, opened with the agent's key inside the KeyStore and enqueued
 *   (what the receiver does per event, without the relay), against nostr-tools' `unwrapEvent` with the
 *   secret key in memory plus one durable enqueue of agent9's own.
 * Each figure is the median of 3 runs, ours and the baseline alternating.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import { generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import * as nip17 from 'nostr-tools/nip17';
import * as nip59 from 'nostr-tools/nip59';
import { Agent9 } from '../../src/server/agent9.js';
import { callFile, writeAll } from '../../src/fs/ops.js';
import type { Cx } from '../../src/fs/types.js';
import type { Envelope } from '../../src/runtime/spec.js';
import { type BenchCase, type Figure } from '../harness.js';

useWebSocketImplementation(WebSocket);

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const RELAY_SCRIPT = join(ROOT, 'test', 'support', 'nostr-relay-process.mjs');
const cx: Cx = { principal: { id: 'bench', admin: true } };
const RUNS = 3;

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spreadOf = (xs: number[], f: (x: number) => string) => `${f(Math.min(...xs))}-${f(Math.max(...xs))}`;

/** The test relay (@nostr-relay/core on SQLite) in a child process on 127.0.0.1. */
async function startRelay(dir: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [RELAY_SCRIPT, JSON.stringify({ port: 0, db: join(dir, 'relay.db') })], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`relay exited ${code}`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
  return { url: (JSON.parse(line) as { url: string }).url, child };
}

function dm(fromSk: Uint8Array, to: string, text: string): Event {
  return nip59.createWrap(nip59.createSeal(nip59.createRumor({ kind: 14, content: text, tags: [['p', to]], created_at: Math.floor(Date.now() / 1000) }, fromSk), fromSk, to), to);
}

/** Waits for the next event a subscription delivers that passes `accept`. */
function nextEvent(relay: Relay, filter: Record<string, unknown>, accept: (e: Event) => boolean): { wait: Promise<Event>; close(): void } {
  let resolve!: (e: Event) => void;
  const wait = new Promise<Event>((r) => (resolve = r));
  const sub = relay.subscribe([filter as never], {
    onevent: (e) => {
      if (accept(e)) resolve(e);
    },
  });
  return { wait, close: () => sub.close() };
}

async function roundTrips(tmp: string, quick: boolean): Promise<Figure[]> {
  const relay = await startRelay(tmp);
  const a9home = join(tmp, 'round-trips');
  mkdirSync(a9home, { recursive: true });
  writeFileSync(join(a9home, 'config.json'), JSON.stringify({ nostr: { relays: [relay.url] } }));
  const a9 = await Agent9.open({ home: a9home, compute: false, containers: false });
  try {
    await callFile(a9.namespace, '/agents/new', JSON.stringify({ name: 'bob', program: 'echo', nostr: { enabled: true, per_minute: 10_000 } }), cx);
    await callFile(a9.namespace, '/agents/new', JSON.stringify({ name: 'local', program: 'echo' }), cx);
    const bob = new TextDecoder().decode(await a9.namespace.readFile('/agents/bob/identity/pubkey', cx)).trim();
    // Until bob's subscription is past its stored events.
    for (let i = 0; i < 200 && a9.nostr!.store.cursor('bob', `${relay.url}/`).load() === undefined; i++) await new Promise((r) => setTimeout(r, 50));

    const aliceSk = generateSecretKey();
    const alice = getPublicKey(aliceSk);
    const hopSk = generateSecretKey();
    const hopPeer = getPublicKey(hopSk);
    const aliceClient = await Relay.connect(relay.url);
    const peerClient = await Relay.connect(relay.url);
    const trips = quick ? 10 : 30;

    // Alice's one live subscription: each reply is unwrapped once, as it arrives, and wakes its waiter.
    const waiting = new Map<string, () => void>();
    const aliceSub = aliceClient.subscribe([{ kinds: [1059], '#p': [alice] }], {
      onevent: (e) => {
        try {
          waiting.get(nip17.unwrapEvent(e, aliceSk).content)?.();
        } catch {
          /* not for us */
        }
      },
    });
    let n = 0;
    const ours = async (): Promise<number> => {
      const text = `round trip ${n++}`;
      const wrap = dm(aliceSk, bob, text);
      const replied = new Promise<void>((resolve) => waiting.set(text, resolve));
      const t0 = process.hrtime.bigint();
      await aliceClient.publish(wrap);
      await replied;
      const t = ms(t0);
      waiting.delete(text);
      return t;
    };
    let b = 0;
    const baseline = async (): Promise<number> => {
      const i = b++;
      // Built before the clock starts: the hops carry gift wraps of the same size, with no crypto timed.
      const there = dm(aliceSk, hopPeer, `hop there ${i}`);
      const back = dm(hopSk, alice, `hop back ${i}`);
      const t0 = process.hrtime.bigint();
      const hop1 = nextEvent(peerClient, { ids: [there.id] }, () => true);
      await aliceClient.publish(there);
      await hop1.wait;
      hop1.close();
      const from = a9.storage.eventStore.lastId();
      await writeAll(a9.namespace, '/agents/local/inbox', JSON.stringify({ payload: { text: `tick ${i}` } }), cx);
      for await (const ev of a9.namespace.watch('/agents/local/outbox', from, cx)) if (ev.type === 'created') break;
      const hop2 = nextEvent(aliceClient, { ids: [back.id] }, () => true);
      await peerClient.publish(back);
      await hop2.wait;
      hop2.close();
      return ms(t0);
    };
    // Warm up both.
    for (let i = 0; i < 3; i++) {
      await ours();
      await baseline();
    }
    const oursRuns: number[] = [];
    const baseRuns: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      let o = 0;
      let base = 0;
      for (let i = 0; i < trips; i++) {
        o += await ours();
        base += await baseline();
      }
      oursRuns.push(o / trips);
      baseRuns.push(base / trips);
    }
    const echoed = (await a9.namespace.readdir('/agents/bob/outbox', cx)).length;
    if (echoed !== n) throw new Error(`bob answered ${echoed} of ${n} DMs`);
    aliceSub.close();
    aliceClient.close();
    peerClient.close();
    const fmt = (x: number) => x.toFixed(1);
    return [
      {
        name: `NIP-17 DM -> echo agent -> reply DM, round trip (mean of ${trips}, median of ${RUNS} runs)`,
        unit: 'ms',
        value: medianOf(oursRuns),
        baselineName: 'two publish->subscribe hops of the same relay (pre-built gift wraps) + one local echo tick (inbox write until the outbox entry)',
        baseline: medianOf(baseRuns),
        higherIsBetter: false,
        bar: '<= 2x',
        spread: { ours: spreadOf(oursRuns, fmt), baseline: spreadOf(baseRuns, fmt) },
        note: 'ours adds: the wrap\'s and the seal\'s signatures checked, two NIP-44 decryptions in the KeyStore, the processed ids and the envelope in one transaction, the outgoing row in the tick\'s transaction, sealing, signing and wrapping the reply, its row updated after the relay\'s OK',
      },
    ];
  } finally {
    await a9.close();
    relay.child.kill('SIGKILL');
  }
}

async function inboundRate(tmp: string, quick: boolean): Promise<Figure[]> {
  const home = join(tmp, 'inbound');
  mkdirSync(home, { recursive: true });
  // No relays: the events are handed to the receiver's processor directly.
  const a9 = await Agent9.open({ home, compute: false, containers: false, scheduler: false });
  try {
    const big = { max_depth: 1_000_000 };
    await callFile(a9.namespace, '/agents/new', JSON.stringify({ name: 'bob', program: 'echo', inbox: big, nostr: { enabled: true, per_minute: 10_000, relays: ['ws://127.0.0.1:9'] } }), cx);
    await callFile(a9.namespace, '/agents/new', JSON.stringify({ name: 'raw', program: 'echo', inbox: big }), cx);
    const engine = a9.nostr!;
    const bob = a9.runtime.keys.pubkey('bob')!;
    // The baseline's recipient: the same kind of key, held in memory.
    const carolSk = generateSecretKey();
    const carol = getPublicKey(carolSk);
    const n = quick ? 200 : 500;
    const senders = Array.from({ length: 20 }, () => generateSecretKey());
    const makeBatch = (to: string, tag: string) => Array.from({ length: n }, (_, i) => dm(senders[i % senders.length]!, to, `${tag} ${i}`));

    const ours = async (batch: Event[]): Promise<number> => {
      const t0 = process.hrtime.bigint();
      for (const e of batch) {
        const outcome = await engine.inbound.process('bob', e, 'ws://127.0.0.1:9/');
        if (outcome.status !== 'delivered') throw new Error(`inbound: ${JSON.stringify(outcome)}`);
      }
      return ms(t0);
    };
    const baseline = async (batch: Event[]): Promise<number> => {
      const t0 = process.hrtime.bigint();
      for (const e of batch) {
        const rumor = nip17.unwrapEvent(e, carolSk);
        const env: Envelope = { id: rumor.id, source: 'nostr', from: rumor.pubkey, created_at: rumor.created_at * 1000, payload: { text: rumor.content } };
        await a9.runtime.queues.enqueue('raw', env, '/agents/raw/inbox');
      }
      return ms(t0);
    };
    await ours(makeBatch(bob, 'warm').slice(0, 50));
    await baseline(makeBatch(carol, 'warm').slice(0, 50));
    const oursRuns: number[] = [];
    const baseRuns: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const mine = makeBatch(bob, `run ${r}`);
      const theirs = makeBatch(carol, `run ${r}`);
      oursRuns.push((n / (await ours(mine))) * 1000);
      baseRuns.push((n / (await baseline(theirs))) * 1000);
    }
    const fmt = (x: number) => x.toFixed(0);
    return [
      {
        name: `inbound NIP-17 DMs checked, decrypted in the KeyStore and enqueued (${n} per run, median of ${RUNS})`,
        unit: 'DM/s',
        value: medianOf(oursRuns),
        baselineName: 'nostr-tools unwrapEvent with the key in memory + one durable enqueue (Queues.enqueue)',
        baseline: medianOf(baseRuns),
        higherIsBetter: true,
        bar: '>= 0.5x',
        spread: { ours: spreadOf(oursRuns, fmt), baseline: spreadOf(baseRuns, fmt) },
        note: 'ours also checks the gift wrap\'s and the seal\'s signatures, the rumor\'s id and author, opens the sealed key per decryption, and records both ids as processed in the enqueue\'s transaction',
      },
    ];
  } finally {
    await a9.close();
  }
}

export const nostrCase: BenchCase = {
  name: 'nostr',
  async run({ tmp, quick }) {
    return [...(await inboundRate(tmp, quick)), ...(await roundTrips(tmp, quick))];
  },
};
