/**
 * Every error in agent9 is an FsError with a POSIX code. ERROR_TABLE is the single place that maps a
 * code to its FUSE errno, HTTP status and CLI exit code; transports look codes up here and nowhere else.
 */

export interface ErrorMapping {
  /** Linux errno; FUSE replies with its negative. */
  readonly errno: number;
  readonly http: number;
  readonly exit: number;
  readonly summary: string;
}

export const ERROR_TABLE = {
  ENOENT: { errno: 2, http: 404, exit: 2, summary: 'no such file, agent, job or session' },
  EACCES: { errno: 13, http: 403, exit: 3, summary: 'access level or token forbids it' },
  EEXIST: { errno: 17, http: 409, exit: 4, summary: 'already exists' },
  ENOTDIR: { errno: 20, http: 400, exit: 5, summary: 'not a directory' },
  EISDIR: { errno: 21, http: 400, exit: 6, summary: 'is a directory' },
  EINVAL: { errno: 22, http: 400, exit: 7, summary: 'invalid argument' },
  EFBIG: { errno: 27, http: 413, exit: 8, summary: 'too large' },
  EAGAIN: { errno: 11, http: 429, exit: 9, summary: 'try again later' },
  EDQUOT: { errno: 122, http: 402, exit: 10, summary: 'budget or data quota exceeded' },
  EBUSY: { errno: 16, http: 409, exit: 11, summary: 'busy' },
  ETIMEDOUT: { errno: 110, http: 504, exit: 12, summary: 'deadline passed' },
  ENOSYS: { errno: 38, http: 405, exit: 13, summary: 'not supported on this file' },
  EIO: { errno: 5, http: 500, exit: 14, summary: 'input/output error' },
  ENOTEMPTY: { errno: 39, http: 409, exit: 15, summary: 'directory not empty' },
  ENAMETOOLONG: { errno: 36, http: 400, exit: 16, summary: 'name or path too long' },
  /** The version the caller expected is not the current one (HTTP If-Match). */
  ESTALE: { errno: 116, http: 412, exit: 17, summary: 'version precondition failed' },
  /** No valid credentials (BSD's EAUTH; Linux has none, so FUSE sees EACCES). */
  EAUTH: { errno: 13, http: 401, exit: 18, summary: 'authentication required' },
  EXDEV: { errno: 18, http: 400, exit: 19, summary: 'cross-mount rename' },
  ESPIPE: { errno: 29, http: 400, exit: 20, summary: 'illegal seek' },
  EBADF: { errno: 9, http: 400, exit: 21, summary: 'bad file handle' },
  EPERM: { errno: 1, http: 403, exit: 22, summary: 'operation not permitted' },
  /** Upstream provider (model endpoint, container engine) failed or is unreachable. */
  EREMOTEIO: { errno: 121, http: 502, exit: 23, summary: 'provider failure' },
  /** The job or session was cancelled before it finished (its result says so). */
  ECANCELED: { errno: 125, http: 409, exit: 24, summary: 'cancelled' },
  /** More than 40 symbolic links in a row, or a symbolic link where the operation takes none (O_NOFOLLOW). */
  ELOOP: { errno: 40, http: 400, exit: 25, summary: 'too many levels of symbolic links' },
} as const satisfies Record<string, ErrorMapping>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERROR_TABLE, code);
}

export interface FsErrorOptions {
  /** For EAGAIN: how long the caller should wait before retrying. */
  retryAfterMs?: number;
  cause?: unknown;
}

export class FsError extends Error {
  readonly code: ErrorCode;
  /** The path as the caller named it; a Namespace rebases it when the error crosses a mount. */
  readonly path: string;
  readonly detail: string;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, path: string, detail?: string, options: FsErrorOptions = {}) {
    // An FsError is an answer, not a crash: skip the stack trace, which costs more than most lookups
    // that fail with ENOENT. (An unexpected failure keeps its own stack as `cause`.)
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super('', options.cause === undefined ? undefined : { cause: options.cause });
    Error.stackTraceLimit = limit;
    this.name = 'FsError';
    this.code = code;
    this.path = path;
    this.detail = detail ?? ERROR_TABLE[code].summary;
    this.retryAfterMs = options.retryAfterMs;
    // The message always names the current path, even after rebasing.
    Object.defineProperty(this, 'message', { get: () => `${this.path}: ${this.detail}`, enumerable: false });
  }

  get mapping(): ErrorMapping {
    return ERROR_TABLE[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; path: string } {
    return { code: this.code, message: this.message, path: this.path };
  }
}

/** Any thrown value as an FsError; unknown failures become EIO, keeping the original as cause. */
export function toFsError(err: unknown, path: string): FsError {
  if (err instanceof FsError) return err;
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (e && isErrorCode(e.code)) return new FsError(e.code, path, String(e.message ?? ''), { cause: err });
  const text = e && typeof e.message === 'string' ? e.message : String(err);
  return new FsError('EIO', path, text, { cause: err });
}

/** The error as seen from outside the mount point it crossed: a copy whose path has the prefix. */
export function rebaseError(err: unknown, mountPath: string, relPath: string): FsError {
  const fsErr = toFsError(err, relPath);
  if (mountPath === '/' || !fsErr.path.startsWith('/')) return fsErr;
  const path = fsErr.path === '/' ? mountPath : mountPath + fsErr.path;
  const opts: FsErrorOptions = { cause: fsErr.cause ?? fsErr };
  if (fsErr.retryAfterMs !== undefined) opts.retryAfterMs = fsErr.retryAfterMs;
  return new FsError(fsErr.code, path, fsErr.detail, opts);
}
