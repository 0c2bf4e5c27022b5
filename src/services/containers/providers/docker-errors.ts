/**
 * What the docker provider makes of the engine's failures, and the one check on what goes into engine
 * API paths. Messages are the engine's own words (its JSON `message`) or ours, never the client
 * library's, whose messages repeat request URLs and internal names.
 */
import { FsError } from '../../../fs/errors.js';

interface DockerErrorLike {
  statusCode?: number;
  code?: string;
  message?: string;
  json?: { message?: string } | null;
  reason?: string;
}

const CONNECTION_ERRORS: Record<string, string> = {
  ENOENT: 'no socket at that path',
  ECONNREFUSED: 'connection refused',
  EACCES: 'permission denied',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
};

/**
 * The engine's own words for a failed request (the `message` of its JSON answer), else a sentence of
 * ours: never the client library's message, which repeats request URLs and internal names.
 */
export function engineMessage(err: unknown): string {
  const e = err as DockerErrorLike;
  if (typeof e?.statusCode === 'number') {
    const fromJson = e.json && typeof e.json === 'object' ? e.json.message : undefined;
    return typeof fromJson === 'string' && fromJson.trim() ? fromJson.trim().slice(0, 1000) : `the engine answered HTTP ${e.statusCode}`;
  }
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (code && CONNECTION_ERRORS[code]) return `${CONNECTION_ERRORS[code]} (${code})`;
  return `the engine client failed${code && /^[A-Z_]+$/.test(code) ? ` (${code})` : ''}`;
}

export function isConnectionError(err: unknown): boolean {
  const code = (err as DockerErrorLike)?.code;
  return typeof code === 'string' && CONNECTION_ERRORS[code] !== undefined && typeof (err as DockerErrorLike).statusCode !== 'number';
}

/**
 * Ids of containers and execs as they go into engine API paths. They come from the engine, but one that
 * were not a plain name (`..`, `/`, `?`) would make the engine redirect, and the client library throws
 * where nothing can catch it while following a redirect: so nothing else is ever sent.
 */
const ENGINE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function engineId(id: string): string {
  if (!ENGINE_ID.test(id)) throw new FsError('EINVAL', '/', `${JSON.stringify(id)} is not a container id`);
  return id;
}

export function statusOf(err: unknown): number | undefined {
  return (err as DockerErrorLike)?.statusCode;
}
