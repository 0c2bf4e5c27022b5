/**
 * Interrupts of blocked FUSE requests (Ctrl-C on a `cat` that waits on a stream).
 *
 * The kernel never lets a process die while one of its requests is being served: after a fatal signal it
 * sends FUSE_INTERRUPT and waits, uninterruptibly, for the answer. libfuse 2 mounted with
 * `intr,intr_signal=SIGURG` answers an INTERRUPT by sending SIGURG to the worker thread that carries the
 * request. Node's handler for SIGURG (installed before the mount, so libfuse keeps it) tells us *that* a
 * request was interrupted, not which one; so every waiting blocking read ends with EINTR. The reader that
 * was killed dies; any other blocked reader retries its read (coreutils, bash, Python, Node and Go all
 * retry EINTR), and what its read was waiting for is kept for that retry, never lost.
 */

export const INTERRUPT_SIGNAL = 'SIGURG';

export const INTERRUPTED: unique symbol = Symbol('interrupted');
export type Interrupted = typeof INTERRUPTED;

const waiters = new Set<() => void>();
let generation = 0;
let users = 0;

function onInterrupt(): void {
  generation++;
  for (const wake of [...waiters]) wake();
}

/** Starts listening; call before mounting (libfuse keeps a handler that is already there). */
export function acquireInterrupts(): void {
  if (users++ === 0) process.on(INTERRUPT_SIGNAL, onInterrupt);
}

export function releaseInterrupts(): void {
  if (users > 0 && --users === 0) process.off(INTERRUPT_SIGNAL, onInterrupt);
}

/** The interrupt count now: a request that started at `since` and sees a later count was interrupted. */
export function interruptCount(): number {
  return generation;
}

/**
 * Waits for `work` unless an interrupt comes first (or came since `since`). The work is not cancelled:
 * the caller keeps it and hands its result to the retry.
 */
export function interruptible<T>(work: Promise<T>, since: number): Promise<T | Interrupted> {
  if (generation !== since) return Promise.resolve(INTERRUPTED);
  return new Promise<T | Interrupted>((resolve, reject) => {
    const wake = () => {
      waiters.delete(wake);
      resolve(INTERRUPTED);
    };
    waiters.add(wake);
    work.then(
      (value) => {
        waiters.delete(wake);
        resolve(value);
      },
      (err: unknown) => {
        waiters.delete(wake);
        reject(err);
      },
    );
  });
}
