/**
 * The receiving side for managed agents: for each agent and each of its relays, one subscription for
 * the events addressed to it (gift wraps, legacy DMs, mentions), resuming from the persisted point of
 * that (agent, relay), with every event handed to the inbound processor.
 */
import type { Filter } from 'nostr-tools/filter';
import { normalizeRelayUrl, type RelayPool, type PoolSubscription } from './pool.js';
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

/** The filters for what is addressed to `pubkey`. */
export function inboxFilters(pubkey: string, kinds: { dms?: boolean; mentions?: boolean } = {}): Filter[] {
  const filters: Filter[] = [];
  if (kinds.dms !== false) filters.push({ kinds: [GIFT_WRAP_KIND], '#p': [pubkey] }, { kinds: [LEGACY_DM_KIND], '#p': [pubkey] });
  if (kinds.mentions !== false) filters.push({ kinds: [MENTION_KIND], '#p': [pubkey] });
  return filters;
}

export class NostrReceiver {
  private readonly watched = new Map<string, { agent: WatchedAgent; subs: PoolSubscription[] }>();

  constructor(
    private readonly pool: RelayPool,
    private readonly inbound: NostrInbound,
    private readonly store: NostrStore,
    /** Told every event's outcome (the integration retries failed deliveries). */
    private readonly onOutcome?: (agentId: string, event: unknown, relay: string, outcome: InboundOutcome) => void,
  ) {}

  /** Starts (or restarts, with new settings) receiving for an agent. */
  watch(agent: WatchedAgent): void {
    const filters = inboxFilters(agent.signer.pubkey, agent);
    if (filters.length === 0) throw new Error('nostr: an agent must receive DMs, mentions or both');
    const relays = [...new Set(agent.relays.map(normalizeRelayUrl))];
    this.closeSubscriptions(agent.agentId);
    // The inbound side keeps the agent's counts and its place in line across a re-watch.
    this.inbound.addAgent({ agentId: agent.agentId, signer: agent.signer, ...(agent.policy ? { policy: agent.policy } : {}) });
    const subs = relays.map((url) =>
      this.pool.subscribe({
        url,
        filters,
        signer: agent.signer,
        cursor: this.store.cursor(agent.agentId, url),
        onevent: (event, relay) => {
          const outcome = this.inbound.process(agent.agentId, event, relay);
          if (this.onOutcome) void outcome.then((o) => this.onOutcome?.(agent.agentId, event, relay, o));
        },
        oninvalid: (event, relay, reason) => this.inbound.invalid(agent.agentId, event, relay, reason),
      }),
    );
    this.watched.set(agent.agentId, { agent, subs });
  }

  /** Stops receiving for an agent (what is persisted stays: a later watch resumes where this one was). */
  unwatch(agentId: string): void {
    this.closeSubscriptions(agentId);
    this.inbound.removeAgent(agentId);
  }

  private closeSubscriptions(agentId: string): void {
    const w = this.watched.get(agentId);
    if (!w) return;
    for (const sub of w.subs) sub.close();
    this.watched.delete(agentId);
  }

  agents(): string[] {
    return [...this.watched.keys()];
  }
}
