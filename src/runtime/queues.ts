/**
 * Inbox and deadletter operations outside ticks: durable enqueue with the overflow policy, discard by id,
 * deadletter replay/discard/purge. Each is one transaction with its events and trace. Nothing is ever
 * lost silently: every drop or dead-lettering is counted on the agent row and traced.
 */
import { FsError } from '../fs/errors.js';
import type { Storage } from './storage/index.js';
import type { RuntimeStore, AgentRow } from './store/index.js';
import type { Tracer } from './trace.js';
import { InboxPolicySchema, type Envelope, type InboxPolicy } from './spec.js';

export type EnqueueStatus = 'queued' | 'duplicate' | 'deadlettered';

export interface EnqueueOutcome {
  status: EnqueueStatus;
  id: string;
  /** With drop-oldest: the envelope that made room. */
  dropped?: string;
}

/** Retry-After for a full inbox. */
const FULL_RETRY_MS = 1000;

class Duplicate extends Error {}

export class Queues {
  /** Called after an envelope was queued for an agent (the scheduler may tick it). */
  onEnqueue: (agentId: string) => void = () => undefined;

  private readonly policyCache = new Map<string, { text: string; policy: InboxPolicy }>();

  constructor(
    private readonly storage: Storage,
    private readonly store: RuntimeStore,
    private readonly tracer: Tracer,
  ) {}

  private policyOf(row: AgentRow): InboxPolicy {
    const hit = this.policyCache.get(row.id);
    if (hit && hit.text === row.inbox_policy) return hit.policy;
    const policy = InboxPolicySchema.parse(JSON.parse(row.inbox_policy));
    if (this.policyCache.size > 1024) this.policyCache.clear();
    this.policyCache.set(row.id, { text: row.inbox_policy, policy });
    return policy;
  }

  /**
   * Queues one envelope, durably, before returning. An id already queued is not queued twice. When the
   * inbox is full: `reject` fails with EAGAIN, `drop-oldest` drops the oldest queued envelope,
   * `deadletter` puts the new one in the deadletter. A dormant agent wakes.
   */
  enqueue(agentId: string, env: Envelope, path: string): EnqueueOutcome {
    const row = this.store.getAgent(agentId);
    if (!row) throw new FsError('ENOENT', path, `no agent '${agentId}'`);
    const policy = this.policyOf(row);
    const now = Date.now();
    const body = JSON.stringify(env);
    let outcome: EnqueueOutcome;
    try {
      outcome = this.storage.tx(() => {
        let slot = this.store.reserveInboxSlot(agentId, policy.max_depth, now);
        let dropped: string | undefined;
        if (!slot) {
          if (this.store.inboxHas(agentId, env.id)) throw new Duplicate();
          if (policy.overflow === 'reject') {
            throw new FsError('EAGAIN', path, `inbox full (${policy.max_depth} envelopes); retry later`, { retryAfterMs: FULL_RETRY_MS });
          }
          if (policy.overflow === 'deadletter') {
            this.deadletter(agentId, env.id, body, 'overflow', `inbox full (${policy.max_depth} envelopes)`, 0, policy, now);
            return { status: 'deadlettered' as const, id: env.id };
          }
          const oldest = this.store.inboxOldest(agentId);
          if (oldest) {
            this.store.inboxRemove(agentId, [oldest.seq]);
            this.store.inboxChanged(agentId, 1, now);
            this.store.addCounters(agentId, { dropped: 1 });
            this.tracer.emit(agentId, { type: 'dropped', envelope_id: oldest.env_id, reason: 'overflow', policy: 'drop-oldest' });
            dropped = oldest.env_id;
          }
          slot = this.store.reserveInboxSlot(agentId, policy.max_depth, now);
          if (!slot) throw new FsError('EAGAIN', path, 'inbox full', { retryAfterMs: FULL_RETRY_MS });
        }
        if (!this.store.insertInbox(agentId, slot.seq, env.id, env.from, env.created_at, body)) throw new Duplicate();
        this.storage.events.emit(agentId, '/inbox', 'modified', { version: slot.version });
        if (row.state === 'dormant') this.wake(agentId, 'inbox');
        return dropped ? { status: 'queued' as const, id: env.id, dropped } : { status: 'queued' as const, id: env.id };
      });
    } catch (err) {
      if (err instanceof Duplicate) return { status: 'duplicate', id: env.id };
      if (err instanceof FsError && err.code === 'EAGAIN') this.countRejected(agentId, env.id);
      throw err;
    }
    this.onEnqueue(agentId);
    return outcome;
  }

  private countRejected(agentId: string, envId: string): void {
    this.storage.tx(() => {
      this.store.addCounters(agentId, { rejected: 1 });
      this.tracer.emit(agentId, { type: 'rejected', envelope_id: envId, reason: 'inbox full' });
    });
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

  policy(agentId: string, path: string): InboxPolicy {
    const row = this.store.getAgent(agentId);
    if (!row) throw new FsError('ENOENT', path, `no agent '${agentId}'`);
    return this.policyOf(row);
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
        const slot = this.store.reserveInboxSlot(agentId, this.policyOf(row).max_depth, now);
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
