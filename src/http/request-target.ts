/**
 * What a request addresses, read from its raw URL: the namespace path (percent-decoded, normalised,
 * checked), whether it ended with `/` (a directory), and the query. Also the routing constraint that
 * sends `?watch=1` requests to the watch route.
 */
import type { FastifyRequest, FastifyServerOptions } from 'fastify';
import { FsError } from '../fs/errors.js';
import { normalizePath } from '../fs/paths.js';

/** The namespace path, whether it ended with `/`, and the query, from the raw URL. */
export interface Target {
  path: string;
  slash: boolean;
  query: URLSearchParams;
}

/** Shared by every request without a query string (never modified). */
const NO_QUERY = new URLSearchParams();

/** Parses the URL; `request.fsPath` follows along, so an error names the best path known so far. */
export function parseTarget(request: FastifyRequest): Target {
  const url = request.url;
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  request.fsPath = rawPath;
  let decoded = rawPath;
  if (rawPath.includes('%')) {
    try {
      decoded = decodeURIComponent(rawPath);
    } catch {
      throw new FsError('EINVAL', rawPath, 'malformed percent-encoding in the URL');
    }
    request.fsPath = decoded.replace(/\0/g, '\\0');
  }
  const path = normalizePath(decoded);
  request.fsPath = path;
  return { path, slash: path !== '/' && decoded.endsWith('/'), query: q < 0 ? NO_QUERY : new URLSearchParams(url.slice(q + 1)) };
}

/** A fixed path (the agent routes name theirs), with no query. */
export function fixedTarget(request: FastifyRequest, path: string): Target {
  request.fsPath = path;
  return { path, slash: false, query: NO_QUERY };
}

/** The path an error names: the parsed one, or the best reading of the URL when parsing never ran. */
export function errorPath(request: FastifyRequest): string {
  if (request.fsPath) return request.fsPath;
  const raw = (request.url ?? '/').split('?')[0]!;
  try {
    return normalizePath(decodeURIComponent(raw));
  } catch {
    return raw.replace(/\0/g, '\\0');
  }
}

/** A query flag: present and not 0, false or no. */
export function flag(query: URLSearchParams, name: string): boolean {
  const v = query.get(name);
  return v !== null && v !== '0' && v.toLowerCase() !== 'false' && v.toLowerCase() !== 'no';
}

/** The longest `?wait=SECONDS` a read may ask for. */
export const MAX_WAIT_SECONDS = 600;

/**
 * `?wait=SECONDS` on a GET: how long (in ms) a read may wait for a view that is not ready yet (a
 * running job's result) before it answers 429 EAGAIN; absent: it answers at once. EINVAL naming `wait`
 * unless a number of seconds from 0 to MAX_WAIT_SECONDS.
 */
export function waitOf(query: URLSearchParams, path: string): number | undefined {
  const v = query.get('wait');
  if (v === null) return undefined;
  const seconds = v === '' ? NaN : Number(v);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > MAX_WAIT_SECONDS) {
    throw new FsError('EINVAL', path, `wait: '${v.slice(0, 20)}' is not a number of seconds from 0 to ${MAX_WAIT_SECONDS}`);
  }
  return Math.round(seconds * 1000);
}

/** `?watch=1` (or `?watch`, `?watch=true`): the request is an SSE watch. */
function isWatchUrl(url: string | undefined): boolean {
  const q = url?.indexOf('?') ?? -1;
  return q >= 0 && url!.includes('watch', q) && flag(new URLSearchParams(url!.slice(q + 1)), 'watch');
}

/**
 * Routes watch requests to their own route, so that only watches pay for the SSE machinery.
 * (find-my-way constraint: unconstrained routes take everything that is not a watch.)
 */
type ConstraintStrategy = NonNullable<NonNullable<FastifyServerOptions['routerOptions']>['constraints']>[string];
type StrategyStorage = ReturnType<ConstraintStrategy['storage']>;

export const watchConstraint: ConstraintStrategy = {
  name: 'watch',
  storage() {
    const handlers = new Map<string, Parameters<StrategyStorage['set']>[1]>();
    return {
      get: (value: string) => handlers.get(value) ?? null,
      set: (value: string, store) => void handlers.set(value, store),
    };
  },
  // No value (undefined) lets the unconstrained routes match.
  deriveConstraint: (req) => (isWatchUrl(req.url) ? 'yes' : (undefined as unknown as string)),
  mustMatchWhenDerived: true,
};
