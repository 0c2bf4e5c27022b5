/**
 * What the HTTP layer reports to Prometheus: requests by method, operation and status, latency by
 * operation, open watches and streams. Requests are counted in plain numbers on the hot path and turned
 * into Prometheus metrics only when scraped (prom-client's labelled inc/observe cost more than serving
 * a small file's worth of bookkeeping should).
 */
import { Gauge, type Registry } from 'prom-client';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

interface MetricValue {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}

/** A metric prom-client's registry can print: name, help, type and the values of the moment. */
interface CustomMetric {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  get(): { name: string; help: string; type: string; aggregator: 'sum'; values: MetricValue[] };
  reset(): void;
}

export class HttpMetrics {
  readonly watchers: Gauge;
  readonly streams: Gauge;
  /** Counts by operation, then status, then method (nested: no key strings built per request). */
  private readonly counts = new Map<string, Map<number, Map<string, { n: number }>>>();
  private readonly timings = new Map<string, { buckets: number[]; sum: number; n: number }>();

  constructor(registry: Registry) {
    this.watchers = new Gauge({ name: 'agent9_http_watchers', help: 'Open SSE watches', registers: [registry] });
    this.streams = new Gauge({ name: 'agent9_http_streams', help: 'Open stream-file reads (chunked GET)', registers: [registry] });
    registry.registerMetric(this.requestsMetric() as never);
    registry.registerMetric(this.latencyMetric() as never);
  }

  /** One finished request; watches and streams are counted but not timed (they last as long as the client wants). */
  record(method: string, op: string, status: number, elapsedMs: number): void {
    let byStatus = this.counts.get(op);
    if (!byStatus) this.counts.set(op, (byStatus = new Map()));
    let byMethod = byStatus.get(status);
    if (!byMethod) byStatus.set(status, (byMethod = new Map()));
    const c = byMethod.get(method);
    if (c) c.n++;
    else byMethod.set(method, { n: 1 });
    if (op === 'watch' || op === 'stream') return;
    let t = this.timings.get(op);
    if (!t) {
      t = { buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0), sum: 0, n: 0 };
      this.timings.set(op, t);
    }
    const seconds = elapsedMs / 1000;
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    t.buckets[i]!++;
    t.sum += seconds;
    t.n++;
  }

  private requestsMetric(): CustomMetric {
    const name = 'agent9_http_requests_total';
    const help = 'HTTP requests served, by method, file operation and status';
    return {
      name,
      help,
      type: 'counter',
      aggregator: 'sum',
      get: () => ({
        name,
        help,
        type: 'counter',
        aggregator: 'sum',
        values: [...this.counts].flatMap(([op, byStatus]) =>
          [...byStatus].flatMap(([status, byMethod]) => [...byMethod].map(([method, c]) => ({ labels: { method, op, status }, value: c.n }))),
        ),
      }),
      reset: () => this.counts.clear(),
    };
  }

  private latencyMetric(): CustomMetric {
    const name = 'agent9_http_request_duration_seconds';
    const help = 'Time to the last byte of the response, by file operation (watches and streams excluded)';
    return {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: () => {
        const values: MetricValue[] = [];
        for (const [op, t] of this.timings) {
          let cumulative = 0;
          LATENCY_BUCKETS.forEach((le, i) => {
            cumulative += t.buckets[i]!;
            values.push({ metricName: `${name}_bucket`, labels: { le, op }, value: cumulative });
          });
          values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', op }, value: t.n });
          values.push({ metricName: `${name}_sum`, labels: { op }, value: t.sum });
          values.push({ metricName: `${name}_count`, labels: { op }, value: t.n });
        }
        return { name, help, type: 'histogram', aggregator: 'sum', values };
      },
      reset: () => this.timings.clear(),
    };
  }
}
