/**
 * Answering a request from the outcome of a service call: errors through the one table in
 * src/fs/errors.ts, internal failures reported, and a deadline for metadata operations and open, so
 * a stuck service gives ETIMEDOUT, never a hung shell.
 */
import { toFsError, FsError } from '../fs/errors.js';
import type { Reply } from './requests.js';
import { ETIMEDOUT } from './errnos.js';

interface Waiting {
  readonly since: number;
  expire(): void;
}

export type ErrorSink = (op: string, path: string, err: unknown) => void;

export class Answers {
  private readonly waiting = new Set<Waiting>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    /** 0 = no deadline. */
    private readonly opTimeoutMs: number,
    private readonly onError: ErrorSink | undefined,
  ) {}

  /** Stops the deadline sweeper (at unmount). */
  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** Tells about internal failures and deadlines passed; ordinary errors (ENOENT...) are the caller's. */
  report(op: string, path: string, err: unknown): void {
    if (err instanceof FsError && err.code !== 'EIO' && err.code !== 'ETIMEDOUT') return;
    if (this.onError) this.onError(op, path, err);
    else process.stderr.write(`agent9 fuse: ${op} ${path}: ${(err as Error)?.stack ?? String(err)}\n`);
  }

  /** The errno FUSE answers with, from the one table in src/fs/errors.ts. */
  errno(op: string, path: string, err: unknown): number {
    const fsErr = toFsError(err, path);
    if (!(err instanceof FsError) || fsErr.code === 'EIO') this.report(op, path, err);
    return fsErr.mapping.errno;
  }

  /** Answers a failure of `work` on `reply`, and a success through `done`. */
  settle<T>(op: string, path: string, reply: Reply, work: Promise<T>, done: (v: T) => void): void {
    work.then(done, (err: unknown) => reply.err(this.errno(op, path, err)));
  }

  /**
   * Like settle, with the deadline: ETIMEDOUT once it passed; a result that arrives late goes to
   * `onLate` (an open's handle is closed there, or it would leak).
   */
  within<T>(op: string, path: string, reply: Reply, work: Promise<T>, done: (v: T) => void, onLate?: (v: T) => void): void {
    if (this.opTimeoutMs <= 0) return this.settle(op, path, reply, work, done);
    let answered = false;
    const waiting: Waiting = {
      since: Date.now(),
      expire: () => {
        if (answered) return;
        answered = true;
        reply.err(ETIMEDOUT);
        this.report(op, path, new FsError('ETIMEDOUT', path, `${op} took longer than ${this.opTimeoutMs} ms`));
        work.then((v) => onLate?.(v), () => undefined);
      },
    };
    this.waiting.add(waiting);
    this.sweeper ??= setInterval(() => this.sweep(), Math.min(1000, this.opTimeoutMs)).unref();
    work.then(
      (v) => {
        this.waiting.delete(waiting);
        if (answered) return;
        answered = true;
        try {
          done(v);
        } catch (err) {
          reply.err(this.errno(op, path, err));
        }
      },
      (err: unknown) => {
        this.waiting.delete(waiting);
        if (answered) return;
        answered = true;
        reply.err(this.errno(op, path, err));
      },
    );
  }

  private sweep(): void {
    const now = Date.now();
    for (const w of this.waiting) {
      if (now - w.since < this.opTimeoutMs) continue;
      this.waiting.delete(w);
      w.expire();
    }
  }
}
