/**
 * One connection to one relay, as one identity (or none), that stays up: nostr-tools' AbstractRelay
 * speaks the protocol; this adds what it lacks for a server that must not lose messages. Its own
 * reconnect loop (exponential backoff with jitter, bounded; nostr-tools' built-in one resumes from the
 * last event's time, which loses back-dated gift wraps), resubscription with filters computed afresh at
 * each request (so `since` comes from the caller's persisted point), NIP-42 AUTH signed by the
 * identity's signer, a ping/pong heartbeat that notices a dead peer, counters, and a close that ends
 * every socket and timer it started.
 */
import WebSocket from 'ws';
import { AbstractRelay, type Subscription } from 'nostr-tools/abstract-relay';
import { verifyEvent, type Event } from 'nostr-tools/pure';
import { makeAuthEvent } from 'nostr-tools/nip42';
import type { Filter } from 'nostr-tools/filter';
import type { NostrSigner } from './signer.js';
import { backoffDelay, TimerSet, nowSeconds, type BackoffOptions } from './timing.js';

export type RelayStatus = 'connecting' | 'connected' | 'disconnected' | 'auth-required' | 'failed';

/** A connection as plain data (what a status file shows). Times are ms since the epoch. */
export interface RelayState {
  url: string;
  /** The identity this connection authenticates as (per-agent connections to AUTH relays), else null. */
  pubkey: string | null;
  status: RelayStatus;
  last_error: string | null;
  last_event_at: number | null;
  connected_since: number | null;
  subscriptions: number;
  /** in: events received; out: events sent; errors: failed connects, refusals, timeouts; reconnects: re-established connections. */
  counts: { in: number; out: number; errors: number; reconnects: number };
}

export interface ConnectionOptions {
  reconnect: BackoffOptions;
  /** Consecutive failed attempts after which the connection is `failed` (Infinity: keep trying). */
  maxReconnectAttempts: number;
  connectTimeoutMs: number;
  publishTimeoutMs: number;
  /** How long a relay may take to end the stored events of a request (EOSE) before live mode is assumed. */
  eoseTimeoutMs: number;
  /** A ping every this many ms (0: none); no pong within `heartbeatTimeoutMs` drops the connection. */
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  random: () => number;
  now: () => number;
}

/** A subscription as a connection sees it; the pool implements it. */
export interface ConnectionSubscription {
  readonly id: string;
  /** The filters for a request sent now (called at every (re)subscription). */
  filtersForRequest(): Filter[];
  onevent(event: Event): void;
  /** An event that fails its signature or does not match the filters. */
  oninvalid(event: unknown, reason: 'bad_signature' | 'filter_mismatch'): void;
  /** The relay sent all stored events of the request made at `requestedAt` (seconds). */
  oneose(requestedAt: number): void;
}

export interface ConnectionHooks {
  /** An unauthenticated connection was told `auth-required:` for this subscription; true if it was moved elsewhere. */
  authRequired?(sub: ConnectionSubscription): boolean;
}

const AUTH_REQUIRED = 'auth-required:';

/** nostr-tools' relay with a look at each raw message (AUTH challenges, liveness). */
class ObservedRelay extends AbstractRelay {
  onraw: ((data: string) => void) | undefined;

  override _onmessage(ev: { data: unknown }): void {
    super._onmessage(ev as Parameters<AbstractRelay['_onmessage']>[0]);
    if (typeof ev.data === 'string') this.onraw?.(ev.data);
  }
}

/** Ends a nostr-tools subscription without its EOSE timer outliving it. */
function endQuietly(sub: Subscription): void {
  sub.oneose = undefined;
  sub.onclose = undefined;
  sub.receivedEose();
  sub.close();
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

interface PendingOk {
  promise: Promise<string>;
  settle(outcome: string | Error): void;
}

export class RelayConnection {
  private status: RelayStatus = 'disconnected';
  private lastError: string | null = null;
  private lastEventAt: number | null = null;
  private connectedSince: number | null = null;
  private readonly counts = { in: 0, out: 0, errors: 0, reconnects: 0 };
  private relay: ObservedRelay | undefined;
  private socket: WebSocket | undefined;
  private socketError: string | undefined;
  private readonly sockets = new Set<WebSocket>();
  private readonly subs = new Map<string, ConnectionSubscription>();
  private readonly live = new Map<string, Subscription>();
  /** Subscriptions refused with auth-required, sent again once AUTH succeeds. */
  private readonly awaitingAuth = new Set<string>();
  private readonly subRetries = new Map<string, number>();
  private authState: 'none' | 'pending' | 'ok' | 'rejected' = 'none';
  private authDemanded = false;
  private readyWaiters: Waiter[] = [];
  private authWaiters: Waiter[] = [];
  private readonly inflight = new Set<Promise<unknown>>();
  /** Events and AUTH sent and not yet answered, by event id. */
  private readonly pendingOks = new Map<string, PendingOk>();
  private failedAttempts = 0;
  private everConnected = false;
  private cancelReconnect: (() => void) | undefined;
  private readonly timers = new TimerSet();
  private closing: Promise<void> | undefined;
  /** The socket class nostr-tools instantiates: ws, each socket tracked by this connection. */
  private readonly Socket: new (address: string | URL) => WebSocket;

  constructor(
    readonly url: string,
    readonly signer: NostrSigner | undefined,
    private readonly options: ConnectionOptions,
    private readonly hooks: ConnectionHooks = {},
  ) {
    const track = (ws: WebSocket) => this.track(ws);
    const handshakeTimeout = options.connectTimeoutMs;
    this.Socket = class TrackedSocket extends WebSocket {
      constructor(address: string | URL) {
        super(address, { handshakeTimeout });
        track(this);
      }
    };
  }

  get key(): string {
    return connectionKey(this.url, this.signer?.pubkey);
  }

  get connected(): boolean {
    return this.status === 'connected' || this.status === 'auth-required';
  }

  get subscriptionCount(): number {
    return this.subs.size;
  }

  state(): RelayState {
    return {
      url: this.url,
      pubkey: this.signer?.pubkey ?? null,
      status: this.status,
      last_error: this.lastError,
      last_event_at: this.lastEventAt,
      connected_since: this.connectedSince,
      subscriptions: this.subs.size,
      counts: { ...this.counts },
    };
  }

  /** True while the subscription has had its stored events and receives new ones as they come. */
  isLive(id: string): boolean {
    return this.connected && this.live.get(id)?.eosed === true && !this.awaitingAuth.has(id);
  }

  add(sub: ConnectionSubscription): void {
    if (this.closing) throw new Error(`connection to ${this.url} is closed`);
    this.subs.set(sub.id, sub);
    if (this.relay && this.connected) this.request(sub);
    else this.ensureConnecting();
  }

  remove(id: string): void {
    this.subs.delete(id);
    this.awaitingAuth.delete(id);
    this.subRetries.delete(id);
    const live = this.live.get(id);
    this.live.delete(id);
    if (live) endQuietly(live);
  }

  /** Resolves once connected (connecting now if need be); rejects with the reason if this attempt fails or `timeoutMs` passes. */
  ready(timeoutMs: number): Promise<void> {
    if (this.closing) return Promise.reject(new Error('connection closed'));
    if (this.relay && this.connected) return Promise.resolve();
    this.ensureConnecting(true);
    return this.wait(this.readyWaiters, timeoutMs, 'connection timed out');
  }

  /** For a connection with a signer: resolves when the relay accepted its AUTH. */
  authenticated(timeoutMs: number): Promise<void> {
    if (this.authState === 'ok') return Promise.resolve();
    if (this.authState === 'rejected') return Promise.reject(new Error(this.lastError ?? 'AUTH rejected'));
    return this.wait(this.authWaiters, timeoutMs, 'AUTH timed out');
  }

  private wait(list: Waiter[], timeoutMs: number, timeoutMessage: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => {
          cancel();
          resolve();
        },
        reject: (err) => {
          cancel();
          reject(err);
        },
      };
      const cancel = this.timers.after(timeoutMs, () => {
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        reject(new Error(timeoutMessage));
      });
      list.push(waiter);
    });
  }

  private settle(list: 'readyWaiters' | 'authWaiters', err?: Error): void {
    const waiters = this[list];
    this[list] = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  /** Sends `event`; resolves with the relay's OK message, rejects with its refusal or a timeout. */
  async publish(event: Event): Promise<string> {
    const relay = this.relay;
    if (!relay || !this.connected) throw new Error('not connected');
    this.counts.out++;
    try {
      return await this.sendAwaitingOk(relay, 'EVENT', event);
    } catch (err) {
      const reason = message(err);
      if (!reason.startsWith('duplicate:')) this.noteError(`publish: ${reason}`);
      if (reason.startsWith(AUTH_REQUIRED)) this.authDemanded = true;
      throw err;
    }
  }

  /**
   * Sends an EVENT or AUTH frame and waits for the relay's OK for it. Done here rather than with
   * nostr-tools' publish() and auth(), whose timeout timers outlive a connection that drops meanwhile.
   */
  private sendAwaitingOk(relay: ObservedRelay, frame: 'EVENT' | 'AUTH', event: Event): Promise<string> {
    const pending = this.pendingOks.get(event.id);
    if (pending) return pending.promise;
    let settle!: PendingOk['settle'];
    const promise = new Promise<string>((resolve, reject) => {
      const cancel = this.timers.after(this.options.publishTimeoutMs, () => settle(new Error(`${frame === 'AUTH' ? 'AUTH' : 'publish'} timed out`)));
      settle = (outcome) => {
        cancel();
        if (this.pendingOks.get(event.id)?.promise === promise) this.pendingOks.delete(event.id);
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
    });
    this.pendingOks.set(event.id, { promise, settle });
    this.inflight.add(promise);
    const forget = () => this.inflight.delete(promise);
    promise.then(forget, forget);
    relay.send(`["${frame}",${JSON.stringify(event)}]`).catch((err: unknown) => settle(new Error(message(err))));
    return promise;
  }

  /** The relay's OK for an event or AUTH in flight. */
  private answered(data: string): void {
    let ok: unknown[];
    try {
      ok = JSON.parse(data) as unknown[];
    } catch {
      return;
    }
    const [, id, accepted, reason] = ok;
    const pending = typeof id === 'string' ? this.pendingOks.get(id) : undefined;
    if (!pending) return;
    const text = typeof reason === 'string' ? reason : '';
    pending.settle(accepted === true ? text : new Error(text || 'refused'));
  }

  /** Counts an error and shows it as the last one (also for callers' failures handling this relay's events). */
  noteError(text: string): void {
    this.counts.errors++;
    this.lastError = text;
  }

  private wanted(): boolean {
    return this.subs.size > 0 || this.readyWaiters.length > 0;
  }

  private ensureConnecting(now = false): void {
    if (this.closing || this.status === 'connecting') return;
    if (this.cancelReconnect && !now) return;
    this.cancelReconnect?.();
    this.cancelReconnect = undefined;
    void this.connect();
  }

  private async connect(): Promise<void> {
    this.status = 'connecting';
    this.socketError = undefined;
    this.authState = 'none';
    this.authDemanded = false;
    const relay = new ObservedRelay(this.url, {
      verifyEvent: (event) => verifyEvent(event),
      websocketImplementation: this.Socket as unknown as typeof globalThis.WebSocket,
    });
    relay.baseEoseTimeout = this.options.eoseTimeoutMs;
    relay.onnotice = () => undefined;
    relay.onclose = () => this.lost(relay, this.socketError ?? 'connection closed');
    relay.onraw = (data) => this.observe(relay, data);
    this.relay = relay;
    try {
      await relay.connect();
    } catch (err) {
      if (this.relay === relay) this.lost(relay, this.socketError ?? message(err));
      return;
    }
    if (this.relay !== relay || this.closing) return;
    this.status = 'connected';
    this.connectedSince = this.options.now();
    if (this.everConnected) this.counts.reconnects++;
    this.everConnected = true;
    this.failedAttempts = 0;
    this.startHeartbeat(relay);
    for (const sub of this.subs.values()) this.request(sub);
    this.settle('readyWaiters');
  }

  /** The current relay went away (or never came): note why, and come back after a backoff if still wanted. */
  private lost(relay: ObservedRelay, reason: string): void {
    if (this.relay !== relay || this.closing) return;
    this.relay = undefined;
    for (const sub of relay.openSubs.values()) endQuietly(sub);
    this.live.clear();
    this.awaitingAuth.clear();
    this.connectedSince = null;
    this.noteError(reason);
    this.settle('readyWaiters', new Error(reason));
    this.settle('authWaiters', new Error(reason));
    for (const pending of [...this.pendingOks.values()]) pending.settle(new Error(reason));
    this.failedAttempts++;
    if (this.failedAttempts > this.options.maxReconnectAttempts) {
      this.status = 'failed';
      return;
    }
    this.status = 'disconnected';
    if (!this.wanted()) return;
    const delay = backoffDelay(this.failedAttempts - 1, this.options.reconnect, this.options.random);
    this.cancelReconnect = this.timers.after(delay, () => {
      this.cancelReconnect = undefined;
      if (this.wanted()) void this.connect();
    });
  }

  private track(ws: WebSocket): void {
    this.sockets.add(ws);
    this.socket = ws;
    // A socket closed while still connecting emits 'error' with no listener of nostr-tools left: keep one.
    ws.on('error', (err: Error) => (this.socketError = err.message));
    ws.once('close', () => this.sockets.delete(ws));
  }

  private startHeartbeat(relay: ObservedRelay): void {
    const { heartbeatMs, heartbeatTimeoutMs } = this.options;
    const socket = this.socket;
    if (heartbeatMs <= 0 || !socket) return;
    const beat = () => {
      if (this.relay !== relay || socket.readyState !== WebSocket.OPEN) return;
      let answered = false;
      socket.once('pong', () => (answered = true));
      socket.ping();
      this.timers.after(heartbeatTimeoutMs, () => {
        if (!answered && this.relay === relay) {
          this.socketError = `no pong within ${heartbeatTimeoutMs} ms`;
          socket.terminate();
        }
      });
      this.timers.after(heartbeatMs, beat);
    };
    this.timers.after(heartbeatMs, beat);
  }

  /** Raw messages: OK answers settle what was sent; AUTH challenges start authentication. */
  private observe(relay: ObservedRelay, data: string): void {
    if (this.relay !== relay) return;
    if (data.startsWith('["OK"')) {
      this.answered(data);
      return;
    }
    if (!data.startsWith('["AUTH"')) return;
    let challenge: unknown;
    try {
      challenge = (JSON.parse(data) as unknown[])[1];
    } catch {
      return;
    }
    if (typeof challenge === 'string' && this.signer && this.authState !== 'pending' && this.authState !== 'ok') {
      void this.authenticate(relay, challenge, this.signer);
    }
  }

  private async authenticate(relay: ObservedRelay, challenge: string, signer: NostrSigner): Promise<void> {
    this.authState = 'pending';
    let signed: Event;
    try {
      signed = await signer.signEvent(makeAuthEvent(relay.url, challenge));
    } catch (err) {
      this.authFailed(relay, `AUTH could not be signed: ${message(err)}`);
      return;
    }
    if (this.relay !== relay) return;
    try {
      await this.sendAwaitingOk(relay, 'AUTH', signed);
    } catch (err) {
      this.authFailed(relay, `AUTH rejected: ${message(err)}`);
      return;
    }
    if (this.relay !== relay) return;
    this.authState = 'ok';
    if (this.status === 'auth-required') this.status = 'connected';
    const waiting = [...this.awaitingAuth];
    this.awaitingAuth.clear();
    for (const id of waiting) {
      const sub = this.subs.get(id);
      if (sub) this.request(sub);
    }
    this.settle('authWaiters');
  }

  private authFailed(relay: ObservedRelay, reason: string): void {
    if (this.relay !== relay) return;
    this.authState = 'rejected';
    this.noteError(reason);
    if (this.connected) this.status = 'auth-required';
    this.settle('authWaiters', new Error(reason));
  }

  /** Sends the subscription's request on the current relay. */
  private request(sub: ConnectionSubscription): void {
    const relay = this.relay;
    if (!relay) return;
    const previous = this.live.get(sub.id);
    if (previous) endQuietly(previous);
    const requestedAt = nowSeconds(this.options.now());
    const current = relay.subscribe(sub.filtersForRequest(), {
      id: sub.id,
      eoseTimeout: this.options.eoseTimeoutMs,
      onevent: (event) => {
        if (this.relay !== relay) return;
        this.counts.in++;
        this.lastEventAt = this.options.now();
        sub.onevent(event);
      },
      oninvalidevent: (event) => {
        if (this.relay !== relay) return;
        this.counts.in++;
        const bad = typeof event === 'object' && event !== null && !verifyEvent(event as Event);
        sub.oninvalid(event, bad ? 'bad_signature' : 'filter_mismatch');
      },
      oneose: () => {
        if (this.relay === relay && this.live.get(sub.id) === current) {
          this.subRetries.delete(sub.id);
          sub.oneose(requestedAt);
        }
      },
      onclose: (reason) => {
        if (this.relay !== relay || this.closing || this.live.get(sub.id) !== current) return;
        this.live.delete(sub.id);
        this.refused(sub, reason);
      },
    });
    this.live.set(sub.id, current);
  }

  /** The relay ended a subscription (CLOSED): authenticate, hand it over, or ask again after a backoff. */
  private refused(sub: ConnectionSubscription, reason: string): void {
    if (!this.subs.has(sub.id)) return;
    if (reason.startsWith(AUTH_REQUIRED)) {
      this.authDemanded = true;
      if (!this.signer && this.hooks.authRequired?.(sub)) return;
      this.awaitingAuth.add(sub.id);
      // With a signer, AUTH not yet done sends it again once done; otherwise the refusal stands.
      if (!this.signer || this.authState === 'rejected' || this.authState === 'ok') {
        this.noteError(`subscription refused: ${reason}`);
        this.status = 'auth-required';
      }
      return;
    }
    this.noteError(`subscription closed by relay: ${reason}`);
    const tries = this.subRetries.get(sub.id) ?? 0;
    this.subRetries.set(sub.id, tries + 1);
    this.timers.after(backoffDelay(tries, this.options.reconnect, this.options.random), () => {
      if (this.subs.has(sub.id) && this.relay && this.connected && !this.live.has(sub.id)) this.request(sub);
    });
  }

  /** Whether this relay has told an unauthenticated connection that it demands AUTH. */
  get demandsAuth(): boolean {
    return this.authDemanded;
  }

  /**
   * Ends everything: waits (at most the publish timeout) for events and AUTH in flight, closes the
   * subscriptions and the socket, cancels every timer. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.cancelReconnect = undefined;
    this.settle('readyWaiters', new Error('connection closed'));
    this.settle('authWaiters', new Error('connection closed'));
    await Promise.allSettled([...this.inflight]);
    this.timers.clear();
    const relay = this.relay;
    this.relay = undefined;
    if (relay) {
      for (const sub of relay.openSubs.values()) endQuietly(sub);
      relay.close();
    }
    this.live.clear();
    this.subs.clear();
    await Promise.all([...this.sockets].map((ws) => closeSocket(ws)));
    this.status = 'disconnected';
    this.connectedSince = null;
  }
}

export function connectionKey(url: string, pubkey: string | undefined): string {
  return pubkey ? `${url} ${pubkey}` : url;
}

/** Waits for a socket's close, ending it the hard way if the peer does not answer within a second. */
function closeSocket(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => ws.terminate(), 1000);
    ws.once('close', () => {
      clearTimeout(force);
      resolve();
    });
    if (ws.readyState === WebSocket.OPEN) ws.close();
    else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
  });
}
