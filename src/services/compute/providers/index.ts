/** The providers a server runs, built from its config, with a health cache shared by every agent. */
import { FsError } from '../../../fs/errors.js';
import type { ComputeProvider, HealthStatus, ProviderHealth } from '../types.js';
import { LocalEchoProvider } from './local-echo.js';
import { OpenAiProvider, type OpenAiConfig } from './openai.js';

export { LocalEchoProvider, ECHO_MODEL, LOCAL_ECHO_PRICING, splitChunks } from './local-echo.js';
export { OpenAiProvider, type OpenAiConfig } from './openai.js';

export type ProviderConfig = (OpenAiConfig & { type?: 'openai' }) | { type: 'local-echo' } | false;

export const HEALTH_MAX_AGE_MS = 30_000;

export class ProviderRegistry {
  private readonly byId = new Map<string, ComputeProvider>();
  private readonly healthCache = new Map<string, ProviderHealth>();
  /** What jobs learned about providers since (routing hints; the health files show real checks). */
  private readonly observed = new Map<string, ProviderHealth>();
  private readonly checking = new Map<string, Promise<ProviderHealth>>();

  constructor(providers: readonly ComputeProvider[]) {
    for (const p of providers) {
      if (this.byId.has(p.id)) throw new FsError('EINVAL', '/providers', `two compute providers are named '${p.id}'`);
      this.byId.set(p.id, p);
    }
  }

  list(): ComputeProvider[] {
    return [...this.byId.values()];
  }

  get(id: string): ComputeProvider | undefined {
    return this.byId.get(id);
  }

  /** The last known health, from a check or a job, whichever is newer (undefined when nothing is known). */
  cachedHealth(id: string): HealthStatus | undefined {
    const checked = this.healthCache.get(id);
    const seen = this.observed.get(id);
    if (!checked || (seen && seen.checked_at >= checked.checked_at)) return seen?.status ?? checked?.status;
    return checked.status;
  }

  /** A provider's health, checked at most every `maxAgeMs` (concurrent readers share one check). */
  async health(id: string, maxAgeMs = HEALTH_MAX_AGE_MS): Promise<ProviderHealth> {
    const provider = this.byId.get(id);
    if (!provider) throw new FsError('ENOENT', `/providers/${id}`, `no provider '${id}'`);
    const cached = this.healthCache.get(id);
    if (cached && Date.now() - cached.checked_at < maxAgeMs) return cached;
    let pending = this.checking.get(id);
    if (!pending) {
      pending = provider
        .health()
        .catch((err: unknown): ProviderHealth => ({ status: 'unavailable', reason: (err as Error).message, checked_at: Date.now() }))
        .then((h) => {
          this.healthCache.set(id, h);
          return h;
        })
        .finally(() => this.checking.delete(id));
      this.checking.set(id, pending);
    }
    return pending;
  }

  /** Records what a job just learned about a provider (a failure to reach it, or a success). */
  observe(id: string, status: HealthStatus, reason?: string): void {
    this.observed.set(id, { status, ...(reason ? { reason } : {}), checked_at: Date.now() });
  }

  async close(): Promise<void> {
    await Promise.all(this.list().map((p) => p.close?.()));
  }
}

/**
 * Providers from the `compute.providers` section of config.json. `local-echo` is always there unless set
 * to false; every other entry is an OpenAI-compatible endpoint (`type` "openai", the default).
 */
export function buildProviders(config: Record<string, ProviderConfig> = {}, env: NodeJS.ProcessEnv = process.env): ProviderRegistry {
  const providers: ComputeProvider[] = [];
  if (config['local-echo'] !== false) providers.push(new LocalEchoProvider());
  for (const [id, entry] of Object.entries(config)) {
    if (id === 'local-echo' || entry === false) continue;
    if (entry.type === 'local-echo') {
      providers.push(new LocalEchoProvider(id));
      continue;
    }
    if (entry.type !== undefined && entry.type !== 'openai') {
      throw new FsError('EINVAL', '/providers', `compute provider '${id}': unknown type '${String(entry.type)}' (want openai or local-echo)`);
    }
    providers.push(new OpenAiProvider(id, entry, env));
  }
  return new ProviderRegistry(providers);
}
