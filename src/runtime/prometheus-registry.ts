/**
 * The server's Prometheus registry (prom-client). Every part registers its own metrics here: the HTTP
 * layer counts requests, latency and watchers; the event log reports its size and live subscribers;
 * the runtime adds ticks and queue depths, per agent too, and what each agent spent. `/runtime/metrics`
 * serves `registry.metrics()`, which `promtool check metrics` passes (test/http/metrics.test.ts).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { AgentFigures } from './agent-store/index.js';
import type { BudgetUsage } from './budget-ledger.js';
import type { Storage } from './storage/index.js';

/**
 * prom-client's process totals that are gauges yet end in `_total`, which the exposition format keeps
 * for counters (promtool: "non-counter metrics should not have _total suffix"). Each is the sum of the
 * gauge of the same name without the suffix, labelled by type, which stays.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function createRegistry(options: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry, prefix: 'agent9_' });
    for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(`agent9_${name}`);
  }
  return registry;
}

let processRegistry: Registry | undefined;

/**
 * The process figures (`agent9_process_*`, `agent9_nodejs_*`), collected once per process: they describe
 * the process, not one server in it, and each collection keeps an event-loop monitor running for good.
 */
export function processMetricsRegistry(): Registry {
  processRegistry ??= createRegistry({ processMetrics: true });
  return processRegistry;
}

/** A gauge whose value is read at scrape time. */
export function gaugeOf(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | Promise<number>,
): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    async collect() {
      this.set(await read());
    },
  });
}

/**
 * A counter whose value is a stored running total, read at scrape time (a total that drops, when an agent
 * is deleted, reads to Prometheus as a counter reset).
 */
export function counterOf(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** Event-log figures: the newest event id and how many live subscriptions are open. */
export function registerStorageMetrics(registry: Registry, storage: Storage): void {
  gaugeOf(registry, 'agent9_events_last_id', 'Id of the newest event in the event log', () => storage.eventStore.lastId());
  gaugeOf(registry, 'agent9_event_subscribers', 'Live event-log subscriptions (watches, stream readers)', () => storage.events.subscriberCount);
}

/** What the runtime exposes to the metrics, without the registry depending on the whole runtime. */
export interface RuntimeFigures {
  agentsByState(): Record<string, number>;
  /** Totals over every agent (one aggregate query). */
  totals(): Record<'ticks' | 'failed' | 'queued' | 'deepest' | 'dead', number>;
  ticksRunning(): number;
  /** Every agent's own figures (one query). */
  agents(): AgentFigures[];
  /** What an agent has spent and holds reserved in its budget windows (the agent level), micro-USD. */
  spend(agentId: string): BudgetUsage;
}

/**
 * A value read once per scrape: the gauges of one scrape share it. A scrape collects its metrics in one
 * turn of the event loop (their collect() run between microtasks), so the value is forgotten at the next
 * turn; kept for a time instead, a scrape right after a change showed the figures from before it.
 */
function perScrape<T>(read: () => T): () => T {
  let cached: { value: T } | undefined;
  return () => {
    if (!cached) {
      cached = { value: read() };
      setImmediate(() => (cached = undefined));
    }
    return cached.value;
  };
}

/** A gauge with labels whose values are all read at scrape time. */
function labelledGauge(registry: Registry, name: string, help: string, labelNames: string[], values: () => [Record<string, string>, number][]): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, v] of values()) this.set(labels, v);
    },
  });
}

/** A counter with labels whose values are stored running totals, read at scrape time. */
function labelledCounter(registry: Registry, name: string, help: string, labelNames: string[], values: () => [Record<string, string>, number][]): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, v] of values()) this.inc(labels, v);
    },
  });
}

/**
 * Per agent (label `agent`): its state, ticks done and failed, time spent in ticks, queue depths, the
 * envelopes it was sent and consumed and the messages it sent; and its spend: what its budget windows
 * (`window` = `tick`, `day`) hold spent and reserved, and their limits where it has one.
 */
function registerAgentMetrics(registry: Registry, rt: RuntimeFigures): void {
  const agents = perScrape(() => rt.agents());
  const each = (value: (a: AgentFigures) => number) => (): [Record<string, string>, number][] => agents().map((a) => [{ agent: a.id }, value(a)]);
  labelledGauge(registry, 'agent9_agent_state', 'An agent is in this lifecycle state (1)', ['agent', 'state'], () =>
    agents().map((a) => [{ agent: a.id, state: a.state }, 1]),
  );
  labelledCounter(registry, 'agent9_agent_ticks_total', 'Ticks an agent completed (as stored)', ['agent'], each((a) => a.tick_count));
  labelledCounter(registry, 'agent9_agent_ticks_failed_total', 'Ticks of an agent that failed', ['agent'], each((a) => a.ticks_failed));
  labelledCounter(registry, 'agent9_agent_tick_seconds_total', 'Time an agent spent in ticks', ['agent'], each((a) => a.tick_ms_total / 1000));
  labelledGauge(registry, 'agent9_agent_inbox_queued', 'Envelopes waiting in an agent\'s inbox', ['agent'], each((a) => a.queue_depth));
  labelledGauge(registry, 'agent9_agent_deadletter_envelopes', 'Envelopes in an agent\'s deadletter', ['agent'], each((a) => a.deadletter_depth));
  labelledCounter(registry, 'agent9_agent_enqueued_total', 'Envelopes queued for an agent', ['agent'], each((a) => a.enqueued));
  labelledCounter(registry, 'agent9_agent_delivered_total', 'Envelopes an agent consumed in committed ticks', ['agent'], each((a) => a.delivered));
  labelledCounter(registry, 'agent9_agent_messages_out_total', 'Messages an agent sent', ['agent'], each((a) => a.messages_out));

  const spend = perScrape(() => agents().map((a) => ({ agent: a.id, usage: rt.spend(a.id) })));
  const windows = (value: (w: BudgetUsage['day']) => number | null) => (): [Record<string, string>, number][] =>
    spend().flatMap(({ agent, usage }) =>
      (['tick', 'day'] as const).flatMap((window): [Record<string, string>, number][] => {
        const v = value(usage[window]);
        return v === null ? [] : [[{ agent, window }, v]];
      }),
    );
  const labels = ['agent', 'window'];
  labelledGauge(registry, 'agent9_agent_budget_spent_micro_usd', 'What an agent spent in its current tick or the last 24 h, micro-USD', labels, windows((w) => w.spent));
  labelledGauge(registry, 'agent9_agent_budget_reserved_micro_usd', 'What an agent holds reserved for work still running, micro-USD', labels, windows((w) => w.reserved));
  labelledGauge(registry, 'agent9_agent_budget_limit_micro_usd', "An agent's budget limit per window, where it has one, micro-USD", labels, windows((w) => w.limit));
}

/**
 * Agents by state, ticks (done, failed, running) and queue depths (total, deepest, dead-lettered), read
 * at scrape time: one aggregate query over the agents table.
 */
export function registerRuntimeMetrics(registry: Registry, rt: RuntimeFigures): void {
  let cached: { at: number; row: Record<string, number> } | undefined;
  // One query per scrape, shared by the gauges below.
  const row = (): Record<string, number> => {
    const now = Date.now();
    if (!cached || now - cached.at > 100) cached = { at: now, row: rt.totals() };
    return cached.row;
  };
  new Gauge({
    name: 'agent9_agents',
    help: 'Agents by lifecycle state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [state, n] of Object.entries(rt.agentsByState())) this.set({ state }, n);
    },
  });
  counterOf(registry, 'agent9_ticks_total', 'Ticks completed, all agents (as stored)', () => row()['ticks']!);
  counterOf(registry, 'agent9_ticks_failed_total', 'Ticks that failed, all agents', () => row()['failed']!);
  gaugeOf(registry, 'agent9_ticks_running', 'Ticks running now', () => rt.ticksRunning());
  gaugeOf(registry, 'agent9_inbox_queued', 'Envelopes waiting in inboxes, all agents', () => row()['queued']!);
  gaugeOf(registry, 'agent9_inbox_queue_depth_max', 'The deepest inbox', () => row()['deepest']!);
  gaugeOf(registry, 'agent9_deadletter_envelopes', 'Envelopes in deadletters, all agents', () => row()['dead']!);
  registerAgentMetrics(registry, rt);
}

/** What /compute exposes to the metrics: providers' overruns (summed over agents) and token ratios. */
export interface ComputeFigures {
  overrunTotals(): { provider: string; model: string; jobs: number; micro_usd: number }[];
  allRatios(): { provider: string; model: string; ratio: number }[];
}

/**
 * Per provider and model: jobs whose provider-reported cost passed their reservation, by how much (never
 * charged), and the observed ratio of the provider's tokens to our estimate that later reservations use.
 */
export function registerComputeMetrics(registry: Registry, compute: ComputeFigures): void {
  const labelNames = ['provider', 'model'];
  new Counter({
    name: 'agent9_compute_overrun_jobs_total',
    help: 'Compute jobs whose provider-reported cost passed their reservation (stored totals, all agents)',
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const o of compute.overrunTotals()) this.inc({ provider: o.provider, model: o.model }, o.jobs);
    },
  });
  new Counter({
    name: 'agent9_compute_overrun_micro_usd_total',
    help: 'What providers counted beyond the reservations of their jobs, micro-USD (not charged)',
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const o of compute.overrunTotals()) this.inc({ provider: o.provider, model: o.model }, o.micro_usd);
    },
  });
  new Gauge({
    name: 'agent9_compute_token_ratio',
    help: "A provider's tokens per estimated token (one per 4 bytes), as later reservations count them",
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of compute.allRatios()) this.set({ provider: r.provider, model: r.model }, r.ratio);
    },
  });
}
