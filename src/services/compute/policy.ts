/**
 * /compute/policy: what an agent may run and how requests are routed. The server config gives the
 * default policy; an admin can replace an agent's policy by writing the file (fields left out take the
 * defaults, also when they change later: only what was written is stored). Policies live in SQLite, one
 * per agent, with a version for ETags (the kit's PolicyStore).
 */
import { z } from 'zod';
import { FsError } from '../../fs/errors.js';
import type { PolicyCodec, PolicyStore } from '../kit/policy-store.js';
import { writtenPolicy } from '../kit/policy-store.js';
import { validate } from '../kit/validation.js';
import { maxCostOf } from './pricing.js';
import type { ComputeProvider, ComputeRequest, HealthStatus } from './types.js';

const money = z.number().int().nonnegative().nullable();
const modelPattern = z.string().min(1).max(256);

export const policySchema = z.strictObject({
  /** Providers requests may go to (empty = all). */
  allowed_providers: z.array(z.string()).default([]),
  /** Models requests may name (empty = all); a trailing `*` matches a prefix. */
  allowed_models: z.array(modelPattern).default([]),
  /** Models that are refused even when allowed; wins over allowed_models. */
  blocked_models: z.array(modelPattern).default([]),
  /** Cap on one job's max cost, micro-USD. */
  max_cost_per_job: money.default(null),
  /** Caps on what /compute may spend per tick and per rolling day, micro-USD (the service:compute budget level). */
  max_cost_per_tick: money.default(null),
  max_cost_per_day: money.default(null),
  /** Reserved when a request names no max cost (else the provider's estimate is reserved). */
  default_max_cost: money.default(null),
  require_max_cost: z.boolean().default(false),
  require_idempotency: z.boolean().default(false),
  default_timeout_ms: z.number().int().positive().default(120_000),
  max_timeout_ms: z.number().int().positive().default(600_000),
  /** Output tokens assumed for a request without max_tokens when estimating its cost. */
  default_max_tokens: z.number().int().positive().default(1024),
  max_input_bytes: z.number().int().positive().max(1024 * 1024).default(256 * 1024),
  /** Jobs of one agent running at once; more wait as pending. */
  max_concurrent_jobs: z.number().int().positive().max(1024).default(16),
  prefer: z.enum(['cost', 'latency', 'quality', 'balanced']).default('balanced'),
  /** Tried once when the chosen provider fails before producing any output. */
  fallback_provider: z.string().nullable().default(null),
  /** The model of a request that names none. */
  default_model: z.string().nullable().default(null),
});

export type ComputePolicy = z.infer<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;


/** Validates a policy (a partial one takes the defaults); EINVAL names the field. */
export function parsePolicy(value: unknown, path = '/policy', defaults: Partial<ComputePolicy> = {}): ComputePolicy {
  const p = validate(policySchema, { ...defaults, ...writtenPolicy(value, path) }, path);
  if (p.default_timeout_ms > p.max_timeout_ms) {
    throw new FsError('EINVAL', path, 'default_timeout_ms is over max_timeout_ms');
  }
  return p;
}

/** How the kit's PolicyStore reads and checks compute policies (table compute_policies). */
export const computePolicyCodec: PolicyCodec<ComputePolicy> = { parse: (written, path, defaults) => parsePolicy(written, path, defaults) };

export type ComputePolicyStore = PolicyStore<ComputePolicy>;

export function modelMatches(model: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? model.startsWith(p.slice(0, -1)) : p === model));
}

export interface Route {
  provider: ComputeProvider;
  /** The most the request can cost on this provider (micro-USD). */
  estimate: number;
}

/** Known-bad providers go last; unknown counts as healthy (nothing says otherwise). */
const HEALTH_RANK: Record<HealthStatus | 'unknown', number> = { available: 0, unknown: 0, degraded: 1, unavailable: 2 };

/**
 * Chooses a provider for a request: allowed by the policy, serving the model (providers that list the
 * model before catch-all ones), then those not known to be failing, then by `prefer`; ties go to the
 * first registered.
 */
export function route(
  request: ComputeRequest,
  policy: ComputePolicy,
  providers: readonly ComputeProvider[],
  health: (id: string) => HealthStatus | undefined,
  path: string,
): Route {
  const model = request.model;
  if (modelMatches(model, policy.blocked_models)) {
    throw new FsError('EACCES', path, `model '${model}' is blocked by /compute/policy`);
  }
  if (policy.allowed_models.length > 0 && !modelMatches(model, policy.allowed_models)) {
    throw new FsError('EACCES', path, `model '${model}' is not in allowed_models of /compute/policy`);
  }
  const allowed = (id: string) => policy.allowed_providers.length === 0 || policy.allowed_providers.includes(id);
  let pool = providers;
  if (request.provider !== undefined) {
    const pinned = providers.find((p) => p.id === request.provider);
    if (!pinned) {
      throw new FsError('EINVAL', path, `unknown provider '${request.provider}' (providers: ${providers.map((p) => p.id).join(', ')})`);
    }
    pool = [pinned];
  }
  const serving = pool.filter((p) => p.supports(model));
  if (serving.length === 0) {
    const models = [...new Set(pool.flatMap((p) => p.info().models.map((m) => m.id)))];
    throw new FsError('EINVAL', path, `no provider serves model '${model}'${models.length ? ` (models: ${models.join(', ')})` : ''}`);
  }
  const candidates = serving.filter((p) => allowed(p.id));
  if (candidates.length === 0) {
    throw new FsError('EACCES', path, `model '${model}' is served only by providers outside allowed_providers (${serving.map((p) => p.id).join(', ')})`);
  }
  const scored = candidates.map((provider, order) => {
    const info = provider.info();
    const modelInfo = info.models.find((m) => m.id === model);
    const estimate = maxCostOf(request, modelInfo?.pricing ?? info.pricing, policy.default_max_tokens, provider.maxOutputTokens?.(request));
    const listed = modelInfo ? 0 : 1;
    const healthRank = HEALTH_RANK[health(provider.id) ?? 'unknown'];
    const ttft = info.latency.ttft_ms;
    const quality = modelInfo?.quality ?? 0;
    const pref =
      policy.prefer === 'cost'
        ? estimate
        : policy.prefer === 'latency'
          ? ttft
          : policy.prefer === 'quality'
            ? -quality
            : (estimate + 1) * (ttft + 1);
    return { provider, estimate, key: [listed, healthRank, pref, order] };
  });
  scored.sort((a, b) => {
    for (let i = 0; i < a.key.length; i++) if (a.key[i] !== b.key[i]) return a.key[i]! - b.key[i]!;
    return 0;
  });
  const best = scored[0]!;
  return { provider: best.provider, estimate: best.estimate };
}
