/** `/runtime/metrics`: the server's Prometheus registry as a text view (exposition format 0.0.4). */
import type { Registry } from 'prom-client';
import { SyntheticFs, view } from '../fs/synthetic.js';

export function prometheusFile(registry: Registry): SyntheticFs {
  // Size at stat would render every metric twice per read; the view reads fully without it.
  return new SyntheticFs(view(() => registry.metrics(), { sizeAtStat: false }), 'prometheus');
}
