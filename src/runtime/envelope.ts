/** Envelopes: ids, and how a write to an inbox becomes one. */
import { randomBytes } from 'node:crypto';
import { utf8 } from '../fs/bytes.js';
import type { Principal } from '../fs/types.js';
import { EnvelopeInputSchema, validate, type Envelope } from './spec.js';

let lastMs = 0;
let counter = 0;

/**
 * A fresh id that sorts by creation time: 9 base-36 characters of milliseconds, a 3-character counter
 * (ids made in the same millisecond stay ordered) and 10 random hex characters.
 */
export function newId(now = Date.now()): string {
  if (now === lastMs) counter++;
  else {
    lastMs = now;
    counter = 0;
  }
  return now.toString(36).padStart(9, '0') + counter.toString(36).padStart(3, '0') + '-' + randomBytes(5).toString('hex');
}

/** Who a principal is, as an envelope's `from`. */
export function senderOf(principal: Principal): string {
  return principal.agentId ?? principal.id;
}

/**
 * What a write to an inbox means: a JSON object with a `payload` field is an envelope (its `id`, when
 * given, is the deduplication key); anything else is text and becomes `{payload: {text}}` (one trailing
 * newline dropped, so `echo hi` sends "hi"). Only admins may set `from` and `source`; an agent's
 * envelopes always say which agent sent them.
 */
export function envelopeFromWrite(data: Uint8Array, principal: Principal, path: string, now = Date.now()): Envelope {
  const text = utf8(data);
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed) && 'payload' in parsed) {
      const input = validate(EnvelopeInputSchema, parsed, path, 'envelope');
      const trusted = principal.admin && !principal.agentId;
      const env: Envelope = {
        id: input.id ?? newId(now),
        source: (trusted ? input.source : undefined) ?? (principal.agentId ? 'agent' : 'user'),
        from: (trusted ? input.from : undefined) ?? senderOf(principal),
        created_at: input.created_at ?? now,
        payload: input.payload ?? null,
      };
      if (input.metadata) env.metadata = input.metadata;
      return env;
    }
  }
  return {
    id: newId(now),
    source: principal.agentId ? 'agent' : 'user',
    from: senderOf(principal),
    created_at: now,
    payload: { text: text.endsWith('\n') ? text.slice(0, -1) : text },
  };
}
