/** `/runtime/metrics`: the server's Prometheus registries as one text view (exposition format 0.0.4). */
import { Registry } from 'prom-client';
import { SyntheticFs, view } from '../fs/synthetic.js';

/** The metrics of every registry given (the server's own and the process-wide one), in one file. */
export function prometheusFile(...registries: Registry[]): SyntheticFs {
  // Size at stat would render every metric twice per read; the view reads fully without it.
  const read = registries.length === 1 ? () => registries[0]!.metrics() : () => Registry.merge(registries).metrics();
  // The exposition format's own media type (text/plain; version=0.0.4), which scrapers expect.
  return new SyntheticFs(view(read, { sizeAtStat: false, mediaType: Registry.PROMETHEUS_CONTENT_TYPE }), 'prometheus');
}
