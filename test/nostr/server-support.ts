/**
 * agent9 servers with Nostr for the integration tests: an in-process `Agent9` whose config.json names
 * the test relays, agents made through `/agents/new` with a `nostr` section, their files read and
 * written through the served namespace, and what an outside user receives from them.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Relay } from 'nostr-tools/relay';
import type { Event } from 'nostr-tools/pure';
import * as nip04 from 'nostr-tools/nip04';
import * as nip17 from 'nostr-tools/nip17';
import { Agent9 } from '../../src/server/agent9.js';
import { nostrCapabilityWith } from '../../src/server/capabilities.js';
import type { Envelope } from '../../src/runtime/spec.js';
import { admin, bytes, tempDir, text } from '../helpers.js';
import { QUICK, waitFor, type Person } from './support.js';

const servers: Agent9[] = [];

export interface NostrServerOptions {
  home?: string;
  relays?: string[];
  /** The rest of the `nostr` section of config.json. */
  config?: Record<string, unknown>;
}

/** A server on `home` (fresh by default) whose config.json has `nostr.relays`; closed by `closeServers`. */
export async function nostrServer(options: NostrServerOptions = {}): Promise<Agent9> {
  const home = options.home ?? tempDir();
  writeFileSync(join(home, 'config.json'), JSON.stringify({ nostr: { relays: options.relays ?? [], ...options.config } }));
  const a9 = await Agent9.open({
    home,
    capabilities: [nostrCapabilityWith({ pool: { ...QUICK, publishAttempts: 2 }, send: { initialMs: 200, maxMs: 1000 } })],
  });
  servers.push(a9);
  return a9;
}

export async function closeServers(): Promise<void> {
  while (servers.length) await servers.pop()!.close();
}

/** A call file as HTTP POST and FUSE do it: one handle, the request written, the answer read. */
export async function callFile(a9: Agent9, path: string, request: unknown): Promise<unknown> {
  const h = await a9.namespace.open(path, { read: true, write: true }, admin);
  try {
    await h.write(bytes(typeof request === 'string' ? request : JSON.stringify(request)), 0);
    const answer = text(await h.read(1 << 20, 0));
    return answer.trim().startsWith('{') || answer.trim().startsWith('[') ? JSON.parse(answer) : answer;
  } finally {
    await h.close();
  }
}

export async function writeJson(a9: Agent9, path: string, value: unknown): Promise<void> {
  await a9.namespace.writeFile(path, bytes(JSON.stringify(value)), {}, admin);
}

export async function readJson(a9: Agent9, path: string): Promise<unknown> {
  return JSON.parse(text(await a9.namespace.readFile(path, admin)));
}

/** Creates an agent through `/agents/new`; returns its hex pubkey. */
export async function nostrAgent(a9: Agent9, spec: Record<string, unknown>): Promise<string> {
  await callFile(a9, '/agents/new', { program: 'echo', nostr: { enabled: true }, ...spec });
  return text(await a9.namespace.readFile(`/agents/${String(spec['name'])}/identity/pubkey`, admin)).trim();
}

/** Waits until the agent's subscriptions on every relay reached EOSE (its points are saved). */
export async function receiving(a9: Agent9, agent: string): Promise<void> {
  await waitFor(async () => {
    const status = (await readJson(a9, `/agents/${agent}/nostr/status`)) as { receiving: boolean; relays: Record<string, string> };
    const urls = Object.keys(status.relays);
    return status.receiving && urls.length > 0 && urls.every((u) => a9.nostr!.store.cursor(agent, u).load() !== undefined);
  }, 15_000, `${agent} receiving`);
}

/** The agent's trace events (of one type). */
export async function traces(a9: Agent9, agent: string, type?: string): Promise<Record<string, unknown>[]> {
  const trace = text(await a9.namespace.readFile(`/agents/${agent}/logs/trajectory`, admin));
  const all = trace.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
  return type ? all.filter((e) => e['type'] === type) : all;
}

/** What the agent's program saw: its trace's message triggers. */
export async function triggers(a9: Agent9, agent: string): Promise<{ envelope_id: string; from: string; source: string }[]> {
  return (await traces(a9, agent, 'trigger'))
    .map((e) => e['trigger'] as { type: string; envelope_id: string; from: string; source: string })
    .filter((t) => t.type === 'message');
}

/** The agent's outbox envelopes. */
export async function outbox(a9: Agent9, agent: string): Promise<Envelope[]> {
  const names = (await a9.namespace.readdir(`/agents/${agent}/outbox`, admin)).map((e) => e.name);
  return Promise.all(names.map(async (n) => JSON.parse(text(await a9.namespace.readFile(`/agents/${agent}/outbox/${n}`, admin))) as Envelope));
}

/** A live subscription of an outside user to what is addressed to them; `messages()` are the DMs they could read. */
export function inboxOf(client: Relay, me: Person): { events: Event[]; messages(): { from: string; text: string; kind: number; tags: string[][]; id: string }[]; close(): void } {
  const events: Event[] = [];
  const sub = client.subscribe([{ kinds: [4, 1059], '#p': [me.pubkey] }], { onevent: (e) => events.push(e) });
  return {
    events,
    messages: () =>
      events.map((e) => {
        if (e.kind === 4) return { from: e.pubkey, text: nip04.decrypt(me.secretKey, e.pubkey, e.content), kind: 4, tags: e.tags, id: e.id };
        const rumor = nip17.unwrapEvent(e, me.secretKey);
        return { from: rumor.pubkey, text: rumor.content, kind: rumor.kind, tags: rumor.tags, id: rumor.id };
      }),
    close: () => sub.close(),
  };
}
