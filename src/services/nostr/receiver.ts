/**
 * The receiving side for managed agents: what is addressed to each agent (gift wraps, legacy DMs,
 * mentions) on each of its relays, resuming from the persisted point of that (agent, relay), every
 * event handed to the inbound processor of the agents it names.
 *
 * Relays cap the subscriptions of one connection (@nostr-relay at 20, dropping the oldest beyond, and
 * public relays about as many), so on a shared connection agents share requests: a group of up to
 * GROUP_SIZE agents is one request whose filters list all their pubkeys, asked from the earliest point
 * among them (the processed ids drop what the others had already). A group never changes: agents
 * that arrive form a new group (one flush after the caller's synchronous work, so a start subscribes
 * all its agents at once), agents that leave are skipped, and past MAX_GROUPS groups on a relay they are all
 * merged into full ones again. On a relay that demands AUTH each agent has its own request on its own
 * authenticated connection; a group told `auth-required:` splits into those.
 */
import type { Filter } from 'nostr-tools/filter';
import { normalizeRelayUrl, type RelayPool, type PoolSubscription, type SubscriptionCursor } from './pool.js';
import type { NostrStore } from './store.js';
import { LEGACY_DM_KIND, MENTION_KIND, type InboundOutcome, type NostrInbound } from './inbound.js';
import type { NostrReachPolicy } from './policy.js';
import type { NostrSigner } from './signer.js';
import { GIFT_WRAP_KIND } from './unwrap.js';

export interface WatchedAgent {
  agentId: string;
  signer: NostrSigner;
  relays: readonly string[];
  policy?: NostrReachPolicy;
  /** Subscribe to DMs (NIP-17 and NIP-04; default true) and to mentions (default true). */
  dms?: boolean;
  mentions?: boolean;
}

/** Agents in one shared request; relays take filters of this many `#p` values. */
export const GROUP_SIZE = 128;
/** Groups on one relay before they are merged again (well under the relays' caps per connection). */
export const MAX_GROUPS = 8;

/** The filters for what is addressed to `pubkey` (or to any of `pubkeys`). */
export function inboxFilters(pubkey: string | readonly string[], kinds: { dms?: boolean; mentions?: boolean } = {}): Filter[] {
  const p = typeof pubkey === 'string' ? [pubkey] : [...pubkey];
  const filters: Filter[] = [];
  if (kinds.dms !== false) filters.push({ kinds: [GIFT_WRAP_KIND], '#p': p }, { kinds: [LEGACY_DM_KIND], '#p': p });
  if (kinds.mentions !== false) filters.push({ kinds: [MENTION_KIND], '#p': p });
  return filters;
}

interface Watched {
  agent: WatchedAgent;
  relays: string[];
  /** Its own subscriptions (relays that demand AUTH, or filters of its own), by relay. */
  own: Map<string, PoolSubscription>;
}

interface Group {
  url: string;
  /** The members still watched. */
  ids: Set<string>;
  /** pubkey -> members (two agents may share a key: an agent copied by export and import). */
  byPubkey: Map<string, Set<string>>;
  sub: PoolSubscription | undefined;
}

const standardKinds = (a: WatchedAgent) => a.dms !== false && a.mentions !== false;

function pTargets(event: unknown): string[] {
  const tags = (event as { tags?: unknown } | null)?.tags;
  if (!Array.isArray(tags)) return [];
  return tags.filter((t): t is string[] => Array.isArray(t) && t[0] === 'p' && typeof t[1] === 'string').map((t) => t[1]!);
}

export class NostrReceiver {
  private readonly watched = new Map<string, Watched>();
  private readonly groups = new Map<string, Group[]>();
  /** Agents waiting to join a group on a relay, at the next flush. */
  private readonly joining = new Map<string, Set<string>>();
  private flushQueued = false;

  constructor(
    private readonly pool: RelayPool,
    private readonly inbound: NostrInbound,
    private readonly store: NostrStore,
    /** Told every event's outcome (the integration retries failed deliveries). */
    private readonly onOutcome?: (agentId: string, event: unknown, relay: string, outcome: InboundOutcome) => void,
  ) {}

  /** Starts (or restarts, with new settings) receiving for an agent. */
  watch(agent: WatchedAgent): void {
    if (inboxFilters(agent.signer.pubkey, agent).length === 0) throw new Error('nostr: an agent must receive DMs, mentions or both');
    const relays = [...new Set(agent.relays.map(normalizeRelayUrl))];
    this.closeSubscriptions(agent.agentId);
    // The inbound side keeps the agent's counts and its place in line across a re-watch.
    this.inbound.addAgent({ agentId: agent.agentId, signer: agent.signer, ...(agent.policy ? { policy: agent.policy } : {}) });
    const w: Watched = { agent, relays, own: new Map() };
    this.watched.set(agent.agentId, w);
    for (const url of relays) {
      if (this.pool.demandsAuth(url) || !standardKinds(agent)) this.subscribeOwn(w, url);
      else this.join(url, agent.agentId);
    }
  }

  /** Stops receiving for an agent (what is persisted stays: a later watch resumes where this one was). */
  unwatch(agentId: string): void {
    this.closeSubscriptions(agentId);
    this.inbound.removeAgent(agentId);
  }

  agents(): string[] {
    return [...this.watched.keys()];
  }

  private handle(agentId: string, event: unknown, relay: string): void {
    const outcome = this.inbound.process(agentId, event, relay);
    if (this.onOutcome) void outcome.then((o) => this.onOutcome?.(agentId, event, relay, o));
  }

  private subscribeOwn(w: Watched, url: string): void {
    const id = w.agent.agentId;
    w.own.get(url)?.close();
    w.own.set(
      url,
      this.pool.subscribe({
        url,
        filters: inboxFilters(w.agent.signer.pubkey, w.agent),
        signer: w.agent.signer,
        cursor: this.store.cursor(id, url),
        onevent: (event, relay) => this.handle(id, event, relay),
        oninvalid: (event, relay, reason) => this.inbound.invalid(id, event, relay, reason),
      }),
    );
  }

  private join(url: string, agentId: string): void {
    let set = this.joining.get(url);
    if (!set) this.joining.set(url, (set = new Set()));
    set.add(agentId);
    if (this.flushQueued) return;
    this.flushQueued = true;
    // After the caller's synchronous work: a start that watches every agent in one loop flushes once.
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  /** Forms the groups of the agents that joined since the last flush. */
  private flush(): void {
    if (this.pool.closed) return;
    for (const [url, ids] of [...this.joining]) {
      this.joining.delete(url);
      let arriving = [...ids].filter((id) => this.watched.get(id)?.relays.includes(url));
      if (arriving.length === 0) continue;
      if (this.pool.demandsAuth(url)) {
        for (const id of arriving) this.subscribeOwn(this.watched.get(id)!, url);
        continue;
      }
      let groups = this.groups.get(url) ?? [];
      if (groups.length + Math.ceil(arriving.length / GROUP_SIZE) > MAX_GROUPS) {
        // Merged again into full groups: one new request each, asked from the earliest point among them.
        arriving = [...groups.flatMap((g) => [...g.ids]), ...arriving];
        for (const g of groups) g.sub?.close();
        groups = [];
      }
      for (let i = 0; i < arriving.length; i += GROUP_SIZE) groups.push(this.openGroup(url, arriving.slice(i, i + GROUP_SIZE)));
      this.groups.set(url, groups);
    }
  }

  private openGroup(url: string, ids: string[]): Group {
    const group: Group = { url, ids: new Set(ids), byPubkey: new Map(), sub: undefined };
    for (const id of ids) {
      const pk = this.watched.get(id)!.agent.signer.pubkey;
      let set = group.byPubkey.get(pk);
      if (!set) group.byPubkey.set(pk, (set = new Set()));
      set.add(id);
    }
    const cursors = () => [...group.ids].map((id) => this.store.cursor(id, url));
    const cursor: SubscriptionCursor = {
      // The earliest point among the members (one with none yet takes what the others ask for).
      load: () => {
        const points = cursors().map((c) => c.load()).filter((p): p is number => p !== undefined);
        return points.length ? Math.min(...points) : undefined;
      },
      save: (seconds) => {
        for (const c of cursors()) c.save(seconds);
      },
    };
    group.sub = this.pool.subscribe({
      url,
      filters: inboxFilters([...group.byPubkey.keys()]),
      cursor,
      onevent: (event, relay) => this.dispatch(group, event, relay, (id) => this.handle(id, event, relay)),
      oninvalid: (event, relay, reason) => this.dispatch(group, event, relay, (id) => this.inbound.invalid(id, event, relay, reason)),
      onAuthRequired: () => this.split(group),
    });
    return group;
  }

  /** An event of a group's request, to each member it is addressed to. */
  private dispatch(group: Group, event: unknown, _relay: string, to: (agentId: string) => void): void {
    const seen = new Set<string>();
    for (const pk of pTargets(event)) {
      for (const id of group.byPubkey.get(pk) ?? []) {
        if (seen.has(id) || !group.ids.has(id)) continue;
        seen.add(id);
        to(id);
      }
    }
  }

  /** The relay demands AUTH: each member gets its own authenticated request there. */
  private split(group: Group): void {
    const groups = this.groups.get(group.url);
    if (groups) this.groups.set(group.url, groups.filter((g) => g !== group));
    group.sub = undefined;
    for (const id of group.ids) {
      const w = this.watched.get(id);
      if (w?.relays.includes(group.url)) this.subscribeOwn(w, group.url);
    }
  }

  private closeSubscriptions(agentId: string): void {
    const w = this.watched.get(agentId);
    if (!w) return;
    for (const sub of w.own.values()) sub.close();
    for (const url of w.relays) {
      this.joining.get(url)?.delete(agentId);
      const groups = this.groups.get(url);
      if (!groups) continue;
      for (const g of groups) {
        g.ids.delete(agentId);
        g.byPubkey.get(w.agent.signer.pubkey)?.delete(agentId);
      }
      const left = groups.filter((g) => {
        if (g.ids.size > 0) return true;
        g.sub?.close();
        return false;
      });
      if (left.length) this.groups.set(url, left);
      else this.groups.delete(url);
    }
    this.watched.delete(agentId);
  }
}
