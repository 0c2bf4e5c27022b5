/**
 * The `nostr` section of the server config file, `$AGENT9_HOME/config.json`:
 *
 *   {"nostr": {
 *     "relays": ["wss://relay.example.com"],       // every agent's relays unless its own section names others
 *     "auth_relays": ["wss://private.example.com"], // relays known to demand NIP-42 AUTH (learnt otherwise)
 *     "reconnect": {"initial_ms": 250, "max_ms": 30000},
 *     "send": {"attempts": 8, "initial_ms": 5000, "max_ms": 600000}
 *   }}
 *
 * Read once at start; a bad section stops the start with EINVAL naming the file and the field.
 */
import { z } from 'zod';
import { loadConfigSection, parseConfigSection } from '../kit/config.js';
import { normalizeRelayUrl } from './pool.js';

const relayUrl = z.string().transform((url, ctx) => {
  try {
    return normalizeRelayUrl(url);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

export const relayListSchema = z.array(relayUrl).max(64);

const backoff = z.strictObject({
  initial_ms: z.number().int().min(1).max(3_600_000).optional(),
  max_ms: z.number().int().min(1).max(24 * 3_600_000).optional(),
});

export const nostrConfigSchema = z.strictObject({
  relays: relayListSchema.optional(),
  auth_relays: relayListSchema.optional(),
  reconnect: backoff.optional(),
  send: backoff.extend({ attempts: z.number().int().min(1).max(100).optional() }).optional(),
});

export interface NostrConfig {
  relays?: string[];
  auth_relays?: string[];
  reconnect?: { initial_ms?: number; max_ms?: number };
  /** A send (DM or event) is tried `attempts` times, each try with the pool's own retries per relay, `initial_ms` doubling to `max_ms` apart. */
  send?: { attempts?: number; initial_ms?: number; max_ms?: number };
}

/** The nostr section of `<home>/config.json` ({} when the file or the section is missing). */
export function loadNostrConfig(home: string): NostrConfig {
  return loadConfigSection<NostrConfig>(home, 'nostr', nostrConfigSchema);
}

export function parseNostrConfig(value: unknown, where = 'config.json'): NostrConfig {
  return parseConfigSection<NostrConfig>('nostr', nostrConfigSchema, value, where);
}
