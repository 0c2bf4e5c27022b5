/**
 * What every capability engine (compute, containers) holds the same way: its agents' policies and the
 * service budget level they cap, the idempotency journal behind `new`, the trace sink, and the event
 * channel of each agent's mount. An engine extends CapabilityCore with a CapabilitySpec and adds its own
 * work (jobs, sessions) on top.
 */
import type { EventChannel } from '../../fs/events.js';
import { BudgetLedger, type BudgetUsage } from '../../runtime/budget-ledger.js';
import { IdempotencyJournal } from '../../runtime/idempotency-journal.js';
import type { Storage } from '../../runtime/storage/index.js';
import { IdempotentSubmit } from './idempotent.js';
import { PolicyStore, type PolicyCodec } from './policy-store.js';
import { eventLogTrace, type TraceSink } from './trace-sink.js';

/** The policy fields the kit reads: the caps of the `service:<name>` budget level. */
export interface CappedPolicy {
  max_cost_per_tick: number | null;
  max_cost_per_day: number | null;
}

/** What the server gives every capability engine (the engines' options extend it). */
export interface CapabilityOptions {
  storage: Storage;
  ledger?: BudgetLedger | undefined;
  journal?: IdempotencyJournal | undefined;
  /** The server's default policy (config.json `<service>.policy`). */
  policy?: unknown;
  trace?: TraceSink | undefined;
  /** Where the service is mounted in an agent's namespace (its events are recorded there). */
  mountPath?: string | undefined;
  now?: (() => number) | undefined;
}

/** What a capability says about itself to the kit. */
export interface CapabilitySpec<P> {
  /** Its name: budget level `service:<name>`, journal scope, trace source. */
  service: string;
  /** Its policies' table and rules, and where config.json keeps its defaults (for errors). */
  policyTable: string;
  codec: PolicyCodec<P>;
  defaultsWhere: string;
  /** Its mount path unless the options say another. */
  mountPath: string;
  /** The journal value's id field, its noun in messages, and raw request fields that do not change what a request is. */
  submits: { idField: string; noun: string; ignore?: readonly string[] };
}

export class CapabilityCore<P extends CappedPolicy> {
  readonly service: string;
  readonly now: () => number;
  readonly storage: Storage;
  readonly ledger: BudgetLedger;
  readonly journal: IdempotencyJournal;
  readonly policies: PolicyStore<P>;
  readonly submits: IdempotentSubmit;
  readonly trace: TraceSink;
  readonly mountPath: string;
  /** The budget level of the service's own caps (policy max_cost_per_tick/day). */
  readonly serviceLevel: string;
  private readonly channels = new Map<string, EventChannel>();
  private readonly capsApplied = new Map<string, P>();

  constructor(options: CapabilityOptions, spec: CapabilitySpec<P>) {
    this.service = spec.service;
    this.now = options.now ?? (() => Date.now());
    this.storage = options.storage;
    this.ledger = options.ledger ?? new BudgetLedger(options.storage);
    this.journal = options.journal ?? new IdempotencyJournal(options.storage);
    this.policies = new PolicyStore(options.storage, spec.policyTable, spec.codec, options.policy ?? {}, spec.defaultsWhere);
    this.submits = new IdempotentSubmit({ journal: this.journal, service: spec.service, ...spec.submits });
    this.trace = options.trace ?? eventLogTrace(options.storage, spec.service);
    this.mountPath = options.mountPath ?? spec.mountPath;
    this.serviceLevel = `service:${spec.service}`;
  }

  /** The event channel of an agent's mount. */
  channel(agentId: string): EventChannel {
    let ch = this.channels.get(agentId);
    if (!ch) {
      ch = this.storage.events.channel(agentId, this.mountPath);
      this.channels.set(agentId, ch);
    }
    return ch;
  }

  policy(agentId: string): P {
    return this.policies.get(agentId).policy;
  }

  /** Makes the ledger's service level limits match the policy caps (once per resolved policy). */
  applyCaps(agentId: string, policy: P = this.policy(agentId)): void {
    if (this.capsApplied.get(agentId) === policy) return;
    this.capsApplied.set(agentId, policy);
    const current = this.ledger.limits(agentId, this.serviceLevel);
    if (current.tick !== policy.max_cost_per_tick || current.day !== policy.max_cost_per_day) {
      this.ledger.setLimits(agentId, { tick: policy.max_cost_per_tick, day: policy.max_cost_per_day }, this.serviceLevel);
    }
  }

  /** Replaces an agent's policy (what was written is stored); its caps become the service level's limits. */
  setPolicy(agentId: string, value: unknown, path = '/policy'): P {
    const now = this.now();
    try {
      return this.storage.tx(
        () => {
          const { policy, version } = this.policies.set(agentId, value, path, now);
          this.applyCaps(agentId, policy);
          this.channel(agentId).emit('/policy', 'modified', { version });
          return policy;
        },
        { immediate: true },
      );
    } catch (err) {
      this.policies.invalidate(agentId);
      throw err;
    }
  }

  /** The budget part of `usage`: the agent's windows, the service level (named by the service) and the scopes. */
  budgetUsage(agentId: string): { unit: string; tick: BudgetUsage['tick']; day: BudgetUsage['day'] } & Record<string, unknown> {
    const all = this.ledger.usageAll(agentId);
    const scopes = Object.fromEntries(Object.entries(all.scopes).filter(([k]) => !k.startsWith('service:')));
    return {
      unit: 'micro-USD',
      tick: all.agent.tick,
      day: all.agent.day,
      [this.service]: all.scopes[this.serviceLevel] ?? this.ledger.usage(agentId, this.serviceLevel),
      scopes,
    };
  }

  /** Drops the agent's policy and idempotency keys (inside the caller's transaction). */
  forgetRecords(agentId: string): void {
    this.policies.remove(agentId);
    this.submits.forget(agentId);
  }

  /** Drops what is cached for a deleted agent (after its records went). */
  forgetCached(agentId: string): void {
    this.capsApplied.delete(agentId);
    this.channels.delete(agentId);
  }
}
