/**
 * Every HTTP error is `{"error":{"code","message","path"}}` with the status ERROR_TABLE gives the code.
 * Errors fastify raises itself (body too large, bad URL, bad headers) are translated to the same shape.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_TABLE, FsError, isErrorCode, type ErrorCode } from '../fs/errors.js';

/** The fastify error codes we can name precisely. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'EFBIG',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'EINVAL',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'EINVAL',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'EINVAL',
  FST_ERR_BAD_URL: 'EINVAL',
  FST_ERR_ASYNC_CONSTRAINT: 'EINVAL',
  FST_ERR_ROUTE_MISSING_CONTENT_TYPE: 'EINVAL',
};

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return 'EAUTH';
    case 403:
      return 'EACCES';
    case 404:
      return 'ENOENT';
    case 405:
      return 'ENOSYS';
    case 408:
    case 504:
      return 'ETIMEDOUT';
    case 409:
      return 'EBUSY';
    case 412:
      return 'ESTALE';
    case 413:
      return 'EFBIG';
    case 429:
      return 'EAGAIN';
    default:
      return status >= 400 && status < 500 ? 'EINVAL' : 'EIO';
  }
}

/** Any error raised while serving a request, as an FsError naming the request path. */
export function httpError(err: unknown, path: string): FsError {
  if (err instanceof FsError) return err;
  const e = err as Partial<FastifyError> & { code?: unknown };
  if (isErrorCode(e?.code)) return new FsError(e.code, path, String(e.message ?? ''), { cause: err });
  const mapped = typeof e?.code === 'string' ? FASTIFY_CODES[e.code] : undefined;
  if (mapped) return new FsError(mapped, path, e.message ?? ERROR_TABLE[mapped].summary, { cause: err });
  if (typeof e?.statusCode === 'number' && e.statusCode < 500) {
    return new FsError(codeForStatus(e.statusCode), path, e.message ?? 'bad request', { cause: err });
  }
  return new FsError('EIO', path, e?.message ?? String(err), { cause: err });
}

export function errorBody(err: FsError): string {
  return JSON.stringify({ error: err.toJSON() }) + '\n';
}

/**
 * Sends the error as JSON (headers only for HEAD), with Retry-After and WWW-Authenticate where due.
 * `status` overrides the code's own where HTTP has a more exact one (416 for a range past the end).
 */
export function sendError(request: FastifyRequest, reply: FastifyReply, err: FsError, status = err.mapping.http): FastifyReply {
  if (status >= 500) request.log.error({ err: err.cause ?? err, path: err.path, code: err.code }, err.message);
  reply.code(status).header('x-agent9-error', err.code).header('cache-control', 'no-store');
  if (err.code === 'EAGAIN') reply.header('retry-after', String(Math.max(1, Math.ceil((err.retryAfterMs ?? 1000) / 1000))));
  if (err.code === 'EAUTH') reply.header('www-authenticate', 'Bearer realm="agent9"');
  if (err.code === 'ENOSYS') reply.header('allow', ALLOW);
  // HEAD answers have no body: the message travels in a header (percent-encoded, paths may be UTF-8).
  if (request.method === 'HEAD') {
    return reply.header('x-agent9-message', encodeURIComponent(err.message)).header('x-agent9-path', encodeURIComponent(err.path)).send();
  }
  return reply.type('application/json; charset=utf-8').send(errorBody(err));
}

export const ALLOW = 'GET, HEAD, PUT, POST, DELETE, MOVE, OPTIONS';
