/**
 * Nostr for the agents of one server: the engine behind the `nostr` capability. One relay pool for
 * the server (shared connections, per-agent ones where a relay demands AUTH); for each agent whose
 * `nostr` section says `enabled`, a subscription per relay for its DMs and mentions, each event
 * checked, opened with the agent's own key (inside the KeyStore) and delivered to its inbox in the
 * transaction that records the event as processed; outbox envelopes `to: "nostr:<npub>"` taken in the
 * tick's transaction and sent as DMs in the scheme the peer writes in; the `dm` and `publish` call
 * files; counts, relay states and traces for the files.
 */
import type { Event } from 'nostr-tools/pure';
import { FsError } from '../../fs/errors.js';
import type { AgentRuntime } from '../../runtime/agent-runtime.js';
import { newId } from '../../runtime/envelope.js';
import { npubOf, parsePubkey } from '../../runtime/keys.js';
import type { AgentSection } from '../../runtime/agent-sections.js';
import type { OutboxRoute } from '../../runtime/outbox-routes.js';
import type { Envelope } from '../../runtime/spec.js';
import type { Storage } from '../../runtime/storage/index.js';
import { errorText } from '../../runtime/trace.js';
import { eventLogTrace, type TraceSink } from '../kit/trace-sink.js';
import { loadNostrConfig, type NostrConfig } from './config.js';
import { DROP_REASONS, NostrInbound, zeroCounts, type DropInfo, type InboundCounts, type InboundOutcome, type InboxDraft } from './inbound.js';
import { keyStoreSigner } from './keystore-signer.js';
import { parseEventTemplate, replySchemeFor, type DmScheme } from './outbound.js';
import { NostrOutgoing, type OutgoingOrder, type OutgoingRecord, type SendSchedule } from './outgoing.js';
import { RelayPool, type PoolOptions } from './pool.js';
import type { RelayState } from './connection.js';
import { NostrReceiver } from './receiver.js';
import { DISABLED, NostrSettingsStore, parseNostrPolicyFile, parseNostrSettings, reachPolicyOf, type NostrAgentSettings } from './settings.js';
import type { NostrSigner } from './signer.js';
import { NostrStore } from './store.js';
import { backoffDelay, TimerSet } from './timing.js';

export const NOSTR_ADDRESS_PREFIX = 'nostr:';
export const NOSTR_MOUNT = '/nostr';

export interface NostrEngineOptions {
  storage: Storage;
  /** AGENT9_HOME, where config.json is read from (unless `config` is given). */
  home?: string;
  config?: NostrConfig;
  /** Pool settings over those of the config (tests: short timeouts). */
  pool?: PoolOptions;
  send?: Partial<SendSchedule>;
  trace?: TraceSink;
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Failed deliveries (a full inbox) are tried again this often, doubling, this many times. */
const DELIVERY_RETRY = { initialMs: 1000, maxMs: 60_000, factor: 2, jitter: 0.2 };
const DELIVERY_TRIES = 8;
const MAX_PENDING_RETRIES = 10_000;

function addCounts(into: InboundCounts, c: InboundCounts): void {
  into.received += c.received;
  into.delivered += c.delivered;
  into.duplicates += c.duplicates;
  into.failed += c.failed;
  for (const r of DROP_REASONS) into.dropped[r] += c.dropped[r];
}

/** The text a DM carries for an outbox payload: a string, `{text}`, a received Nostr message's content, else the JSON. */
export function dmText(payload: unknown): string {
  if (typeof payload === 'string') return payload;
  if (payload && typeof payload === 'object' && !Array.isArray(payload)) {
    const p = payload as Record<string, unknown>;
    if (typeof p['text'] === 'string') return p['text'];
    const nostr = p['nostr'] as Record<string, unknown> | undefined;
    if ((p['type'] === 'nostr_dm' || p['type'] === 'nostr_mention') && nostr && typeof nostr['content'] === 'string') return nostr['content'];
  }
  return JSON.stringify(payload ?? null);
}

export class NostrEngine {
  readonly config: NostrConfig;
  readonly storage: Storage;
  readonly store: NostrStore;
  readonly settings: NostrSettingsStore;
  readonly pool: RelayPool;
  readonly inbound: NostrInbound;
  readonly receiver: NostrReceiver;
  readonly outgoing: NostrOutgoing;
  private readonly trace: TraceSink;
  private rt: AgentRuntime | undefined;
  private readonly signers = new Map<string, NostrSigner>();
  /** The relays each receiving agent is subscribed on. */
  private readonly watching = new Map<string, string[]>();
  /** Counts of agents that stopped receiving (the server totals keep them). */
  private readonly retired = zeroCounts();
  private readonly retries = new Map<string, number>();
  private readonly timers = new TimerSet();
  private closed = false;

  constructor(options: NostrEngineOptions) {
    this.storage = options.storage;
    this.config = options.config ?? (options.home ? loadNostrConfig(options.home) : {});
    this.trace = options.trace ?? eventLogTrace(options.storage, 'nostr');
    this.store = new NostrStore(options.storage);
    this.settings = new NostrSettingsStore(options.storage);
    const reconnect = this.config.reconnect;
    this.pool = new RelayPool({
      ...(reconnect ? { reconnect: { initialMs: reconnect.initial_ms ?? 250, maxMs: reconnect.max_ms ?? 30_000, factor: 2, jitter: 0.5 } } : {}),
      ...(this.config.auth_relays ? { authRelays: this.config.auth_relays } : {}),
      ...options.pool,
    });
    this.inbound = new NostrInbound(this.store, (draft) => this.deliver(draft), { onDrop: (info) => this.traceDrop(info) });
    this.receiver = new NostrReceiver(this.pool, this.inbound, this.store, (agentId, event, relay, outcome) => this.afterEvent(agentId, event, relay, outcome));
    const send = this.config.send;
    this.outgoing = new NostrOutgoing({
      storage: options.storage,
      pool: this.pool,
      signerOf: (agentId) => this.signerOf(agentId),
      trace: this.trace,
      schedule: {
        ...(send?.attempts !== undefined ? { attempts: send.attempts } : {}),
        ...(send?.initial_ms !== undefined ? { initialMs: send.initial_ms } : {}),
        ...(send?.max_ms !== undefined ? { maxMs: send.max_ms } : {}),
        ...options.send,
      },
    });
  }

  private get runtime(): AgentRuntime {
    if (!this.rt) throw new Error('nostr: the engine is not attached to a runtime');
    return this.rt;
  }

  /** Hooks into the runtime: the `nostr` section of specs and configs, and the `nostr:` outbox route. */
  attach(rt: AgentRuntime): void {
    this.rt = rt;
    rt.agents.sections.add(this.section());
    rt.outboxRoutes.add(this.route());
  }

  /** Starts receiving for every enabled agent and sending what a previous run left pending. */
  async start(): Promise<void> {
    for (const id of this.settings.enabledAgents()) this.refresh(id);
    this.outgoing.poke();
  }

  // --- settings ---

  private section(): AgentSection<NostrAgentSettings> {
    return {
      name: 'nostr',
      parse: (value, path) => parseNostrSettings(value, path),
      write: (agentId, value, now) => {
        this.settings.put(agentId, value, now);
        this.storage.events.emit(agentId, `${NOSTR_MOUNT}/policy`, 'modified');
      },
      read: (agentId) => (this.settings.written(agentId) ? this.settings.get(agentId) : undefined),
      changed: (agentId) => {
        this.settings.forget(agentId);
        this.refresh(agentId);
      },
    };
  }

  /** The agent's sender policy, as `/nostr/policy` shows it. */
  policy(agentId: string): Pick<NostrAgentSettings, 'senders' | 'per_minute'> {
    const s = this.settings.get(agentId);
    return { senders: s.senders, per_minute: s.per_minute };
  }

  /** Replaces the sender policy (`/nostr/policy`, admin-write); the rest of the section stays. */
  setPolicy(agentId: string, value: unknown, path: string): void {
    const policy = parseNostrPolicyFile(value, path);
    const next: NostrAgentSettings = { ...this.settings.get(agentId), ...policy };
    this.storage.tx(() => {
      this.settings.put(agentId, next, Date.now());
      this.storage.events.emit(agentId, `${NOSTR_MOUNT}/policy`, 'modified');
      this.storage.events.emit(agentId, '/config', 'modified');
    });
    this.settings.forget(agentId);
    this.refresh(agentId);
  }

  /** The relays an agent uses: its own, else the server's. */
  relaysOf(agentId: string, settings: NostrAgentSettings = this.settings.get(agentId)): string[] {
    return settings.relays ?? this.config.relays ?? [];
  }

  signerOf(agentId: string): NostrSigner | undefined {
    const hit = this.signers.get(agentId);
    if (hit) return hit;
    const rt = this.runtime;
    const pubkey = rt.keys.pubkey(agentId);
    if (!pubkey) return undefined;
    const signer = keyStoreSigner(rt.keys, agentId, pubkey, `/agents/${agentId}${NOSTR_MOUNT}`);
    this.signers.set(agentId, signer);
    return signer;
  }

  /** Receives for the agent as its settings say now (subscribes, moves, or stops). */
  refresh(agentId: string): void {
    if (this.closed) return;
    const settings = this.runtime.agents.has(agentId) ? this.settings.get(agentId) : DISABLED;
    const signer = settings.enabled ? this.signerOf(agentId) : undefined;
    const relays = settings.enabled ? this.relaysOf(agentId, settings) : [];
    if (!signer || relays.length === 0) return this.unwatch(agentId);
    const current = this.watching.get(agentId);
    if (current && current.length === relays.length && current.every((r, i) => r === relays[i])) {
      this.inbound.setPolicy(agentId, reachPolicyOf(settings));
      return;
    }
    this.receiver.watch({ agentId, signer, relays, policy: reachPolicyOf(settings) });
    this.watching.set(agentId, relays);
  }

  private unwatch(agentId: string): void {
    if (!this.watching.has(agentId)) return;
    const counts = this.inbound.counts(agentId);
    if (counts) addCounts(this.retired, counts);
    this.receiver.unwatch(agentId);
    this.watching.delete(agentId);
  }

  // --- inbound ---

  /** A checked message into the agent's inbox, inside the transaction that records it as processed. */
  private deliver(draft: InboxDraft): void {
    const rt = this.runtime;
    const env: Envelope = { ...draft.envelope };
    rt.queues.enqueueWithin(draft.agentId, env, `/agents/${draft.agentId}/inbox`);
    const m = draft.envelope.payload.nostr;
    if (draft.envelope.payload.type === 'nostr_dm') this.store.notePeerScheme(draft.agentId, m.pubkey, replySchemeFor(m), m.event_id);
  }

  private traceDrop(info: DropInfo): void {
    if (!this.rt?.agents.has(info.agentId)) return;
    this.trace(info.agentId, { type: 'nostr_dropped', reason: info.reason, detail: info.detail, relay: info.relay, event_id: info.event_id, pubkey: info.pubkey });
  }

  /** A delivery that failed (a full inbox, say) recorded nothing: it is tried again, a few times, then left to the next resubscription. */
  private afterEvent(agentId: string, event: unknown, relay: string, outcome: InboundOutcome): void {
    const id = (event as Partial<Event>).id ?? '?';
    const k = `${agentId} ${id}`;
    if (outcome.status !== 'failed') {
      this.retries.delete(k);
      return;
    }
    const tries = (this.retries.get(k) ?? 0) + 1;
    const final = tries >= DELIVERY_TRIES || this.retries.size >= MAX_PENDING_RETRIES || this.closed;
    const retryIn = final ? 0 : backoffDelay(tries - 1, DELIVERY_RETRY);
    if (this.rt?.agents.has(agentId)) {
      this.trace(agentId, { type: 'nostr_delivery_failed', event_id: id, relay, error: outcome.error, tries, ...(final ? { final: true } : { retry_in_ms: retryIn }) });
    }
    if (final) {
      this.retries.delete(k);
      return;
    }
    this.retries.set(k, tries);
    this.timers.after(retryIn, () => {
      if (!this.watching.has(agentId)) return void this.retries.delete(k);
      void this.inbound.process(agentId, event, relay).then((o) => this.afterEvent(agentId, event, relay, o));
    });
  }

  // --- outbound ---

  private route(): OutboxRoute {
    return {
      name: 'nostr',
      accepts: (to) => to.startsWith(NOSTR_ADDRESS_PREFIX),
      take: (agentId, env) => this.takeEnvelope(agentId, env),
      committed: () => this.outgoing.poke(),
    };
  }

  /** An outbox envelope `to: "nostr:<npub>"`, inside the tick's transaction: a DM to send, or a refusal on record. */
  private takeEnvelope(agentId: string, env: Envelope & { to: string }): void {
    const text = dmText(env.payload);
    let to: string;
    try {
      to = parsePubkey(env.to.slice(NOSTR_ADDRESS_PREFIX.length), `/outbox/${env.id}.json`, 'to');
    } catch (err) {
      const order: OutgoingOrder = { kind: 'dm', to: env.to, text, scheme: 'nip17' };
      return this.outgoing.refuse(agentId, env.id, 'outbox', order, `to: ${errorText(err)}`);
    }
    const order: OutgoingOrder = { kind: 'dm', to, text, scheme: this.schemeFor(agentId, to, env) };
    const replyTo = replyIdOf(env);
    if (replyTo) order.reply_to = replyTo;
    const settings = this.settings.get(agentId);
    if (!settings.enabled) return this.outgoing.refuse(agentId, env.id, 'outbox', order, 'nostr is not enabled for this agent (config: "nostr": {"enabled": true})');
    if (text.length === 0) return this.outgoing.refuse(agentId, env.id, 'outbox', order, 'the message is empty');
    this.outgoing.queue(agentId, env.id, 'outbox', order, this.relaysOf(agentId, settings));
  }

  /**
   * The scheme of a reply: the one the envelope asks for (`metadata.nostr.scheme`), else the one of
   * the message it carries (the echo program sends the received payload back), else the one the peer
   * last wrote in, else NIP-17.
   */
  private schemeFor(agentId: string, to: string, env: Envelope): DmScheme {
    const asked = (env.metadata?.['nostr'] as { scheme?: unknown } | undefined)?.scheme;
    if (asked === 'nip04' || asked === 'nip17') return asked;
    const carried = nostrMessageOf(env.payload);
    if (carried && carried.pubkey === to && typeof carried.kind === 'number') return replySchemeFor({ kind: carried.kind });
    return this.store.peerScheme(agentId, to) ?? 'nip17';
  }

  private requireEnabled(agentId: string, path: string): NostrAgentSettings {
    const settings = this.settings.get(agentId);
    if (!settings.enabled) throw new FsError('EPERM', path, 'nostr is not enabled for this agent (an admin sets "nostr": {"enabled": true} in its config)');
    return settings;
  }

  /** The `dm` call file: `{to, text, scheme?, reply_to?}` sent now; the answer is the outgoing record after the first try. */
  async sendDm(agentId: string, raw: unknown, path: string): Promise<OutgoingRecord> {
    const settings = this.requireEnabled(agentId, path);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FsError('EINVAL', path, 'expected a JSON object {to, text, scheme?, reply_to?}');
    const r = raw as Record<string, unknown>;
    for (const k of Object.keys(r)) {
      if (!['to', 'text', 'scheme', 'reply_to'].includes(k)) throw new FsError('EINVAL', path, `unknown field ${JSON.stringify(k)} (use to, text, scheme, reply_to)`);
    }
    const toField = typeof r['to'] === 'string' && r['to'].startsWith(NOSTR_ADDRESS_PREFIX) ? r['to'].slice(NOSTR_ADDRESS_PREFIX.length) : r['to'];
    const to = parsePubkey(toField, path, 'to');
    if (typeof r['text'] !== 'string' || r['text'].length === 0) throw new FsError('EINVAL', path, 'text: required, a non-empty string');
    const scheme = r['scheme'] ?? this.store.peerScheme(agentId, to) ?? 'nip17';
    if (scheme !== 'nip17' && scheme !== 'nip04') throw new FsError('EINVAL', path, 'scheme: "nip17" or "nip04"');
    const replyTo = r['reply_to'];
    if (replyTo !== undefined && (typeof replyTo !== 'string' || !HEX64.test(replyTo))) throw new FsError('EINVAL', path, 'reply_to: an event id (64 hex characters)');
    if (Buffer.byteLength(r['text']) > 65_535) throw new FsError('EFBIG', path, 'text: at most 65535 bytes');
    const order: OutgoingOrder = { kind: 'dm', to, text: r['text'], scheme, ...(replyTo ? { reply_to: replyTo } : {}) };
    return this.sendNow(agentId, order, this.relaysOf(agentId, settings));
  }

  /** The `publish` call file: an event template signed by the agent and published; the answer is its record. */
  async publish(agentId: string, raw: unknown, path: string): Promise<OutgoingRecord> {
    const settings = this.requireEnabled(agentId, path);
    const template = parseEventTemplate(raw, path);
    return this.sendNow(agentId, { kind: 'event', template }, this.relaysOf(agentId, settings));
  }

  private async sendNow(agentId: string, order: OutgoingOrder, relays: string[]): Promise<OutgoingRecord> {
    if (this.closed) throw new FsError('EAGAIN', `${NOSTR_MOUNT}/${order.kind === 'dm' ? 'dm' : 'publish'}`, 'server is shutting down');
    const id = newId();
    this.storage.tx(() => this.outgoing.queue(agentId, id, 'call', order, relays));
    return this.outgoing.tryNow(agentId, id);
  }

  // --- state, for the files ---

  /** The connection an agent's subscription on `url` uses (its own on an AUTH relay, else the shared one). */
  relayStates(agentId: string): RelayState[] {
    const relays = this.watching.get(agentId) ?? [];
    const pubkey = this.signers.get(agentId)?.pubkey;
    const states = this.pool.states();
    return relays.flatMap((url) => {
      const state = states.find((s) => s.url === url && s.pubkey === pubkey) ?? states.find((s) => s.url === url && s.pubkey === null);
      return state ? [state] : [];
    });
  }

  agentStatus(agentId: string): Record<string, unknown> {
    const settings = this.settings.get(agentId);
    const pubkey = this.runtime.keys.pubkey(agentId) ?? null;
    const relays = this.relaysOf(agentId, settings);
    return {
      enabled: settings.enabled,
      receiving: this.watching.has(agentId),
      pubkey,
      npub: pubkey && npubOf(pubkey),
      relays: Object.fromEntries(relays.map((url) => [url, this.relayStates(agentId).find((s) => s.url === url)?.status ?? (this.watching.has(agentId) ? 'connecting' : 'idle')])),
      inbound: this.inbound.counts(agentId) ?? zeroCounts(),
      outgoing: { ...this.outgoing.counts(agentId), last_error: this.outgoing.lastError(agentId) },
      policy: this.policy(agentId),
    };
  }

  /** `/runtime/nostr`: the server's relays and connections, and its totals. */
  serverStatus(): Record<string, unknown> {
    const totals = zeroCounts();
    addCounts(totals, this.retired);
    for (const id of this.watching.keys()) {
      const c = this.inbound.counts(id);
      if (c) addCounts(totals, c);
    }
    const dropped = Object.values(totals.dropped).reduce((a, b) => a + b, 0);
    const droppedByReason = Object.fromEntries(Object.entries(totals.dropped).filter(([, n]) => n > 0));
    return {
      relays: this.config.relays ?? [],
      auth_relays: this.config.auth_relays ?? [],
      agents: { enabled: this.settings.enabledAgents().length, receiving: this.watching.size },
      connections: this.pool.states(),
      counts: {
        in: totals.received,
        delivered: totals.delivered,
        duplicates: totals.duplicates,
        dropped,
        dropped_by_reason: droppedByReason,
        failed_deliveries: totals.failed,
        out: this.outgoing.totals.sent,
        out_failed_tries: this.outgoing.totals.failed_tries,
        out_failed: this.outgoing.totals.failed,
      },
      outgoing: this.outgoing.counts(),
    };
  }

  // --- lifecycle ---

  /** Drops everything of a deleted agent: its subscriptions and connections, its rows. */
  async forget(agentId: string): Promise<void> {
    const pubkey = this.signers.get(agentId)?.pubkey;
    this.unwatch(agentId);
    this.signers.delete(agentId);
    for (const k of [...this.retries.keys()]) if (k.startsWith(`${agentId} `)) this.retries.delete(k);
    this.store.forgetAgent(agentId);
    this.settings.forget(agentId);
    if (pubkey) await this.pool.forgetAgent(pubkey);
  }

  /** Stops sending and receiving: every socket and timer ends; what is pending stays for the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timers.clear();
    const sending = this.outgoing.close();
    await this.pool.close();
    await sending;
    // Events already received finish their delivery before the database closes.
    await this.inbound.idle();
  }
}

function nostrMessageOf(payload: unknown): { pubkey?: unknown; kind?: unknown; event_id?: unknown } | undefined {
  if (!payload || typeof payload !== 'object') return undefined;
  const p = payload as Record<string, unknown>;
  if (p['type'] !== 'nostr_dm' && p['type'] !== 'nostr_mention') return undefined;
  const m = p['nostr'];
  return m && typeof m === 'object' ? (m as Record<string, unknown>) : undefined;
}

/** The message an outbox envelope answers: `metadata.in_reply_to` when it is an event id, else the id of the message it carries. */
function replyIdOf(env: Envelope): string | undefined {
  const inReplyTo = env.metadata?.['in_reply_to'];
  if (typeof inReplyTo === 'string' && HEX64.test(inReplyTo)) return inReplyTo;
  const carried = nostrMessageOf(env.payload)?.event_id;
  return typeof carried === 'string' && HEX64.test(carried) ? carried : undefined;
}
