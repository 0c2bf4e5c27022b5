/**
 * Inbox and deadletter operations outside ticks: durable enqueue with the overflow policy, discard by id,
 * deadletter replay/discard/purge. Each is one transaction with its events and trace. Nothing is ever
 * lost silently: every drop or dead-lettering is counted on the agent row and traced.
 */
import { FsError } from '../fs/errors.js';
import type { Storage } from './storage/index.js';
import type { InboxMeta, RuntimeStore } from './agent-store/index.js';
import type { Tracer } from './trace.js';
import { InboxPolicySchema, type Envelope, type InboxPolicy } from './spec.js';

export type EnqueueStatus = 'queued' | 'duplicate' | 'deadlettered';

export interface EnqueueOutcome {
  status: EnqueueStatus;
  id: string;
  /** The inbox version after a queued envelope. */
  version?: number;
  /** With drop-oldest: the envelope that made room. */
  dropped?: string;
}

/** Retry-After for a full inbox. */
const FULL_RETRY_MS = 1000;

class Duplicate extends Error {}

/** One agent's inbox during a group commit: its row read once, its counters written once. */
interface BatchInbox {
  meta: InboxMeta;
  enqueued: number;
  /** Something besides enqueues changed the counters (drop-oldest). */
  changed: boolean;
}

interface PendingEnqueue {
  agentId: string;
  env: Envelope;
  path: string;
  resolve: (outcome: EnqueueOutcome) => void;
  reject: (err: unknown) => void;
}

export class Queues {
  /** Called after an envelope was queued for an agent (the scheduler may tick it). */
  onEnqueue: (agentId: string) => void = () => undefined;

  private readonly policyCache = new Map<string, { text: string; policy: InboxPolicy }>();
  private pending: PendingEnqueue[] = [];
  /** Enqueue transactions committed, and the writes they carried (group commit at work). */
  readonly commitStats = { transactions: 0, writes: 0 };

  constructor(
    private readonly storage: Storage,
    private readonly store: RuntimeStore,
    private readonly tracer: Tracer,
  ) {}

  private policyOf(row: { id?: string; inbox_policy: string }, agentId: string): InboxPolicy {
    const hit = this.policyCache.get(agentId);
    if (hit && hit.text === row.inbox_policy) return hit.policy;
    const policy = InboxPolicySchema.parse(JSON.parse(row.inbox_policy));
    if (this.policyCache.size > 1024) this.policyCache.clear();
    this.policyCache.set(agentId, { text: row.inbox_policy, policy });
    return policy;
  }

  /**
   * Queues one envelope, durably: the promise resolves once it is committed. An id already queued is not
   * queued twice. When the inbox is full: `reject` fails with EAGAIN, `drop-oldest` drops the oldest
   * queued envelope, `deadletter` puts the new one in the deadletter. A dormant agent wakes.
   *
   * Group commit: enqueues made while other work of the same turn is still running (concurrent writers)
   * are committed together in one transaction, each in its own savepoint, so one writer's failure does
   * not touch the others and each still returns only after its envelope is on disk.
   */
  enqueue(agentId: string, env: Envelope, path: string): Promise<EnqueueOutcome> {
    return new Promise((resolve, reject) => {
      this.pending.push({ agentId, env, path, resolve, reject });
      // After every promise continuation of this turn has run: all concurrent writers are in the batch.
      if (this.pending.length === 1) process.nextTick(() => this.flush());
    });
  }

  /**
   * Queues one envelope inside the caller's transaction (synchronously): what it writes commits or
   * rolls back with the caller's other writes (a capability recording what it delivered). A duplicate
   * id is an outcome; a full inbox under `reject` throws EAGAIN before anything is written.
   */
  enqueueWithin(agentId: string, env: Envelope, path: string): EnqueueOutcome {
    if (!this.storage.db.inTransaction) throw new Error('enqueueWithin runs inside a transaction');
    const inboxes = new Map<string, BatchInbox>();
    let outcome: EnqueueOutcome;
    try {
      outcome = this.enqueueOne({ agentId, env, path, resolve: () => undefined, reject: () => undefined }, inboxes);
    } catch (err) {
      if (err instanceof Duplicate) return { status: 'duplicate', id: env.id };
      // A refusal rolls the caller's transaction back, so it is the caller's to count and retry.
      throw err;
    }
    for (const [id, b] of inboxes) if (b.enqueued > 0 || b.changed) this.store.setInboxCounters(id, b.meta, b.enqueued);
    // The scheduler only looks once the current turn is over, after the caller's commit.
    if (outcome.status === 'queued') this.onEnqueue(agentId);
    return outcome;
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    const results: (EnqueueOutcome | Duplicate | FsError)[] = [];
    const inboxes = new Map<string, BatchInbox>();
    try {
      this.storage.tx(() => {
        for (const item of batch) {
          try {
            results.push(this.enqueueOne(item, inboxes));
          } catch (err) {
            // enqueueOne raises its expected errors before it writes anything, so the others in the
            // batch are unaffected; anything else aborts the whole transaction.
            if (!(err instanceof Duplicate || err instanceof FsError)) throw err;
            results.push(err);
            if (err instanceof FsError && err.code === 'EAGAIN') this.countRejected(item.agentId, item.env.id);
          }
        }
        // Each agent row once per batch: depth, sequence, version and counter of its inbox.
        for (const [agentId, b] of inboxes) if (b.enqueued > 0 || b.changed) this.store.setInboxCounters(agentId, b.meta, b.enqueued);
      });
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    this.commitStats.transactions++;
    this.commitStats.writes += batch.length;
    batch.forEach((item, i) => {
      const r = results[i];
      if (r instanceof Duplicate) item.resolve({ status: 'duplicate', id: item.env.id });
      else if (r instanceof FsError) item.reject(r);
      else {
        item.resolve(r!);
        this.onEnqueue(item.agentId);
      }
    });
  }

  /**
   * Queues one envelope inside the batch's transaction; the agent's inbox counters are kept in `inboxes`
   * and written once by flush. Throws Duplicate or FsError only before writing anything.
   */
  private enqueueOne({ agentId, env, path }: PendingEnqueue, inboxes: Map<string, BatchInbox>): EnqueueOutcome {
    let b = inboxes.get(agentId);
    if (!b) {
      const meta = this.store.inboxMeta(agentId);
      if (!meta) throw new FsError('ENOENT', path, `no agent '${agentId}'`);
      b = { meta, enqueued: 0, changed: false };
      inboxes.set(agentId, b);
    }
    const { meta } = b;
    const policy = this.policyOf(meta, agentId);
    const now = Date.now();
    const body = JSON.stringify(env);
    let dropped: string | undefined;
    if (meta.queue_depth >= policy.max_depth) {
      if (this.store.inboxHas(agentId, env.id)) throw new Duplicate();
      if (policy.overflow === 'reject') {
        throw new FsError('EAGAIN', path, `inbox full (${policy.max_depth} envelopes); retry later`, { retryAfterMs: FULL_RETRY_MS });
      }
      if (policy.overflow === 'deadletter') {
        this.deadletter(agentId, env.id, body, 'overflow', `inbox full (${policy.max_depth} envelopes)`, 0, policy, now);
        return { status: 'deadlettered', id: env.id };
      }
      // drop-oldest: drop until the new envelope fits (more than one when max_depth was lowered).
      while (meta.queue_depth >= policy.max_depth) {
        const oldest = this.store.inboxOldest(agentId);
        if (!oldest) throw new Error(`inbox of ${agentId} counts ${meta.queue_depth} envelopes but holds none`);
        this.store.inboxRemove(agentId, [oldest.seq]);
        meta.queue_depth--;
        meta.inbox_version++;
        b.changed = true;
        this.store.addCounters(agentId, { dropped: 1 });
        this.tracer.emit(agentId, { type: 'dropped', envelope_id: oldest.env_id, reason: 'overflow', policy: 'drop-oldest' });
        dropped = oldest.env_id;
      }
    }
    // The unique (agent, id) index makes the insert itself the duplicate check.
    if (!this.store.insertInbox(agentId, meta.inbox_seq + 1, env.id, env.from, env.created_at, body)) throw new Duplicate();
    meta.inbox_seq++;
    meta.inbox_version++;
    meta.queue_depth++;
    meta.inbox_mtime = now;
    b.enqueued++;
    // One change event per envelope, naming it (watchers of /inbox learn what arrived).
    this.storage.events.emit(agentId, '/inbox', 'modified', { version: meta.inbox_version, data: { envelope_id: env.id } });
    if (meta.state === 'dormant') {
      this.wake(agentId, 'inbox');
      meta.state = 'active';
    }
    const outcome: EnqueueOutcome = { status: 'queued', id: env.id, version: meta.inbox_version };
    if (dropped) outcome.dropped = dropped;
    return outcome;
  }

  /** Counts a rejected write, inside the caller's transaction. */
  private countRejected(agentId: string, envId: string): void {
    if (!this.store.hasAgent(agentId)) return;
    this.store.addCounters(agentId, { rejected: 1 });
    this.tracer.emit(agentId, { type: 'rejected', envelope_id: envId, reason: 'inbox full' });
  }

  /** Dormant -> active, inside the caller's transaction. */
  wake(agentId: string, reason: string): void {
    this.store.setState(agentId, 'active', Date.now());
    this.storage.events.emit(agentId, '/status', 'modified');
    this.tracer.emit(agentId, { type: 'state_change', from: 'dormant', to: 'active', reason });
  }

  /**
   * Puts an envelope in the deadletter, inside the caller's transaction. A full deadletter drops its
   * oldest entry (counted as dropped, traced).
   */
  deadletter(agentId: string, envId: string, body: string, reason: string, error: string | null, attempts: number, policy: InboxPolicy, now: number): void {
    if (this.store.deadletterDepth(agentId) >= policy.deadletter_max && !this.store.deadletterOne(agentId, envId)) {
      const oldest = this.store.deadletterOldest(agentId);
      if (oldest) {
        this.store.deadletterRemove(agentId, oldest.env_id);
        this.store.addCounters(agentId, { dropped: 1 });
        this.storage.events.emit(agentId, `/deadletter/${oldest.env_id}.json`, 'deleted');
        this.tracer.emit(agentId, { type: 'dropped', envelope_id: oldest.env_id, reason: 'deadletter full' });
      }
    }
    this.store.deadletterAdd(agentId, envId, body, reason, error, attempts, now);
    this.store.addCounters(agentId, { deadlettered: 1 });
    this.storage.events.emit(agentId, `/deadletter/${envId}.json`, 'created');
    const trace: { type: string; [k: string]: unknown } = { type: 'deadlettered', envelope_id: envId, reason, attempts };
    if (error) trace['error'] = error;
    this.tracer.emit(agentId, trace);
  }

  /**
   * Fails with EAGAIN when a write now would be rejected (a full inbox under the `reject` policy), so a
   * writer can learn it when it opens the file. The enqueue still decides: this is only an early answer.
   */
  admit(agentId: string, path: string): void {
    const meta = this.store.inboxMeta(agentId);
    if (!meta) throw new FsError('ENOENT', path, `no agent '${agentId}'`);
    const policy = this.policyOf(meta, agentId);
    if (policy.overflow === 'reject' && meta.queue_depth >= policy.max_depth) {
      throw new FsError('EAGAIN', path, `inbox full (${policy.max_depth} envelopes); retry later`, { retryAfterMs: FULL_RETRY_MS });
    }
  }

  policy(agentId: string, path: string): InboxPolicy {
    const row = this.store.getAgent(agentId);
    if (!row) throw new FsError('ENOENT', path, `no agent '${agentId}'`);
    return this.policyOf(row, agentId);
  }

  /** Removes one queued envelope (counted as discarded, traced). */
  discard(agentId: string, envId: string, path: string): void {
    this.storage.tx(() => {
      const row = this.store.inboxOne(agentId, envId);
      if (!row) throw new FsError('ENOENT', path, `no queued envelope '${envId}'`);
      const now = Date.now();
      this.store.inboxRemove(agentId, [row.seq]);
      const version = this.store.inboxChanged(agentId, 1, now);
      this.store.addCounters(agentId, { discarded: 1 });
      this.storage.events.emit(agentId, '/inbox', 'modified', { version });
      this.tracer.emit(agentId, { type: 'discarded', envelope_id: envId, from: 'inbox' });
    });
  }

  /** Moves a dead-lettered envelope back to the end of the inbox, with its attempts reset. */
  replay(agentId: string, envId: string, path: string): void {
    this.storage.tx(() => {
      const row = this.store.getAgent(agentId);
      if (!row) throw new FsError('ENOENT', path, `no agent '${agentId}'`);
      const dead = this.store.deadletterOne(agentId, envId);
      if (!dead) throw new FsError('ENOENT', path, `no dead-lettered envelope '${envId}'`);
      const now = Date.now();
      if (!this.store.inboxHas(agentId, envId)) {
        const slot = this.store.reserveInboxSlot(agentId, this.policyOf(row, agentId).max_depth, now);
        if (!slot) throw new FsError('EAGAIN', path, 'inbox full; cannot replay now', { retryAfterMs: FULL_RETRY_MS });
        const env = JSON.parse(dead.body) as Envelope;
        this.store.insertInbox(agentId, slot.seq, envId, env.from, env.created_at, dead.body);
        this.storage.events.emit(agentId, '/inbox', 'modified', { version: slot.version });
      }
      this.store.deadletterRemove(agentId, envId);
      this.store.addCounters(agentId, { replayed: 1 });
      this.storage.events.emit(agentId, `/deadletter/${envId}.json`, 'deleted');
      this.tracer.emit(agentId, { type: 'replayed', envelope_id: envId });
      if (row.state === 'dormant') this.wake(agentId, 'replay');
    });
    this.onEnqueue(agentId);
  }

  /** Drops one dead-lettered envelope for good (counted as discarded, traced). */
  discardDead(agentId: string, envId: string, path: string): void {
    this.storage.tx(() => {
      if (!this.store.deadletterRemove(agentId, envId)) throw new FsError('ENOENT', path, `no dead-lettered envelope '${envId}'`);
      this.store.addCounters(agentId, { discarded: 1 });
      this.storage.events.emit(agentId, `/deadletter/${envId}.json`, 'deleted');
      this.tracer.emit(agentId, { type: 'discarded', envelope_id: envId, from: 'deadletter' });
    });
  }

  /** Empties the deadletter; returns how many envelopes were dropped. */
  purgeDead(agentId: string): number {
    return this.storage.tx(() => {
      const ids = this.store.deadletterList(agentId).map((r) => r.env_id);
      this.store.deadletterPurge(agentId);
      if (ids.length) this.store.addCounters(agentId, { discarded: ids.length });
      for (const id of ids) this.storage.events.emit(agentId, `/deadletter/${id}.json`, 'deleted');
      this.tracer.emit(agentId, { type: 'purged', count: ids.length });
      return ids.length;
    });
  }
}
