/** Envelopes: ids, and how a write to an inbox becomes one. */
import { randomBytes } from 'node:crypto';
import type { Principal } from '../fs/types.js';
import { EnvelopeInputSchema, RECORD_ID_RE, validate, type Envelope } from './spec.js';

/** Bytes as UTF-8 text (Buffer is several times faster than TextDecoder on small inputs). */
function text(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
}

const ENVELOPE_FIELDS = new Set(['id', 'source', 'from', 'created_at', 'payload', 'metadata']);

/** The common well-formed envelope, checked without zod; anything unusual goes through the schema for its error. */
function plainEnvelope(v: Record<string, unknown>): { id?: string; source?: string; from?: string; created_at?: number; payload: unknown; metadata?: Record<string, unknown> } | undefined {
  for (const k in v) if (!ENVELOPE_FIELDS.has(k)) return undefined;
  const { id, source, from, created_at, metadata } = v;
  if (id !== undefined && (typeof id !== 'string' || !RECORD_ID_RE.test(id))) return undefined;
  if (source !== undefined && (typeof source !== 'string' || source.length === 0 || source.length > 200)) return undefined;
  if (from !== undefined && (typeof from !== 'string' || from.length === 0 || from.length > 200)) return undefined;
  if (created_at !== undefined && (typeof created_at !== 'number' || !Number.isInteger(created_at) || created_at < 0)) return undefined;
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) return undefined;
  return v as ReturnType<typeof plainEnvelope>;
}

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
  return now.toString(36).padStart(9, '0') + counter.toString(36).padStart(3, '0') + '-' + randomHex10();
}

// Random bytes drawn from a pool: one randomBytes call per 819 ids instead of one per id.
let pool = randomBytes(4096);
let poolAt = 0;

function randomHex10(): string {
  if (poolAt + 5 > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  poolAt += 5;
  return pool.toString('hex', poolAt - 5, poolAt);
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
  const body = text(data);
  if (body.trimStart().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = undefined;
    }
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed) && 'payload' in parsed) {
      const input = plainEnvelope(parsed as Record<string, unknown>) ?? validate(EnvelopeInputSchema, parsed, path, 'envelope');
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
    payload: { text: body.endsWith('\n') ? body.slice(0, -1) : body },
  };
}
