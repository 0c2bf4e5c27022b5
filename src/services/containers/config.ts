/**
 * The `containers` section of the server config file, `$AGENT9_HOME/config.json`:
 *
 *   {"containers": {
 *     "docker": {"socket": "/var/run/docker.sock"},   // or false: no engine (providers/docker is absent)
 *     "policy": {"allowed_images": ["agent9/*"], "price_per_cpu_second": 10},
 *     "session_retention_ms": 604800000
 *   }}
 *
 * Everything is optional: without the file the engine is the local Docker socket with the default policy.
 */
import { z } from 'zod';
import { loadConfigSection, parseConfigSection } from '../kit/config.js';
import type { PolicyInput } from './policy.js';

export const containersConfigSchema = z.strictObject({
  docker: z.union([z.literal(false), z.strictObject({ socket: z.string().min(1).optional() })]).optional(),
  policy: z.record(z.string(), z.unknown()).optional(),
  session_retention_ms: z.number().int().positive().optional(),
});

export interface ContainersConfig {
  docker?: false | { socket?: string };
  policy?: PolicyInput;
  session_retention_ms?: number;
}

/** The containers section of `<home>/config.json` ({} when the file or the section is missing). */
export function loadContainersConfig(home: string): ContainersConfig {
  return loadConfigSection<ContainersConfig>(home, 'containers', containersConfigSchema);
}

export function parseContainersConfig(value: unknown, where = 'config.json'): ContainersConfig {
  return parseConfigSection<ContainersConfig>('containers', containersConfigSchema, value, where);
}
