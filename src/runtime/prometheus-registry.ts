/**
 * The server's Prometheus registry (prom-client). Every part registers its own metrics here: the HTTP
 * layer counts requests, latency and watchers; the event log reports its size and live subscribers;
 * the runtime adds ticks and queue depths. `/runtime/metrics` serves `registry.metrics()`.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Storage } from './storage/index.js';

export function createRegistry(options: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'agent9_' });
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
