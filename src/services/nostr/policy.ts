/**
 * Who may reach an agent over Nostr: anyone, or only the listed public keys; and how many messages a
 * minute one sender may deliver. The integration keeps these in the agent's config (admin-write) and
 * parses them with `parseNostrReachPolicy`, which names the path in its errors.
 */
import { FsError } from '../../fs/errors.js';
import { parsePubkey } from '../../runtime/keys.js';
import { DEFAULT_MESSAGES_PER_MINUTE } from './rate-limit.js';

export interface NostrReachPolicy {
  /** 'anyone', or the hex pubkeys allowed to deliver. */
  senders: 'anyone' | ReadonlySet<string>;
  /** Messages a minute per sender (a burst of this many, then a steady rate). */
  perMinute: number;
}

export const OPEN_POLICY: NostrReachPolicy = { senders: 'anyone', perMinute: DEFAULT_MESSAGES_PER_MINUTE };

export function senderAllowed(policy: NostrReachPolicy, pubkey: string): boolean {
  return policy.senders === 'anyone' || policy.senders.has(pubkey);
}

/**
 * `{"senders": "anyone" | ["<hex or npub>", ...], "per_minute": <integer 0..10000>}`, both optional
 * (defaults: anyone, 10 a minute).
 */
export function parseNostrReachPolicy(value: unknown, path: string): NostrReachPolicy {
  if (value === undefined || value === null) return OPEN_POLICY;
  if (typeof value !== 'object' || Array.isArray(value)) throw new FsError('EINVAL', path, 'nostr policy: expected an object {senders, per_minute}');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (key !== 'senders' && key !== 'per_minute') throw new FsError('EINVAL', path, `nostr policy: unknown field ${JSON.stringify(key)} (use senders, per_minute)`);
  }
  let senders: NostrReachPolicy['senders'] = 'anyone';
  if (Array.isArray(v['senders'])) {
    senders = new Set(v['senders'].map((pk, i) => parsePubkey(pk, path, `senders[${i}]`)));
  } else if (v['senders'] !== undefined && v['senders'] !== 'anyone') {
    throw new FsError('EINVAL', path, 'nostr policy: senders must be "anyone" or a list of public keys');
  }
  const perMinute = v['per_minute'] ?? DEFAULT_MESSAGES_PER_MINUTE;
  if (typeof perMinute !== 'number' || !Number.isInteger(perMinute) || perMinute < 0 || perMinute > 10_000) {
    throw new FsError('EINVAL', path, 'nostr policy: per_minute must be an integer from 0 to 10000');
  }
  return { senders, perMinute };
}
