/**
 * The server's Prometheus registry (prom-client). Every part registers its own metrics here: the HTTP
 * layer counts requests, latency and watchers; the event log reports its size and live subscribers;
 * the runtime adds ticks and queue depths. `/runtime/metrics` serves `registry.metrics()`.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Storage } from './storage/index.js';

export function createRegistry(options: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'agent9_' });
  return registry;
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

/** Event-log figures: the newest event id and how many live subscriptions are open. */
export function registerStorageMetrics(registry: Registry, storage: Storage): void {
  gaugeOf(registry, 'agent9_events_last_id', 'Id of the newest event in the event log', () => storage.eventStore.lastId());
  gaugeOf(registry, 'agent9_event_subscribers', 'Live event-log subscriptions (watches, stream readers)', () => storage.events.subscriberCount);
}
