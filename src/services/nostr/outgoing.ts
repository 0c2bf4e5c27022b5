/**
 * What agents send over Nostr, durably: every DM (an outbox envelope `to: "nostr:<npub>"`, or the `dm`
 * call file) and every event (the `publish` call file) is a row of `nostr_outgoing` until a relay took
 * it or its tries ran out. Rows from a tick are written in the tick's transaction, so a crash never
 * loses one nor sends one the tick did not commit. The first try signs (and for DMs encrypts and
 * wraps) the event and stores it before publishing; every later try, after a restart too, publishes
 * that same event, which relays answer `duplicate:` if they had it: the recipient gets one message.
 *
 * A try is one `RelayPool.publish` (with the pool's own quick retries per relay); a row is `sent` once
 * any relay said OK (each relay's answer is kept), else tried again `send.initial_ms` later, doubling
 * to `send.max_ms`, and `failed` after `send.attempts` tries. Each outcome is traced.
 */
import type { Event, EventTemplate } from 'nostr-tools/pure';
import * as nip19 from 'nostr-tools/nip19';
import { FsError } from '../../fs/errors.js';
import type { Storage } from '../../runtime/storage/index.js';
import { errorText } from '../../runtime/trace.js';
import type { TraceSink } from '../kit/trace-sink.js';
import { buildDm, type DmScheme } from './outbound.js';
import type { RelayPool } from './pool.js';
import type { NostrSigner } from './signer.js';
import { backoffDelay, TimerSet } from './timing.js';

export type OutgoingStatus = 'pending' | 'sent' | 'failed';

export interface DmOrder {
  kind: 'dm';
  /** hex pubkey */
  to: string;
  text: string;
  scheme: DmScheme;
  reply_to?: string;
}

export interface EventOrder {
  kind: 'event';
  template: EventTemplate;
}

export type OutgoingOrder = DmOrder | EventOrder;

/** One row as the files show it. */
export interface OutgoingRecord {
  id: string;
  kind: 'dm' | 'event';
  /** `outbox` (an outbox envelope of a tick) or `call` (the dm or publish file). */
  origin: 'outbox' | 'call';
  status: OutgoingStatus;
  /** For DMs: the recipient (npub) and the scheme. */
  to?: string;
  scheme?: DmScheme;
  /** The event published (for NIP-17 the gift wrap), once built. */
  event_id: string | null;
  /** For DMs: the id the recipient sees (the inner message's, for NIP-17). */
  message_id: string | null;
  relays: string[];
  /** Each relay's answer to the last try: "ok" or why not. */
  answers: Record<string, string> | null;
  attempts: number;
  /** When the next try is due (pending rows). */
  next_attempt_at: number | null;
  error: string | null;
  created_at: number;
  updated_at: number;
}

interface Row {
  agent_id: string;
  id: string;
  seq: number;
  kind: 'dm' | 'event';
  origin: 'outbox' | 'call';
  request: string;
  relays: string;
  event: string | null;
  event_id: string | null;
  message_id: string | null;
  status: OutgoingStatus;
  attempts: number;
  next_at: number;
  answers: string | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface SendSchedule {
  attempts: number;
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_SEND_SCHEDULE: SendSchedule = { attempts: 8, initialMs: 5000, maxMs: 600_000 };

export interface OutgoingOptions {
  storage: Storage;
  pool: RelayPool;
  /** The agent's signer; undefined once the agent (or its key) is gone. */
  signerOf(agentId: string): NostrSigner | undefined;
  trace: TraceSink;
  schedule?: Partial<SendSchedule>;
  /** Rows being tried at once (default 16). */
  concurrency?: number;
  /** Finished rows kept per agent (default 1000) and for how long (default 7 days). */
  keepPerAgent?: number;
  keepMs?: number;
  now?: () => number;
}

export interface OutgoingCounts {
  pending: number;
  sent: number;
  failed: number;
}

const key = (agentId: string, id: string) => `${agentId}\u0000${id}`;

export class NostrOutgoing {
  private readonly q;
  private readonly schedule: SendSchedule;
  private readonly timers = new TimerSet();
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly now: () => number;
  private wakeAt: number | undefined;
  private cancelWake: (() => void) | undefined;
  private passQueued = false;
  private closed = false;
  /** Totals since start (the server-level file): published events, and tries that no relay took. */
  readonly totals = { sent: 0, failed_tries: 0, failed: 0 };

  constructor(private readonly o: OutgoingOptions) {
    this.now = o.now ?? Date.now;
    this.schedule = { ...DEFAULT_SEND_SCHEDULE, ...o.schedule };
    const db = o.storage.db;
    this.q = {
      insert: db.prepare(`INSERT INTO nostr_outgoing (agent_id, id, seq, kind, origin, request, relays, status, next_at, last_error, created_at, updated_at)
        VALUES (@agent_id, @id, (SELECT coalesce(max(seq), 0) + 1 FROM nostr_outgoing WHERE agent_id = @agent_id), @kind, @origin, @request, @relays, @status, @next_at, @last_error, @now, @now)
        ON CONFLICT (agent_id, id) DO NOTHING`),
      one: db.prepare('SELECT * FROM nostr_outgoing WHERE agent_id = ? AND id = ?'),
      list: db.prepare('SELECT id FROM nostr_outgoing WHERE agent_id = ? ORDER BY seq').pluck(),
      due: db.prepare("SELECT * FROM nostr_outgoing WHERE status = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?"),
      nextDue: db.prepare("SELECT min(next_at) FROM nostr_outgoing WHERE status = 'pending'").pluck(),
      built: db.prepare("UPDATE nostr_outgoing SET event = ?, event_id = ?, message_id = ?, updated_at = ? WHERE agent_id = ? AND id = ? AND status = 'pending'"),
      tried: db.prepare(`UPDATE nostr_outgoing SET status = ?, attempts = ?, next_at = ?, answers = ?, last_error = ?, updated_at = ?
        WHERE agent_id = ? AND id = ? AND status = 'pending'`),
      counts: db.prepare('SELECT status, count(*) AS n FROM nostr_outgoing WHERE agent_id = ? GROUP BY status'),
      allCounts: db.prepare('SELECT status, count(*) AS n FROM nostr_outgoing GROUP BY status'),
      lastError: db.prepare('SELECT last_error FROM nostr_outgoing WHERE agent_id = ? AND last_error IS NOT NULL ORDER BY updated_at DESC LIMIT 1').pluck(),
      prune: db.prepare("DELETE FROM nostr_outgoing WHERE agent_id = ? AND status != 'pending' AND seq <= (SELECT max(seq) FROM nostr_outgoing WHERE agent_id = ?) - ?"),
      expire: db.prepare("DELETE FROM nostr_outgoing WHERE status != 'pending' AND updated_at <= ?"),
    };
    o.storage.every(10 * 60_000, () => this.q.expire.run(this.now() - (o.keepMs ?? 7 * 24 * 3600 * 1000)));
  }

  /**
   * Records something to send (inside the caller's transaction: the tick's, or the call's own). A
   * refusal known now (`error`) makes a `failed` row at once, traced, so the sender sees why.
   */
  queue(agentId: string, id: string, origin: 'outbox' | 'call', order: OutgoingOrder, relays: readonly string[], error?: string): void {
    const now = this.now();
    const inserted = this.q.insert.run({
      agent_id: agentId,
      id,
      kind: order.kind,
      origin,
      request: JSON.stringify(order),
      relays: JSON.stringify(relays),
      status: error ? 'failed' : 'pending',
      next_at: now,
      last_error: error ?? null,
      now,
    }).changes;
    if (!inserted) return;
    this.q.prune.run(agentId, agentId, this.o.keepPerAgent ?? 1000);
    this.o.storage.events.emit(agentId, `/nostr/outgoing/${id}.json`, 'created', { version: 1 });
    if (error) {
      this.totals.failed++;
      this.o.trace(agentId, { type: 'nostr_send_failed', id, kind: order.kind, origin, error, final: true });
    }
  }

  /** A refused send from a tick or a call: a failed row naming why (the address, the capability off). */
  refuse(agentId: string, id: string, origin: 'outbox' | 'call', order: OutgoingOrder, error: string): void {
    this.queue(agentId, id, origin, order, [], error);
  }

  record(agentId: string, id: string): OutgoingRecord | undefined {
    const row = this.q.one.get(agentId, id) as Row | undefined;
    return row && recordOf(row);
  }

  ids(agentId: string): string[] {
    return this.q.list.all(agentId) as string[];
  }

  counts(agentId?: string): OutgoingCounts {
    const out: OutgoingCounts = { pending: 0, sent: 0, failed: 0 };
    const rows = (agentId === undefined ? this.q.allCounts.all() : this.q.counts.all(agentId)) as { status: OutgoingStatus; n: number }[];
    for (const r of rows) out[r.status] = r.n;
    return out;
  }

  lastError(agentId: string): string | null {
    return (this.q.lastError.get(agentId) as string | undefined) ?? null;
  }

  /** Tries one row now (a call file answers after it); resolves with the row as it is then. */
  async tryNow(agentId: string, id: string): Promise<OutgoingRecord> {
    const running = this.inflight.get(key(agentId, id));
    if (running) await running;
    else {
      const row = this.q.one.get(agentId, id) as Row | undefined;
      if (row?.status === 'pending') await this.attempt(row);
    }
    const rec = this.record(agentId, id);
    if (!rec) throw new FsError('ENOENT', `/nostr/outgoing/${id}.json`, 'no such outgoing event');
    return rec;
  }

  /** Looks for due rows soon (after a tick committed some, at start). */
  poke(): void {
    if (this.closed || this.passQueued) return;
    this.passQueued = true;
    setImmediate(() => {
      this.passQueued = false;
      this.pass();
    });
  }

  private pass(): void {
    if (this.closed) return;
    const room = (this.o.concurrency ?? 16) - this.inflight.size;
    if (room > 0) {
      const due = this.q.due.all(this.now(), room + this.inflight.size) as Row[];
      let started = 0;
      for (const row of due) {
        if (started >= room) break;
        if (this.inflight.has(key(row.agent_id, row.id))) continue;
        started++;
        void this.attempt(row);
      }
    }
    this.armWake();
  }

  /** A timer for the earliest pending row that is not due yet. */
  private armWake(): void {
    const next = this.q.nextDue.get() as number | null;
    if (next === null) return;
    const at = Math.max(next, this.now() + 50);
    if (this.wakeAt !== undefined && this.wakeAt <= at) return;
    this.cancelWake?.();
    this.wakeAt = at;
    this.cancelWake = this.timers.after(at - this.now(), () => {
      this.wakeAt = undefined;
      this.cancelWake = undefined;
      this.pass();
    });
  }

  private attempt(row: Row): Promise<void> {
    const k = key(row.agent_id, row.id);
    const work = this.tryRow(row)
      .catch((err: unknown) => {
        // A fault of ours (the database): the row stays as it was and is tried again later.
        this.o.trace(row.agent_id, { type: 'nostr_send_failed', id: row.id, kind: row.kind, error: errorText(err), final: false });
      })
      .finally(() => {
        this.inflight.delete(k);
        // Whatever the outcome, the next due row (this one's retry, or one waiting for room) gets its turn.
        this.poke();
      });
    this.inflight.set(k, work);
    return work;
  }

  private async tryRow(row: Row): Promise<void> {
    const agentId = row.agent_id;
    const signer = this.o.signerOf(agentId);
    let event = row.event ? (JSON.parse(row.event) as Event) : undefined;
    if (!event) {
      if (!signer) return this.finish(row, 'failed', null, 'the agent has no identity key (deleted?)');
      const order = JSON.parse(row.request) as OutgoingOrder;
      let built: { event: Event; message_id: string | null };
      try {
        built = await build(signer, order, `/nostr/outgoing/${row.id}.json`);
      } catch (err) {
        return this.finish(row, 'failed', null, errorText(err));
      }
      event = built.event;
      const ev = event;
      this.o.storage.tx(() => this.q.built.run(JSON.stringify(ev), ev.id, built.message_id, this.now(), agentId, row.id));
    }
    const relays = JSON.parse(row.relays) as string[];
    if (relays.length === 0) return this.finish(row, 'failed', null, 'no relays to send to (set nostr.relays in config.json or the agent\'s nostr section)');
    const answers = await this.o.pool.publish(event, relays, signer ? { signer } : {});
    if (this.closed) return; // the pool closed under the try: it counts for nothing, the next start tries again
    const ok = Object.values(answers).some((a) => a === 'ok');
    if (ok) return this.finish(row, 'sent', answers, null, event.id);
    const error = Object.entries(answers).map(([url, a]) => `${url}: ${a}`).join('; ');
    return this.finish(row, row.attempts + 1 >= this.schedule.attempts ? 'failed' : 'pending', answers, error, event.id);
  }

  private finish(row: Row, status: OutgoingStatus, answers: Record<string, string> | null, error: string | null, eventId: string | null = null): void {
    const now = this.now();
    const attempts = row.attempts + 1;
    const retryIn = status === 'pending' ? backoffDelay(attempts - 1, { initialMs: this.schedule.initialMs, maxMs: this.schedule.maxMs, factor: 2, jitter: 0.2 }) : 0;
    this.o.storage.tx(() => {
      const changed = this.q.tried.run(status, attempts, now + retryIn, answers && JSON.stringify(answers), error, now, row.agent_id, row.id).changes;
      if (!changed) return;
      this.o.storage.events.emit(row.agent_id, `/nostr/outgoing/${row.id}.json`, 'modified', { version: attempts + 1 });
      if (status === 'sent') {
        this.totals.sent++;
        this.o.trace(row.agent_id, { type: 'nostr_sent', id: row.id, kind: row.kind, event_id: eventId, attempts, relays: answers });
      } else {
        this.totals.failed_tries++;
        if (status === 'failed') this.totals.failed++;
        this.o.trace(row.agent_id, {
          type: 'nostr_send_failed',
          id: row.id,
          kind: row.kind,
          event_id: eventId,
          attempts,
          error,
          final: status === 'failed',
          ...(status === 'pending' ? { retry_in_ms: retryIn } : {}),
          ...(answers ? { relays: answers } : {}),
        });
      }
    });
  }

  /** Stops trying (rows stay as they are for the next start) and waits for tries under way. */
  async close(): Promise<void> {
    this.closed = true;
    this.timers.clear();
    await Promise.all([...this.inflight.values()]);
  }
}

async function build(signer: NostrSigner, order: OutgoingOrder, path: string): Promise<{ event: Event; message_id: string | null }> {
  if (order.kind === 'event') return { event: await signer.signEvent(order.template), message_id: null };
  const dm = await buildDm(signer, { to: order.to, text: order.text, scheme: order.scheme, ...(order.reply_to ? { replyTo: order.reply_to } : {}) }, path);
  return { event: dm.event, message_id: dm.message_id };
}

function recordOf(row: Row): OutgoingRecord {
  const order = JSON.parse(row.request) as OutgoingOrder;
  const rec: OutgoingRecord = {
    id: row.id,
    kind: row.kind,
    origin: row.origin,
    status: row.status,
    event_id: row.event_id,
    message_id: row.message_id,
    relays: JSON.parse(row.relays) as string[],
    answers: row.answers ? (JSON.parse(row.answers) as Record<string, string>) : null,
    attempts: row.attempts,
    next_attempt_at: row.status === 'pending' ? row.next_at : null,
    error: row.last_error,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
  if (order.kind === 'dm') {
    rec.to = /^[0-9a-f]{64}$/.test(order.to) ? nip19.npubEncode(order.to) : order.to;
    rec.scheme = order.scheme;
  }
  return rec;
}
