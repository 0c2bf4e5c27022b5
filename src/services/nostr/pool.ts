/**
 * The relay pool: one connection per relay URL shared by everyone while the relay needs no
 * authentication, and one per (relay, agent) once it asks for NIP-42 AUTH (configured, or learnt from
 * an `auth-required:` answer), each authenticated by that agent's signer. Subscriptions outlive their
 * connections: every (re)subscription asks again from the caller's persisted point minus a margin
 * (NIP-59 back-dates gift wraps by up to two days), and that point advances only once the relay has
 * sent all stored events (EOSE) and while the subscription is live. Publishing retries with backoff
 * and reports each relay's answer. `close()` ends every socket and timer.
 */
import type { Event } from 'nostr-tools/pure';
import type { Filter } from 'nostr-tools/filter';
import { normalizeURL } from 'nostr-tools/utils';
import { RelayConnection, connectionKey, type ConnectionOptions, type ConnectionSubscription, type RelayState } from './connection.js';
import type { NostrSigner } from './signer.js';
import { backoffDelay, DEFAULT_PUBLISH_BACKOFF, DEFAULT_RECONNECT_BACKOFF, TimerSet, nowSeconds, type BackoffOptions } from './timing.js';

/** NIP-59: a gift wrap's created_at is up to two days before it was made; plus clock skew between peers. */
export const GIFT_WRAP_BACKDATE_SEC = 2 * 24 * 3600;
export const DEFAULT_RESUME_MARGIN_SEC = GIFT_WRAP_BACKDATE_SEC + 15 * 60;

export interface PoolOptions extends Partial<ConnectionOptions> {
  /** Tries per relay for one publish (default 4). */
  publishAttempts?: number;
  publishBackoff?: BackoffOptions;
  /** Relays known to demand AUTH: agents get their own connection from the start. */
  authRelays?: string[];
  /** Seconds before the persisted point that a resumed subscription asks from (default 2 days 15 min). */
  resumeMarginSec?: number;
  /** How often the point of each live subscription is persisted (default 30 s). */
  cursorSaveMs?: number;
}

/** Where a subscription resumes: the caller persists it (seconds; everything before it has been received). */
export interface SubscriptionCursor {
  load(): number | undefined;
  save(seconds: number): void;
}

export interface SubscribeRequest {
  url: string;
  filters: Filter[];
  /** The agent this subscription is for: authenticates it where the relay demands AUTH. */
  signer?: NostrSigner;
  /** Without one the filters are sent as given; with one, `since` = its point (or now) minus the margin. */
  cursor?: SubscriptionCursor;
  onevent(event: Event, url: string): void;
  oninvalid?(event: unknown, url: string, reason: 'bad_signature' | 'filter_mismatch'): void;
  oneose?(url: string): void;
  /**
   * For a subscription without a signer (one shared by several agents): the relay demands AUTH. The
   * pool now knows it (`demandsAuth`) and ends this subscription; the caller subscribes each agent
   * with its own signer instead.
   */
  onAuthRequired?(url: string): void;
}

export interface PoolSubscription {
  readonly id: string;
  readonly url: string;
  close(): void;
}

/** Per relay URL: "ok" or the reason it did not take the event. */
export type PublishResult = Record<string, string>;

/** Refusals that another try would not change. */
const PERMANENT = /^(invalid|blocked|pow|restricted|mute):/;

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A relay URL in its normal form; throws a clear error for anything but ws:// and wss://. */
export function normalizeRelayUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new Error(`invalid relay URL ${JSON.stringify(url)}: expected ws://host[:port] or wss://host[:port]`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new Error(`invalid relay URL ${JSON.stringify(url)}: the scheme must be ws:// or wss://`);
  }
  return normalizeURL(parsed.toString());
}

class Sub implements ConnectionSubscription {
  connection!: RelayConnection;

  constructor(
    readonly id: string,
    private readonly pool: { marginSec: number; now: () => number },
    readonly request: SubscribeRequest & { url: string },
  ) {}

  get signer(): NostrSigner | undefined {
    return this.request.signer;
  }

  filtersForRequest(): Filter[] {
    const cursor = this.request.cursor;
    if (!cursor) return this.request.filters;
    const point = cursor.load() ?? nowSeconds(this.pool.now());
    const since = Math.max(0, point - this.pool.marginSec);
    return this.request.filters.map((f) => ({ ...f, since }));
  }

  onevent(event: Event): void {
    this.guard('event handler', () => this.request.onevent(event, this.request.url));
  }

  oninvalid(event: unknown, reason: 'bad_signature' | 'filter_mismatch'): void {
    this.guard('invalid-event handler', () => this.request.oninvalid?.(event, this.request.url, reason));
  }

  oneose(requestedAt: number): void {
    this.saveCursor(requestedAt);
    this.guard('EOSE handler', () => this.request.oneose?.(this.request.url));
  }

  saveCursor(seconds: number): void {
    const cursor = this.request.cursor;
    if (cursor) this.guard('saving the subscription point', () => cursor.save(seconds));
  }

  /** A failing handler is the caller's fault: it shows as this relay's last error and ends nothing. */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.connection.noteError(`${what} failed: ${message(err)}`);
    }
  }
}

export class RelayPool {
  private readonly connections = new Map<string, RelayConnection>();
  private readonly subs = new Map<string, Sub>();
  private readonly authRelays = new Set<string>();
  private readonly connectionOptions: ConnectionOptions;
  private readonly timers = new TimerSet();
  private nextId = 0;
  private isClosed = false;
  readonly marginSec: number;
  readonly now: () => number;

  constructor(private readonly options: PoolOptions = {}) {
    this.now = options.now ?? Date.now;
    this.marginSec = options.resumeMarginSec ?? DEFAULT_RESUME_MARGIN_SEC;
    this.connectionOptions = {
      reconnect: options.reconnect ?? DEFAULT_RECONNECT_BACKOFF,
      maxReconnectAttempts: options.maxReconnectAttempts ?? Infinity,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      publishTimeoutMs: options.publishTimeoutMs ?? 10_000,
      eoseTimeoutMs: options.eoseTimeoutMs ?? 60_000,
      heartbeatMs: options.heartbeatMs ?? 30_000,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 10_000,
      random: options.random ?? Math.random,
      now: this.now,
    };
    for (const url of options.authRelays ?? []) this.authRelays.add(normalizeRelayUrl(url));
    this.scheduleCursorSave();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Whether a relay demands AUTH (configured, or learnt): agents need their own connection there. */
  demandsAuth(url: string): boolean {
    return this.authRelays.has(normalizeRelayUrl(url));
  }

  /** Every connection's state, as plain objects. */
  states(): RelayState[] {
    return [...this.connections.values()].map((c) => c.state()).sort((a, b) => (a.url + (a.pubkey ?? '')).localeCompare(b.url + (b.pubkey ?? '')));
  }

  subscribe(request: SubscribeRequest): PoolSubscription {
    if (this.isClosed) throw new Error('relay pool is closed');
    if (request.filters.length === 0) throw new Error('a subscription needs at least one filter');
    const url = normalizeRelayUrl(request.url);
    const sub = new Sub(`a9:${++this.nextId}`, this, { ...request, url });
    this.subs.set(sub.id, sub);
    this.attach(sub);
    return {
      id: sub.id,
      url,
      close: () => this.unsubscribe(sub.id),
    };
  }

  private unsubscribe(id: string): void {
    const sub = this.subs.get(id);
    if (!sub) return;
    this.subs.delete(id);
    sub.connection.remove(id);
  }

  private attach(sub: Sub): void {
    sub.connection = this.connectionFor(sub.request.url, sub.signer);
    sub.connection.add(sub);
  }

  private connectionFor(url: string, signer: NostrSigner | undefined): RelayConnection {
    if (this.isClosed) throw new Error('relay pool is closed');
    const own = signer && this.authRelays.has(url) ? signer : undefined;
    const key = connectionKey(url, own?.pubkey);
    let conn = this.connections.get(key);
    if (!conn) {
      conn = new RelayConnection(url, own, this.connectionOptions, own ? {} : { authRequired: (sub) => this.escalate(url, sub.id) });
      this.connections.set(key, conn);
    }
    return conn;
  }

  /**
   * A relay told the shared connection that it demands AUTH: from now on each agent gets its own
   * connection there. The agents' subscriptions move to theirs; shared ones that can be split
   * (`onAuthRequired`) end and their callers subscribe each agent; anonymous ones stay, refused.
   */
  private escalate(url: string, subId: string): boolean {
    const refused = this.subs.get(subId);
    if (!refused || (!refused.signer && !refused.request.onAuthRequired)) return false;
    this.authRelays.add(url);
    for (const sub of [...this.subs.values()]) {
      if (sub.request.url !== url || sub.connection.signer) continue;
      if (sub.signer) {
        sub.connection.remove(sub.id);
        this.attach(sub);
      } else if (sub.request.onAuthRequired) {
        this.unsubscribe(sub.id);
        sub.request.onAuthRequired(url);
      }
    }
    return true;
  }

  /** Publishes `event` to each relay in `urls`, with retries; resolves with every relay's answer. */
  async publish(event: Event, urls: readonly string[], options: { signer?: NostrSigner } = {}): Promise<PublishResult> {
    const normal = [...new Set(urls.map(normalizeRelayUrl))];
    const answers = await Promise.all(normal.map((url) => this.publishTo(url, event, options.signer)));
    return Object.fromEntries(normal.map((url, i) => [url, answers[i]!]));
  }

  private async publishTo(url: string, event: Event, signer: NostrSigner | undefined): Promise<string> {
    const attempts = Math.max(1, this.options.publishAttempts ?? 4);
    const backoff = this.options.publishBackoff ?? DEFAULT_PUBLISH_BACKOFF;
    let last = 'not sent';
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (this.isClosed) return 'error: relay pool closed';
      const conn = this.connectionFor(url, signer);
      try {
        await conn.ready(this.connectionOptions.connectTimeoutMs);
        await conn.publish(event);
        return 'ok';
      } catch (err) {
        const reason = message(err);
        if (reason.startsWith('duplicate:')) return 'ok';
        if (reason.startsWith('auth-required:')) {
          const next = await this.afterAuthRequired(url, conn, signer);
          if (next !== undefined) return next;
          last = reason;
          continue;
        }
        if (PERMANENT.test(reason)) return reason;
        last = reason;
      }
      if (attempt + 1 < attempts && !(await this.timers.sleep(backoffDelay(attempt, backoff, this.connectionOptions.random)))) {
        return 'error: relay pool closed';
      }
    }
    return `${last} (after ${attempts} attempts)`;
  }

  /** After an `auth-required:` refusal: undefined to try again (authenticated), or the final answer. */
  private async afterAuthRequired(url: string, conn: RelayConnection, signer: NostrSigner | undefined): Promise<string | undefined> {
    if (!signer) return 'auth-required: the relay demands NIP-42 AUTH and this publish has no identity';
    if (!conn.signer) {
      this.authRelays.add(url);
      return undefined;
    }
    try {
      await conn.authenticated(this.connectionOptions.publishTimeoutMs);
      return undefined;
    } catch (err) {
      return `auth-required: ${message(err)}`;
    }
  }

  /** Ends an agent's subscriptions and its own connections (the agent was deleted or left Nostr). */
  async forgetAgent(pubkey: string): Promise<void> {
    for (const sub of [...this.subs.values()]) if (sub.signer?.pubkey === pubkey) this.unsubscribe(sub.id);
    const own = [...this.connections.values()].filter((c) => c.signer?.pubkey === pubkey);
    for (const c of own) this.connections.delete(c.key);
    await Promise.all(own.map((c) => c.close()));
  }

  private scheduleCursorSave(): void {
    this.timers.after(this.options.cursorSaveMs ?? 30_000, () => {
      const at = nowSeconds(this.now());
      for (const sub of this.subs.values()) {
        if (sub.connection.isLive(sub.id)) sub.saveCursor(at);
      }
      this.scheduleCursorSave();
    });
  }

  /** Closes every subscription and connection; resolves once all sockets and timers are gone. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    this.timers.clear();
    this.subs.clear();
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}
