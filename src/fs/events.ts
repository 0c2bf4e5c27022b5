/**
 * The event log: every change and every stream datum gets a server-wide, monotonically increasing id.
 * Events are stored (through an injected EventStore) and published to live subscribers only after the
 * change that produced them committed. A subscription replays stored events after a cursor and then goes
 * live, with no gap and no duplicate: it registers its live listener before it reads the store and
 * drops every live event whose id it has already passed.
 */
import type { EventType, FsEvent } from './types.js';
import { isUnder, joinPath, relativeTo } from './paths.js';

/** One stored event: `path` is absolute within its `scope` (an agent id, or `server`). */
export interface EventRecord {
  id: number;
  scope: string;
  path: string;
  type: EventType;
  time: number;
  version?: number;
  data?: unknown;
}

export type NewEventRecord = Omit<EventRecord, 'id'>;

/** Storage for events. Synchronous so that an event commits in the same transaction as its change. */
export interface EventStore {
  append(rec: NewEventRecord): EventRecord;
  /** Events with id > cursor, oldest first, at most `limit`. */
  after(cursor: number, limit: number): EventRecord[];
  lastId(): number;
  /** The highest id already dropped by retention for these scopes ('*' = any scope); 0 when none. */
  watermark(scopes: readonly string[] | '*'): number;
}

/** Chooses which events a watch sees and maps their paths into the watcher's namespace. */
export interface Matcher {
  /** Scopes this matcher can match, for reset detection; '*' when it spans all. */
  scopes: readonly string[] | '*';
  map(rec: EventRecord): string | undefined;
  /** When set, the watch ends after an `end` event at this mapped path. */
  endsAt?: string;
}

export const SERVER_SCOPE = 'server';

/** Events of one scope under `scopePath`, shown under `viewPath` (the same by default). */
export function scopeMatcher(scope: string, scopePath: string, viewPrefix = '/'): Matcher {
  return {
    scopes: [scope],
    map: (rec) =>
      rec.scope === scope && isUnder(rec.path, scopePath) ? joinPath(viewPrefix, rec.path) : undefined,
  };
}

/** Several matchers as one; the first that maps an event wins. */
export function unionMatcher(matchers: Matcher[]): Matcher | undefined {
  if (matchers.length === 0) return undefined;
  if (matchers.length === 1) return matchers[0];
  const scopes = matchers.some((m) => m.scopes === '*')
    ? '*'
    : [...new Set(matchers.flatMap((m) => m.scopes as string[]))];
  return {
    scopes,
    map: (rec) => {
      for (const m of matchers) {
        const p = m.map(rec);
        if (p !== undefined) return p;
      }
      return undefined;
    },
  };
}

/** A matcher seen through a mount point: its mapped paths get the prefix. */
export function prefixMatcher(inner: Matcher, mountPath: string): Matcher {
  if (mountPath === '/') return inner;
  return {
    scopes: inner.scopes,
    map: (rec) => {
      const p = inner.map(rec);
      return p === undefined ? undefined : p === '/' ? mountPath : mountPath + p;
    },
    ...(inner.endsAt !== undefined ? { endsAt: inner.endsAt === '/' ? mountPath : mountPath + inner.endsAt } : {}),
  };
}

type Listener = (rec: EventRecord) => void;

export interface SubscribeOptions {
  /** End once the stored events after the cursor are replayed (what ended gets nothing live). */
  replayOnly?: boolean;
}

export interface EventLogOptions {
  /** A subscriber whose live queue grows past this goes back to reading the store. */
  maxLiveQueue?: number;
  now?: () => number;
}

export class EventLog {
  private readonly listeners = new Set<Listener>();
  private batchDepth = 0;
  private pending: EventRecord[] = [];
  private readonly maxLiveQueue: number;
  readonly now: () => number;

  constructor(
    readonly store: EventStore,
    options: EventLogOptions = {},
  ) {
    this.maxLiveQueue = options.maxLiveQueue ?? 10_000;
    this.now = options.now ?? (() => Date.now());
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  /** Records an event; live subscribers see it once the surrounding batch (if any) has succeeded. */
  emit(scope: string, path: string, type: EventType, extra: { version?: number; data?: unknown } = {}): EventRecord {
    const rec = this.store.append({ scope, path, type, time: this.now(), ...extra });
    if (this.batchDepth > 0) this.pending.push(rec);
    else this.publish(rec);
    return rec;
  }

  /**
   * Runs `fn` (typically a storage transaction) holding back live publication of the events it emits:
   * they are published when the outermost batch returns, and dropped if `fn` throws.
   */
  batch<T>(fn: () => T): T {
    const mark = this.pending.length;
    this.batchDepth++;
    let ok = false;
    try {
      const result = fn();
      ok = true;
      return result;
    } finally {
      this.batchDepth--;
      if (!ok) this.pending.length = mark;
      if (this.batchDepth === 0) {
        const toPublish = this.pending;
        this.pending = [];
        for (const rec of toPublish) this.publish(rec);
      }
    }
  }

  private publish(rec: EventRecord): void {
    for (const listener of this.listeners) listener(rec);
  }

  /** A channel for one service: emits in `scope` under `prefix`, subscribes to paths below it. */
  channel(scope: string, prefix = '/'): EventChannel {
    return new EventChannel(this, scope, prefix);
  }

  /**
   * Replays matching events after `from` (none when undefined: live only), then goes live.
   * An expired cursor first gets a `reset`. The iteration ends on `signal` abort, or after an `end`
   * event at `matcher.endsAt`. The live listener is registered when the iterator is created, so a
   * live-only subscription sees everything committed after that moment.
   */
  subscribe(matcher: Matcher, from: number | undefined, signal?: AbortSignal, opts: SubscribeOptions = {}): AsyncIterable<FsEvent> {
    return { [Symbol.asyncIterator]: () => new Subscription(this, matcher, from, signal, opts.replayOnly ?? false) };
  }

  /** @internal */
  addListener(listener: Listener): void {
    this.listeners.add(listener);
  }

  /** @internal */
  removeListener(listener: Listener): void {
    this.listeners.delete(listener);
  }

  /** @internal */
  get liveQueueLimit(): number {
    return this.maxLiveQueue;
  }
}

const REPLAY_PAGE = 512;

/** One watcher: replay from the store, then the live queue, deduplicated by event id. */
class Subscription implements AsyncIterator<FsEvent> {
  private queue: FsEvent[] = [];
  private replayQueue: FsEvent[] = [];
  private overflowed = false;
  private replaying: boolean;
  private last: number;
  /** How far replay has read the store (matching or not). */
  private scanned = 0;
  private done = false;
  private wake: (() => void) | undefined;
  private readonly listener: Listener;
  private readonly onAbort = () => this.wake?.();

  constructor(
    private readonly log: EventLog,
    private readonly matcher: Matcher,
    from: number | undefined,
    private readonly signal: AbortSignal | undefined,
    private readonly replayOnly = false,
  ) {
    this.listener = (rec) => {
      if (this.overflowed) return;
      const path = matcher.map(rec);
      if (path === undefined) return;
      if (this.queue.length >= log.liveQueueLimit) {
        // A slow reader: forget the queue and catch up from the store instead.
        this.overflowed = true;
        this.queue = [];
      } else {
        this.queue.push(toEvent(rec, path));
      }
      this.wake?.();
    };
    log.addListener(this.listener);
    signal?.addEventListener('abort', this.onAbort);
    this.last = from ?? log.store.lastId();
    this.replaying = from !== undefined;
  }

  async next(): Promise<IteratorResult<FsEvent>> {
    for (;;) {
      if (this.done || this.signal?.aborted) return this.finish();
      if (this.replayQueue.length === 0 && (this.replaying || this.overflowed)) this.fillReplay();
      const fromReplay = this.replayQueue.shift();
      if (fromReplay) return this.deliver(fromReplay);
      if (this.replayOnly) return this.finish();
      // Replay is drained: everything up to where it read has been seen.
      this.last = Math.max(this.last, this.scanned);
      const live = this.queue.shift();
      if (live) {
        if (live.id <= this.last) continue;
        return this.deliver(live);
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }

  /** Reads the next page of stored events after the cursor; stops replaying when the store is drained. */
  private fillReplay(): void {
    if (this.overflowed) {
      this.overflowed = false;
      this.replaying = true;
    }
    const watermark = this.log.store.watermark(this.matcher.scopes);
    if (this.last < watermark) {
      this.last = watermark;
      this.replayQueue.push({ id: watermark, type: 'reset', path: '/', time: this.log.now(), data: { reason: 'cursor expired' } });
    }
    let cursor = Math.max(this.last, this.scanned);
    for (;;) {
      const rows = this.log.store.after(cursor, REPLAY_PAGE);
      for (const rec of rows) {
        cursor = rec.id;
        const path = this.matcher.map(rec);
        if (path !== undefined) this.replayQueue.push(toEvent(rec, path));
      }
      if (rows.length < REPLAY_PAGE) {
        this.replaying = false;
        break;
      }
      if (this.replayQueue.length > 0) break;
    }
    this.scanned = cursor;
  }

  private deliver(ev: FsEvent): IteratorResult<FsEvent> {
    if (ev.type !== 'reset') this.last = Math.max(this.last, ev.id);
    if (ev.type === 'end' && this.matcher.endsAt !== undefined && ev.path === this.matcher.endsAt) this.done = true;
    return { value: ev, done: false };
  }

  private finish(): IteratorResult<FsEvent> {
    this.cleanup();
    return { value: undefined, done: true };
  }

  private cleanup(): void {
    this.done = true;
    this.log.removeListener(this.listener);
    this.signal?.removeEventListener('abort', this.onAbort);
    this.wake?.();
  }

  async return(): Promise<IteratorResult<FsEvent>> {
    this.cleanup();
    return { value: undefined, done: true };
  }
}

function toEvent(rec: EventRecord, path: string): FsEvent {
  const ev: FsEvent = { id: rec.id, type: rec.type, path, time: rec.time };
  if (rec.version !== undefined) ev.version = rec.version;
  if (rec.data !== undefined) ev.data = rec.data;
  return ev;
}

/** A service's view of the event log: paths are relative to the service's mount point. */
export class EventChannel {
  constructor(
    readonly log: EventLog,
    readonly scope: string,
    readonly prefix: string,
  ) {}

  /** The scope-absolute path of a service path. */
  absolute(rel: string): string {
    return joinPath(this.prefix, rel);
  }

  emit(rel: string, type: EventType, extra: { version?: number; data?: unknown } = {}): EventRecord {
    return this.log.emit(this.scope, this.absolute(rel), type, extra);
  }

  /** Matches events under `rel`, reported with service-relative paths. */
  matcher(rel: string): Matcher {
    const abs = this.absolute(rel);
    const { scope, prefix } = this;
    return {
      scopes: [scope],
      map: (rec) => (rec.scope === scope && isUnder(rec.path, abs) ? relativeTo(rec.path, prefix) : undefined),
    };
  }

  subscribe(rel: string, from: number | undefined, signal?: AbortSignal, opts: { endsWithStream?: boolean } = {}) {
    const m = this.matcher(rel);
    if (opts.endsWithStream) m.endsAt = rel;
    return this.log.subscribe(m, from, signal);
  }
}
