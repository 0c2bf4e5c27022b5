/**
 * Inbound: events from an agent's subscriptions become inbox-envelope drafts. DMs are NIP-17 gift wraps
 * (kind 1059 → seal 13 → message 14, opened with the agent's signer) and legacy NIP-04 kind 4; mentions
 * are kind 1 with the agent's `p` tag. Every event is checked (shape, addressed to the agent, signature;
 * for gift wraps the seal's signature and author), then the sender policy and the sender's rate limit
 * apply. Drops are counted by reason (and reported to `onDrop`, for traces).
 *
 * Exactly once: the draft's id is the message's id (for NIP-17 the inner message's, so the same message
 * through several relays or wraps is one envelope). `deliver` runs inside the transaction that records
 * the ids as processed, so a crash either loses both (the event comes again within the resume margin)
 * or keeps both (the repeat is dropped as a duplicate). Each agent's events are handled one at a time.
 */
import { verifyEvent, type Event } from 'nostr-tools/pure';
import * as nip19 from 'nostr-tools/nip19';
import type { NostrSigner } from './signer.js';
import type { NostrStore } from './store.js';
import { SenderRateLimiter } from './rate-limit.js';
import { OPEN_POLICY, senderAllowed, type NostrReachPolicy } from './policy.js';
import { GIFT_WRAP_KIND, isEventShape, unwrapGiftWrap } from './unwrap.js';

export const MENTION_KIND = 1;
export const LEGACY_DM_KIND = 4;
export const CHAT_MESSAGE_KIND = 14;

export const DROP_REASONS = [
  'malformed',
  'unsupported_kind',
  'not_addressed',
  'bad_signature',
  'undecryptable',
  'bad_seal',
  'bad_rumor',
  'seal_pubkey_mismatch',
  'own_event',
  'sender_not_allowed',
  'rate_limited',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** The message as the agent sees it (the origin's payload). */
export interface NostrMessage {
  event_id: string;
  kind: number;
  pubkey: string;
  created_at: number;
  tags: string[][];
  /** The plaintext for a DM that opened, else the content as sent. */
  content: string;
  /** The ciphertext as received, for DMs (for NIP-17, the gift wrap's); null for mentions. */
  raw_content: string | null;
  /** Whether a DM opened; null for mentions. */
  decrypted: boolean | null;
}

export interface NostrPayload {
  type: 'nostr_dm' | 'nostr_mention';
  nostr: NostrMessage;
}

/** An inbox envelope to enqueue (the integration adds what its envelopes carry besides). */
export interface InboxDraft {
  agentId: string;
  envelope: {
    id: string;
    source: 'nostr';
    from: string;
    /** ms since the epoch: the message's own created_at. */
    created_at: number;
    payload: NostrPayload;
    metadata: { nostr: { relay: string; wrap_id?: string } };
  };
}

export type InboundOutcome =
  | { status: 'delivered'; draft: InboxDraft }
  | { status: 'duplicate'; id: string }
  | { status: 'dropped'; reason: DropReason; detail: string }
  | { status: 'failed'; error: string };

export interface DropInfo {
  agentId: string;
  reason: DropReason;
  detail: string;
  relay: string;
  event_id: string | null;
  /** The sender as far as known (the message's author once verified, else the outer event's pubkey). */
  pubkey: string | null;
}

export interface InboundCounts {
  received: number;
  delivered: number;
  duplicates: number;
  /** deliver threw: nothing was recorded, so the event is taken again when it comes again. */
  failed: number;
  dropped: Record<DropReason, number>;
}

export interface InboundAgent {
  agentId: string;
  signer: NostrSigner;
  policy?: NostrReachPolicy;
}

export interface InboundOptions {
  now?: () => number;
  onDrop?: (info: DropInfo) => void;
}

/** Counts of an agent (or a sum) before anything arrived. */
export const zeroCounts = (): InboundCounts => ({
  received: 0,
  delivered: 0,
  duplicates: 0,
  failed: 0,
  dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>,
});

interface Agent extends InboundAgent {
  policy: NostrReachPolicy;
  counts: InboundCounts;
  chain: Promise<unknown>;
}

/** What one event turned into before the policy: the message, its type and the ids to record. */
interface Opened {
  message: NostrMessage;
  type: NostrPayload['type'];
  ids: string[];
  wrapId?: string;
}

class Dropped {
  constructor(
    readonly reason: DropReason,
    readonly detail: string,
    /** Ids safe to record as processed (a verified outer event's, never a forged one's). */
    readonly record: string[] = [],
    readonly pubkey: string | null = null,
  ) {}
}

export class NostrInbound {
  private readonly agents = new Map<string, Agent>();
  private readonly limiter: SenderRateLimiter;

  constructor(
    private readonly store: NostrStore,
    /** Enqueues the draft; runs inside the store's transaction (synchronous, may throw to refuse). */
    private readonly deliver: (draft: InboxDraft) => void,
    private readonly options: InboundOptions = {},
  ) {
    this.limiter = new SenderRateLimiter(options.now);
  }

  addAgent(agent: InboundAgent): void {
    const existing = this.agents.get(agent.agentId);
    this.agents.set(agent.agentId, {
      ...agent,
      policy: agent.policy ?? OPEN_POLICY,
      counts: existing?.counts ?? zeroCounts(),
      chain: existing?.chain ?? Promise.resolve(),
    });
  }

  setPolicy(agentId: string, policy: NostrReachPolicy): void {
    const agent = this.agents.get(agentId);
    if (agent) agent.policy = policy;
  }

  removeAgent(agentId: string): void {
    this.agents.delete(agentId);
    this.limiter.forgetAgent(agentId);
  }

  /** Resolves once every event handed in so far has been handled. */
  async idle(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.chain));
  }

  counts(agentId: string): InboundCounts | undefined {
    const c = this.agents.get(agentId)?.counts;
    return c && { ...c, dropped: { ...c.dropped } };
  }

  /** Handles one event from a subscription of `agentId` on `relay`, after the agent's earlier ones. */
  process(agentId: string, event: unknown, relay: string): Promise<InboundOutcome> {
    const agent = this.agents.get(agentId);
    if (!agent) return Promise.resolve({ status: 'dropped', reason: 'not_addressed', detail: `no agent ${agentId} takes Nostr events` });
    // Never rejects: a failure (say, of the database) is an outcome, counted, so no caller leaves it unhandled.
    const outcome = agent.chain
      .then(() => this.handle(agent, event, relay))
      .catch((err: unknown): InboundOutcome => {
        agent.counts.failed++;
        return { status: 'failed', error: err instanceof Error ? err.message : String(err) };
      });
    agent.chain = outcome;
    return outcome;
  }

  /** An event the pool refused (bad signature, or outside the filters): counted like the ones dropped here. */
  invalid(agentId: string, event: unknown, relay: string, reason: 'bad_signature' | 'filter_mismatch'): void {
    const agent = this.agents.get(agentId);
    if (!agent) return;
    agent.counts.received++;
    const dropped = new Dropped(reason === 'bad_signature' ? 'bad_signature' : 'not_addressed', `the relay sent an event that ${reason === 'bad_signature' ? 'fails its signature' : 'matches no filter'}`);
    this.dropped(agent, dropped, event, relay);
  }

  private async handle(agent: Agent, event: unknown, relay: string): Promise<InboundOutcome> {
    agent.counts.received++;
    try {
      const opened = await this.open(agent, event);
      if ('duplicate' in opened) {
        agent.counts.duplicates++;
        return { status: 'duplicate', id: opened.duplicate };
      }
      this.admit(agent, opened);
      return this.commit(agent, opened, relay);
    } catch (err) {
      if (err instanceof Dropped) return this.dropped(agent, err, event, relay);
      agent.counts.failed++;
      return { status: 'failed', error: (err as Error).message };
    }
  }

  /** Checks the event and opens it; throws Dropped. */
  private async open(agent: Agent, event: unknown): Promise<Opened | { duplicate: string }> {
    if (!isEventShape(event)) throw new Dropped('malformed', 'not a well-formed signed event');
    if (event.kind !== GIFT_WRAP_KIND && event.kind !== LEGACY_DM_KIND && event.kind !== MENTION_KIND) {
      throw new Dropped('unsupported_kind', `kind ${event.kind} is not a DM or a mention`);
    }
    const me = agent.signer.pubkey;
    if (!event.tags.some((t) => t[0] === 'p' && t[1] === me)) throw new Dropped('not_addressed', 'the event has no p tag for this agent');
    if (this.store.isProcessed(agent.agentId, event.id)) return { duplicate: event.id };
    if (!verifyEvent(event)) throw new Dropped('bad_signature', 'the event signature does not verify', [], event.pubkey);
    if (event.kind === GIFT_WRAP_KIND) return this.openGiftWrap(agent, event);
    if (event.kind === LEGACY_DM_KIND) return { message: await this.openLegacyDm(agent.signer, event), type: 'nostr_dm', ids: [event.id] };
    return { message: { ...messageOf(event), raw_content: null, decrypted: null }, type: 'nostr_mention', ids: [event.id] };
  }

  private async openGiftWrap(agent: Agent, wrap: Event): Promise<Opened | { duplicate: string }> {
    const result = await unwrapGiftWrap(wrap, agent.signer);
    // Only the wrap's id is recorded for a failure: the inner id of a forged seal could be someone's real message.
    if (!result.ok) throw new Dropped(result.reason, result.detail, [wrap.id]);
    const rumor = result.rumor;
    if (rumor.kind !== CHAT_MESSAGE_KIND) throw new Dropped('unsupported_kind', `the gift wrap holds kind ${rumor.kind}, not a kind-14 message`, [wrap.id, rumor.id], rumor.pubkey);
    if (this.store.isProcessed(agent.agentId, rumor.id)) {
      // Another wrap of a message already delivered: remember this wrap too, so it is not opened again.
      this.store.markProcessed(agent.agentId, [wrap.id], 'duplicate', wrap.created_at);
      return { duplicate: rumor.id };
    }
    const message: NostrMessage = { ...messageOf(rumor), raw_content: wrap.content, decrypted: true };
    return { message, type: 'nostr_dm', ids: [wrap.id, rumor.id], wrapId: wrap.id };
  }

  /** NIP-04 first when the payload has its `?iv=` form, NIP-44 first otherwise; unopened DMs arrive as sent. */
  private async openLegacyDm(signer: NostrSigner, event: Event): Promise<NostrMessage> {
    const schemes = event.content.includes('?iv=') ? [signer.nip04Decrypt, signer.nip44Decrypt] : [signer.nip44Decrypt, signer.nip04Decrypt];
    for (const decrypt of schemes) {
      try {
        const plaintext = await decrypt.call(signer, event.pubkey, event.content);
        return { ...messageOf(event), content: plaintext, raw_content: event.content, decrypted: true };
      } catch {
        /* the next scheme */
      }
    }
    return { ...messageOf(event), raw_content: event.content, decrypted: false };
  }

  /** The sender policy and rate limit; throws Dropped. */
  private admit(agent: Agent, opened: Opened): void {
    const sender = opened.message.pubkey;
    if (sender === agent.signer.pubkey) throw new Dropped('own_event', 'the agent sent this itself', opened.ids, sender);
    if (!senderAllowed(agent.policy, sender)) throw new Dropped('sender_not_allowed', 'the sender is not on this agent\'s allow list', opened.ids, sender);
    if (!this.limiter.take(agent.agentId, sender, agent.policy.perMinute)) {
      throw new Dropped('rate_limited', `the sender exceeded ${agent.policy.perMinute} messages a minute`, opened.ids, sender);
    }
  }

  private commit(agent: Agent, opened: Opened, relay: string): InboundOutcome {
    const draft = draftOf(agent.agentId, opened, relay);
    const delivered = this.store.tx(() => {
      if (opened.ids.some((id) => this.store.isProcessed(agent.agentId, id))) return false;
      this.deliver(draft);
      this.store.markProcessed(agent.agentId, opened.ids, 'delivered', opened.message.created_at);
      return true;
    });
    if (!delivered) {
      agent.counts.duplicates++;
      return { status: 'duplicate', id: opened.message.event_id };
    }
    agent.counts.delivered++;
    return { status: 'delivered', draft };
  }

  private dropped(agent: Agent, drop: Dropped, event: unknown, relay: string): InboundOutcome {
    agent.counts.dropped[drop.reason]++;
    const outer = isEventShape(event) ? event : undefined;
    if (drop.record.length > 0 && outer) {
      this.store.tx(() => this.store.markProcessed(agent.agentId, drop.record, `dropped:${drop.reason}`, outer.created_at));
    }
    this.options.onDrop?.({
      agentId: agent.agentId,
      reason: drop.reason,
      detail: drop.detail,
      relay,
      event_id: outer?.id ?? null,
      pubkey: drop.pubkey ?? outer?.pubkey ?? null,
    });
    return { status: 'dropped', reason: drop.reason, detail: drop.detail };
  }
}

function messageOf(event: { id: string; kind: number; pubkey: string; created_at: number; tags: string[][]; content: string }): Omit<NostrMessage, 'raw_content' | 'decrypted'> {
  return { event_id: event.id, kind: event.kind, pubkey: event.pubkey, created_at: event.created_at, tags: event.tags, content: event.content };
}

function draftOf(agentId: string, opened: Opened, relay: string): InboxDraft {
  const m = opened.message;
  return {
    agentId,
    envelope: {
      id: m.event_id,
      source: 'nostr',
      from: `nostr:${nip19.npubEncode(m.pubkey)}`,
      created_at: m.created_at * 1000,
      payload: { type: opened.type, nostr: m },
      metadata: { nostr: opened.wrapId ? { relay, wrap_id: opened.wrapId } : { relay } },
    },
  };
}
