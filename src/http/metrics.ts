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
}
