/**
 * CORS for the origins `$AGENT9_HOME/config.json` names (CONTRACT.md section 12), so that a web page
 * served from one of them (a dashboard) may call the API with its bearer token. Off by default: with
 * no `http.cors.origins`, no response carries CORS headers and browsers keep pages of other origins
 * out, as ever. A request from a listed origin gets `Access-Control-Allow-Origin` (and the headers it
 * may read, the stat and error headers); a preflight (`OPTIONS` with `Access-Control-Request-Method`)
 * from one is answered at once with the methods and request headers the API takes. Tokens travel in
 * the Authorization header, never in cookies, so credentials are not allowed.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { FsError } from '../fs/errors.js';
import { configSection } from '../runtime/home-config.js';
import { describeIssues } from '../runtime/spec.js';
import { ALLOW } from './error-replies.js';

export interface CorsConfig {
  /** Origins allowed (`scheme://host[:port]`, as browsers send them), or `*` for any. */
  origins: readonly string[];
}

/** What a page may send besides the CORS-safelisted headers. */
const ALLOW_HEADERS = 'Authorization, Content-Type, If-Match, If-None-Match, If-Range, Range, Last-Event-ID, Destination, Cache-Control';
/** What a page may read besides the CORS-safelisted headers (Content-Type, Content-Length...). */
const EXPOSE_HEADERS = [
  'ETag',
  'Last-Modified',
  'Accept-Ranges',
  'Content-Range',
  'Retry-After',
  'WWW-Authenticate',
  'Allow',
  ...['Type', 'Kind', 'Size', 'Mode', 'Version', 'Mtime', 'Ctime', 'Error', 'Message', 'Path'].map((h) => `X-Agent9-${h}`),
].join(', ');
const PREFLIGHT_MAX_AGE_S = '600';

const ORIGIN = /^https?:\/\/[^/?#\s]+$/i;
const origin = z.string().refine((o) => o === '*' || ORIGIN.test(o), { message: "an origin is 'scheme://host[:port]' (no path), or '*'" });
// Wrapped in its section's name, so that messages name the field as the file spells it: http.cors.origins.
const httpConfigSchema = z.strictObject({ http: z.strictObject({ cors: z.strictObject({ origins: z.array(origin) }).optional() }) });

/** The `http` section of `<home>/config.json`; EINVAL naming the file and the field when it is wrong. */
export function loadCorsConfig(home: string): CorsConfig {
  const { value, file } = configSection(home, 'http');
  const parsed = httpConfigSchema.safeParse({ http: value ?? {} });
  if (!parsed.success) throw new FsError('EINVAL', file, describeIssues(parsed.error));
  // Browsers send the origin's scheme and host in lower case.
  return { origins: (parsed.data.http.cors?.origins ?? []).map((o) => o.toLowerCase()) };
}

/**
 * The onRequest hook for `config`: CORS headers on every answer to a listed origin (errors and
 * streams included), and preflights answered here. Undefined when no origin is configured.
 */
export function corsHook(config: CorsConfig): ((request: FastifyRequest, reply: FastifyReply, done: () => void) => void) | undefined {
  if (config.origins.length === 0) return undefined;
  const any = config.origins.includes('*');
  const listed = new Set(config.origins);
  return (request, reply, done) => {
    const from = request.headers.origin;
    if (typeof from !== 'string' || !(any || listed.has(from.toLowerCase()))) return done();
    reply.header('access-control-allow-origin', any ? '*' : from).header('vary', 'Origin').header('access-control-expose-headers', EXPOSE_HEADERS);
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      request.op = 'preflight';
      void reply
        .code(204)
        .header('access-control-allow-methods', ALLOW)
        .header('access-control-allow-headers', ALLOW_HEADERS)
        .header('access-control-max-age', PREFLIGHT_MAX_AGE_S)
        .send();
      return;
    }
    done();
  };
}
