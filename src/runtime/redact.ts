/**
 * Secrets stay out of traces: trace events are stored, served to every reader of `logs/trace`, kept in
 * exports and shown in dashboards, so credentials a program (or a provider error) put in one are
 * replaced before the event is stored. Two rules, as the origin's HUD redaction had:
 * - a field whose name is, or ends with, token, secret, password, passwd, api_key, apikey or
 *   authorization (any case: `access_token`, `X-Api-Key`, `Authorization`) loses its value;
 * - a string anywhere that contains something shaped like a credential (an OpenAI-style `sk-` key, a
 *   GitHub or Slack token, a `Bearer` credential, an agent9 token, a Nostr `nsec`, an AWS key id) has
 *   that part replaced.
 */
export const REDACTED = '[redacted]';

const SECRET_FIELD = /(token|secret|password|passwd|api[_-]?key|authorization)$/i;

/** Credential shapes, each replaced where it occurs inside a string. */
const SECRET_VALUES: RegExp[] = [
  /\bsk-[A-Za-z0-9_-]{20,}/g, // OpenAI and compatible keys (sk-..., sk-proj-...)
  /\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}/g, // GitHub tokens
  /\bgithub_pat_[A-Za-z0-9_]{20,}/g,
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/g, // Slack tokens
  /\ba9_[0-9a-f]{12}_[0-9a-f]{48}\b/g, // agent9 tokens
  /\bnsec1[02-9ac-hj-np-z]{58}\b/g, // Nostr secret keys
  /\bAKIA[0-9A-Z]{16}\b/g, // AWS access key ids
];
/** `Bearer <credential>` keeps the scheme so a reader still sees what it was. */
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/gi;

/** Objects nested deeper than this are cut (a trace event is small; this bounds a hostile one). */
const MAX_DEPTH = 32;

function redactString(s: string): string {
  let out = s;
  for (const re of SECRET_VALUES) out = out.replace(re, REDACTED);
  return out.replace(BEARER, (_m, scheme: string) => `${scheme} ${REDACTED}`);
}

/** A copy of `value` with secrets replaced (see above); values without secrets come back equal. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return REDACTED;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = v !== null && v !== undefined && v !== '' && SECRET_FIELD.test(k) ? REDACTED : redactSecrets(v, depth + 1);
  }
  return out;
}
