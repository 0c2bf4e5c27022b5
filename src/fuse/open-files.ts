/**
 * What the FUSE transport keeps per open file beyond the Handle: the read state of the blocking kinds.
 * A stream read or a call answer that is still running when its reader is interrupted is kept and
 * handed to the reader's retry (see interrupts.ts). Call files read their answer from the offset of the
 * first read, because a shell reads the answer on the descriptor it wrote the request to
 * (`exec 3<>new; echo req >&3; cat <&3` reads at the end of the request).
 */
import { EMPTY } from '../fs/bytes.js';
import { FsError } from '../fs/errors.js';
import type { Cx, FileKind, Handle } from '../fs/types.js';
import { INTERRUPTED, type Interrupted, type RequestInterrupt } from './interrupts.js';
import type { PendingWrites } from './write-behind.js';

const STREAM_CHUNK = 128 * 1024;

function settle(p: Promise<unknown>): Promise<void> {
  return p.then(
    () => undefined,
    () => undefined,
  );
}

/**
 * Whether `p` (which never rejects) settles within this turn of the event loop: what is already there
 * (stored events, a buffered datum) arrives through promises only, before a macrotask runs.
 */
function settlesNow(p: Promise<void>): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setImmediate(() => resolve(false));
    void p.then(() => {
      clearImmediate(timer);
      resolve(true);
    });
  });
}

export class OpenFile {
  readonly kind: FileKind;
  /** Stream: the read running on the handle, bytes it returned not yet delivered, its end or error. */
  private pulling: Promise<void> | undefined;
  private leftover: Uint8Array = EMPTY;
  private ended = false;
  private failure: unknown;
  /** Call: the offset of the first read (the answer starts there) and the running call. */
  private callBase: number | undefined;
  private answering: Promise<void> | undefined;
  /** Data files: writes held back (write-behind.ts). */
  pending: PendingWrites | undefined;

  constructor(
    /** The path at open (a rename later does not change what the handle reaches). */
    readonly path: string,
    readonly ino: number,
    readonly handle: Handle,
    /** The opener: release and forget carry no caller, so close acts as the one who opened. */
    readonly cx: Cx,
    /** Opened O_NONBLOCK (what a read goes by when the addon does not send the file's flags with it). */
    readonly nonblockAtOpen = false,
  ) {
    this.kind = handle.kind;
  }

  /**
   * `nonblock` (O_NONBLOCK, as `grep -r` opens files): a read that would wait answers EAGAIN instead,
   * like a pipe's: a stream with no datum yet, a call still running, a result not ready.
   */
  read(length: number, offset: number, interrupt: RequestInterrupt, nonblock = false): Promise<Uint8Array | Interrupted> {
    switch (this.kind) {
      case 'stream':
        return this.readStream(length, interrupt, nonblock);
      case 'call':
        return this.readCall(length, offset, interrupt, nonblock);
      default:
        // A view may wait for its content (a running job's result): a blocking read waits, interruptibly.
        return interrupt.race(this.handle.read(length, offset, { waitMs: nonblock ? 0 : Infinity }));
    }
  }

  /** Streams ignore offsets: each read takes what the handle delivers next, blocking until it comes. */
  private async readStream(length: number, interrupt: RequestInterrupt, nonblock: boolean): Promise<Uint8Array | Interrupted> {
    for (;;) {
      if (this.leftover.length > 0) {
        const out = this.leftover.subarray(0, length);
        this.leftover = this.leftover.subarray(out.length);
        return out;
      }
      if (this.failure !== undefined) {
        const err = this.failure;
        this.failure = undefined;
        throw err;
      }
      if (this.ended) return EMPTY;
      this.pulling ??= this.handle.read(STREAM_CHUNK, 0).then(
        (chunk) => {
          this.pulling = undefined;
          if (chunk.length === 0) this.ended = true;
          else this.leftover = chunk;
        },
        (err: unknown) => {
          this.pulling = undefined;
          this.failure = err;
        },
      );
      if (nonblock) {
        if (!(await settlesNow(this.pulling))) throw new FsError('EAGAIN', this.path, 'no data yet (the file is open O_NONBLOCK)');
        continue;
      }
      if ((await interrupt.race(this.pulling)) === INTERRUPTED) return INTERRUPTED;
    }
  }

  /** The answer is read from where the first read started; the call itself runs once per handle. */
  private async readCall(length: number, offset: number, interrupt: RequestInterrupt, nonblock: boolean): Promise<Uint8Array | Interrupted> {
    this.callBase ??= offset;
    const at = Math.max(0, offset - this.callBase);
    this.answering ??= settle(this.handle.read(length, at));
    if (nonblock && !(await settlesNow(this.answering))) throw new FsError('EAGAIN', this.path, 'the answer is not there yet (the file is open O_NONBLOCK)');
    if ((await interrupt.race(this.answering)) === INTERRUPTED) return INTERRUPTED;
    // The handle keeps the answer (or the error): this read is served from it.
    return this.handle.read(length, at);
  }
}
