/**
 * The `compute` section of the server config file, `$AGENT9_HOME/config.json`:
 *
 *   {"compute": {
 *     "providers": {
 *       "openai": {"base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY",
 *                  "models": ["gpt-4o-mini", {"id": "gpt-4o", "pricing": {"input_per_mtok": 2500000, "output_per_mtok": 10000000}}],
 *                  "pricing": {"input_per_mtok": 150000, "output_per_mtok": 600000}, "timeout_ms": 120000},
 *       "local-echo": false                      // to switch the offline provider off
 *     },
 *     "policy": {"default_model": "echo", "max_cost_per_day": 5000000},
 *     "job_retention_ms": 604800000
 *   }}
 */
import { z } from 'zod';
import { loadConfigSection, parseConfigSection } from '../kit/config.js';
import type { ProviderConfig } from './providers/index.js';
import type { PolicyInput } from './policy.js';

const pricing = z.strictObject({ input_per_mtok: z.number().int().nonnegative(), output_per_mtok: z.number().int().nonnegative() });
const model = z.union([
  z.string().min(1),
  z.strictObject({ id: z.string().min(1), context_length: z.number().int().positive().optional(), pricing: pricing.optional(), quality: z.number().optional() }),
]);
const openai = z.strictObject({
  type: z.literal('openai').optional(),
  name: z.string().optional(),
  base_url: z.string().url(),
  api_key_env: z.string().optional(),
  api_key: z.string().optional(),
  models: z.array(model).optional(),
  pricing: pricing.optional(),
  timeout_ms: z.number().int().positive().optional(),
  streaming: z.boolean().optional(),
  stream_usage: z.boolean().optional(),
  ttft_ms: z.number().nonnegative().optional(),
  headers: z.record(z.string(), z.string()).optional(),
});
const provider = z.union([z.literal(false), z.strictObject({ type: z.literal('local-echo') }), openai]);

export const computeConfigSchema = z.strictObject({
  providers: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/), provider).optional(),
  policy: z.record(z.string(), z.unknown()).optional(),
  job_retention_ms: z.number().int().positive().optional(),
});

export interface ComputeConfig {
  providers?: Record<string, ProviderConfig>;
  policy?: PolicyInput;
  job_retention_ms?: number;
}

/** The compute section of `<home>/config.json` ({} when the file or the section is missing). */
export function loadComputeConfig(home: string): ComputeConfig {
  return loadConfigSection<ComputeConfig>(home, 'compute', computeConfigSchema);
}

export function parseComputeConfig(value: unknown, where = 'config.json'): ComputeConfig {
  return parseConfigSection<ComputeConfig>('compute', computeConfigSchema, value, where);
}
