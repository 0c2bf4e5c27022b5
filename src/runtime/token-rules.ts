/**
 * The rules a new token must keep: its lifetime is a positive duration no longer than the configured
 * bound (`tokens.max_ttl` in config.json, default 365 days), and a token minted by another stays within
 * the minting token's grant (same agent, paths under its paths, read-only if it is, expiring no later).
 */
import { z } from 'zod';
import { FsError } from '../fs/errors.js';
import { isUnder, joinPath } from '../fs/paths.js';
import type { Grant } from '../fs/types.js';
import { configSection } from './home-config.js';
import { describeIssues } from './spec.js';

export const DEFAULT_MAX_TTL_MS = 365 * 86_400_000;

/** Where an agent's local namespace lives in the global view (an agent token sees it at `/`). */
export const agentRoot = (agent: string): string => `/agents/${agent}`;

const UNITS = { w: 604_800_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;

/** `1h`, `30m`, `7d`, `90s`, `500ms` or a number of seconds, as milliseconds. */
export function parseDuration(text: string | number, where = 'ttl'): number {
  if (typeof text === 'number') {
    if (!(text > 0) || !Number.isFinite(text)) throw new FsError('EINVAL', where, `bad duration ${text}`);
    return text * 1000;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/i.exec(text);
  if (!m) throw new FsError('EINVAL', where, `bad duration '${text}' (use e.g. 90s, 30m, 1h, 7d)`);
  const unit = (m[2] ?? 's').toLowerCase() as keyof typeof UNITS;
  const ms = Number(m[1]) * UNITS[unit];
  if (!(ms > 0)) throw new FsError('EINVAL', where, `duration must be positive: '${text}'`);
  return ms;
}

/** Milliseconds in the largest unit that shows them exactly (`365d`, `90m`, `1500ms`). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNITS[unit] && ms % UNITS[unit] === 0) return `${ms / UNITS[unit]}${unit}`;
  }
  return `${Math.round(ms)}ms`;
}

export interface TokenConfig {
  /** The longest lifetime a token may ask for. */
  maxTtlMs: number;
}

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof FsError ? err.detail : String(err) });
    return z.NEVER;
  }
});
// Wrapped in its section's name, so that messages name the field as the file spells it: tokens.max_ttl.
const tokenConfigSchema = z.strictObject({ tokens: z.strictObject({ max_ttl: duration.optional() }) });

/** The `tokens` section of `<home>/config.json`; EINVAL naming the file and the field when it is wrong. */
export function loadTokenConfig(home: string): TokenConfig {
  const { value, file } = configSection(home, 'tokens');
  const parsed = tokenConfigSchema.safeParse({ tokens: value ?? {} });
  if (!parsed.success) throw new FsError('EINVAL', file, describeIssues(parsed.error));
  return { maxTtlMs: parsed.data.tokens.max_ttl ?? DEFAULT_MAX_TTL_MS };
}

/** The scopes of a token to be minted, and when it would expire. */
export interface Wanted {
  agent?: string;
  paths: readonly string[];
  readOnly: boolean;
  expiresAt?: number;
}

/**
 * EACCES, naming what it exceeds, unless `wanted` stays within `grant`. Paths compare in the grant's
 * own view: an agent token minted by a global one sees `/agents/<agent>` of it at `/`.
 */
export function checkWithin(grant: Grant, wanted: Wanted, where: string): void {
  const exceeds = (what: string, why: string) =>
    new FsError('EACCES', where, `${what}: ${why}; a token mints only tokens within its own scopes`);
  if (grant.agent !== undefined && wanted.agent !== grant.agent) {
    throw exceeds('agent', `token ${grant.id} is scoped to agent '${grant.agent}'`);
  }
  if (grant.readOnly && !wanted.readOnly) throw exceeds('read_only', `token ${grant.id} is read-only`);
  if (grant.paths.length > 0) {
    const base = grant.agent === undefined && wanted.agent !== undefined ? agentRoot(wanted.agent) : '/';
    for (const p of wanted.paths.length > 0 ? wanted.paths : ['/']) {
      const seen = joinPath(base, p);
      if (!grant.paths.some((prefix) => isUnder(seen, prefix))) {
        throw exceeds('paths', `${seen} is outside the paths of token ${grant.id} (${grant.paths.join(', ')})`);
      }
    }
  }
  if (grant.expiresAt !== undefined && (wanted.expiresAt === undefined || wanted.expiresAt > grant.expiresAt)) {
    throw exceeds('ttl', `it would outlive token ${grant.id}, which expires at ${new Date(grant.expiresAt).toISOString()}`);
  }
}
