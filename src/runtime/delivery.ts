/**
 * A tick's messages to other agents. Its outbox envelopes addressed to an agent (`to: "agent:<id>"` or
 * `to: "<id>"`) are signed by the sender (agent-messages.ts) before the commit and handed to the
 * receiver's inbox inside the tick's own transaction, so a delivery commits exactly when the tick does:
 * never lost, never twice. A delivery that is refused does not fail the tick: the outbox entry records
 * why (`delivery`), both agents' traces say so, and the sender's next tick gets a `delivery_failed`
 * trigger naming the entry (a notice, notice-table.ts). An envelope one hop past the receiver's
 * `max_hops` goes to its deadletter (reason `hop_limit`).
 */
import { FsError } from '../fs/errors.js';
import type { RuntimeStore } from './agent-store/index.js';
import { agentOfAddress, hopsOf, type AgentMessages } from './agent-messages.js';
import { parseAgent } from './agents.js';
import { agentAddress, messageFromWrite, newId } from './envelope.js';
import type { OutboxDraft } from './programs/index.js';
import type { EnqueueOutcome, Queues } from './queues.js';
import type { Storage } from './storage/index.js';
import type { Envelope, Trigger } from './spec.js';
import type { Tracer } from './trace.js';

/** One envelope of a tick's outbox, and the agent it is for. */
export interface Outgoing {
  env: Envelope;
  body: string;
  /** The local agent it is addressed to (absent: addressed to no agent, or to nobody). */
  target?: string;
}

/** What the outbox row records of a delivery. */
export interface DeliveryRecord {
  status: 'delivered' | 'duplicate' | 'deadlettered' | 'failed';
  to: string;
  at: number;
  code?: string;
  error?: string;
  reason?: string;
}

/** Notices a tick takes at most (the rest wait for the next one). */
const NOTICES_PER_TICK = 100;

export class Delivery {
  constructor(
    private readonly storage: Pick<Storage, 'tx'>,
    private readonly store: RuntimeStore,
    private readonly tracer: Tracer,
    private readonly queues: Queues,
    readonly messages: AgentMessages,
  ) {}

  /** The `delivery_failed` triggers waiting for the agent's tick, and what to clear when it commits. */
  notices(agentId: string): { triggers: Trigger[]; last: number; count: number } {
    const rows = this.store.noticesOf(agentId, NOTICES_PER_TICK);
    return { triggers: rows.map((r) => JSON.parse(r.body) as Trigger), last: rows.at(-1)?.seq ?? 0, count: rows.length };
  }

  /** The message trigger of a queued envelope: `verified` when its sender's current key signed it to `receiver`. */
  messageTrigger(env: Envelope, attempt: number, receiver: string): Trigger {
    return { type: 'message', envelope_id: env.id, from: env.from, source: env.source, attempt, verified: this.messages.verify(env, receiver), envelope: env };
  }

  /**
   * The envelopes of a tick's outbox, as they will be stored: `from: "agent:<id>"`, `metadata.hops` one
   * more than the envelope each answers (`metadata.in_reply_to`), else than the most any envelope of the
   * tick had, never less than the program asked; signed when addressed to an agent that exists.
   */
  prepare(agentId: string, drafts: readonly OutboxDraft[], triggers: readonly Trigger[], now: number): Outgoing[] {
    const received = new Map<string, Envelope>();
    let most = 0;
    for (const t of triggers) {
      if (t.type !== 'message') continue;
      received.set(t.envelope_id, t.envelope);
      most = Math.max(most, hopsOf(t.envelope));
    }
    return drafts.map((d) => {
      const metadata: Record<string, unknown> = { ...d.metadata };
      const answered = typeof metadata['in_reply_to'] === 'string' ? received.get(metadata['in_reply_to']) : undefined;
      const asked = typeof metadata['hops'] === 'number' && Number.isInteger(metadata['hops']) ? (metadata['hops'] as number) : 0;
      metadata['hops'] = Math.max((answered ? hopsOf(answered) : most) + 1, asked);
      const target = d.to === undefined ? undefined : agentOfAddress(d.to);
      let env: Envelope;
      if (target !== undefined && this.store.hasAgent(target)) {
        const base = { created_at: now, payload: d.payload ?? null, metadata, to: d.to!, ...(d.id !== undefined ? { id: d.id } : {}) };
        env = this.messages.sign(agentId, target, base, '/outbox', answered?.signed);
      } else {
        env = { id: d.id ?? newId(now), source: 'agent', from: agentAddress(agentId), created_at: now, payload: d.payload ?? null, metadata };
        if (d.to !== undefined) env.to = d.to;
      }
      return { env, body: JSON.stringify(env), ...(target !== undefined ? { target } : {}) };
    });
  }

  /**
   * Inside the sender's tick transaction: hands each envelope addressed to an agent to its inbox and
   * returns what became of each (by envelope id) and the agents to poke once it commits.
   */
  deliver(sender: string, tick: number, outgoing: readonly Outgoing[], now: number): { records: Map<string, DeliveryRecord>; poke: Set<string> } {
    const records = new Map<string, DeliveryRecord>();
    const poke = new Set<string>();
    for (const o of outgoing) {
      if (o.target === undefined) continue;
      const record = this.deliverOne(sender, tick, o, o.target, now);
      records.set(o.env.id, record);
      if (record.status === 'failed') poke.add(sender);
      else poke.add(o.target);
    }
    return { records, poke };
  }

  private deliverOne(sender: string, tick: number, o: Outgoing, target: string, now: number): DeliveryRecord {
    const path = `/agents/${target}/inbox`;
    const to = o.env.to ?? target;
    const refused = this.messages.refusal(sender, target, path);
    if (refused) return this.failed(sender, tick, o.env, target, refused, now);
    const max = this.messages.maxHops(target)!;
    const hops = hopsOf(o.env);
    if (hops > max) {
      const error = `${hops} hops, over max_hops ${max} of agent '${target}'`;
      const policy = parseAgent(this.store.getAgent(target)!).inboxPolicy;
      this.queues.deadletter(target, o.env.id, o.body, 'hop_limit', error, 0, policy, now);
      this.tracer.emit(sender, { type: 'message_sent', tick, envelope_id: o.env.id, to, status: 'deadlettered', reason: 'hop_limit' });
      return { status: 'deadlettered', to, at: now, reason: 'hop_limit', error };
    }
    try {
      const outcome = this.queues.enqueueInTx(target, o.env, path);
      const status = outcome.status === 'queued' ? 'delivered' : outcome.status;
      this.tracer.emit(sender, { type: 'message_sent', tick, envelope_id: o.env.id, to, status });
      return status === 'deadlettered' ? { status, to, at: now, reason: 'overflow' } : { status, to, at: now };
    } catch (err) {
      if (!(err instanceof FsError)) throw err;
      return this.failed(sender, tick, o.env, target, err, now);
    }
  }

  /**
   * A message `sender` writes to `receiver` itself (its `peers/<id>/inbox`, or the other's inbox on the
   * mount): refused as a delivery would be, but to the writer (ENOENT, EACCES, EAGAIN for a full inbox
   * under `reject`); signed; one hop past what the sender's running tick received; durable when it
   * resolves. One past the receiver's `max_hops` goes to its deadletter (the write succeeds).
   */
  async send(sender: string, receiver: string, data: Uint8Array, path: string): Promise<EnqueueOutcome> {
    const refused = this.messages.refusal(sender, receiver, path);
    if (refused) throw refused;
    const draft = messageFromWrite(data, path);
    const metadata: Record<string, unknown> = { ...draft.metadata };
    const asked = typeof metadata['hops'] === 'number' && Number.isInteger(metadata['hops']) ? (metadata['hops'] as number) : 0;
    metadata['hops'] = this.messages.nextHops(sender, asked);
    const now = Date.now();
    const to = agentAddress(receiver);
    const env = this.messages.sign(sender, receiver, { created_at: now, payload: draft.payload, metadata, to, ...(draft.id !== undefined ? { id: draft.id } : {}) }, path);
    const max = this.messages.maxHops(receiver)!;
    if ((metadata['hops'] as number) > max) {
      this.storage.tx(() => {
        const policy = parseAgent(this.store.getAgent(receiver)!).inboxPolicy;
        this.queues.deadletter(receiver, env.id, JSON.stringify(env), 'hop_limit', `${String(metadata['hops'])} hops, over max_hops ${max} of agent '${receiver}'`, 0, policy, now);
        this.tracer.emit(sender, { type: 'message_sent', envelope_id: env.id, to, status: 'deadlettered', reason: 'hop_limit' });
      });
      return { status: 'deadlettered', id: env.id };
    }
    return this.queues.enqueue(receiver, env, path, (outcome) => {
      const status = outcome.status === 'queued' ? 'delivered' : outcome.status;
      this.tracer.emit(sender, { type: 'message_sent', envelope_id: env.id, to, status });
    });
  }

  private failed(sender: string, tick: number, env: Envelope, target: string, err: FsError, now: number): DeliveryRecord {
    const to = env.to ?? target;
    const error = err.message;
    this.tracer.emit(sender, { type: 'delivery_failed', tick, envelope_id: env.id, to, code: err.code, error });
    // The receiver learns of a refusal by its policy; a full inbox is traced by the queue (`rejected`).
    if (err.code === 'EACCES') this.tracer.emit(target, { type: 'refused', envelope_id: env.id, from: env.from, code: err.code, error });
    const notice: Trigger = { type: 'delivery_failed', envelope_id: env.id, to, code: err.code, error };
    this.store.noticeAdd(sender, JSON.stringify(notice));
    return { status: 'failed', to, at: now, code: err.code, error };
  }
}
