/** What the HTTP layer reports to Prometheus: requests by operation and status, latency, open watchers. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class HttpMetrics {
  readonly requests: Counter<'method' | 'op' | 'status'>;
  readonly latency: Histogram<'op'>;
  readonly watchers: Gauge;
  readonly streams: Gauge;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'agent9_http_requests_total',
      help: 'HTTP requests served, by method, file operation and status',
      labelNames: ['method', 'op', 'status'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'agent9_http_request_duration_seconds',
      help: 'Time to the last byte of the response, by file operation (watches and streams excluded)',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [registry],
    });
    this.watchers = new Gauge({ name: 'agent9_http_watchers', help: 'Open SSE watches', registers: [registry] });
    this.streams = new Gauge({ name: 'agent9_http_streams', help: 'Open stream-file reads (chunked GET)', registers: [registry] });
  }

  /** Labelled children, looked up once per label set: labelling on every request would cost more than the count. */
  private readonly counters = new Map<string, Counter.Internal>();
  private readonly timers = new Map<string, Histogram.Internal<'op'>>();

  /** One finished request; watches and streams are counted but not timed (they last as long as the client wants). */
  record(method: string, op: string, status: number, elapsedMs: number): void {
    const key = `${method} ${op} ${status}`;
    let counter = this.counters.get(key);
    if (!counter) {
      counter = this.requests.labels(method, op, String(status));
      this.counters.set(key, counter);
    }
    counter.inc();
    if (op === 'watch' || op === 'stream') return;
    let timer = this.timers.get(op);
    if (!timer) {
      timer = this.latency.labels(op);
      this.timers.set(op, timer);
    }
    timer.observe(elapsedMs / 1000);
  }
}
