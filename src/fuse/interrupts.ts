/**
 * Interrupts of blocked FUSE requests (Ctrl-C on a `cat` that waits on a stream).
 *
 * The kernel never lets a process die while one of its requests is being served: after a signal it
 * sends FUSE_INTERRUPT naming the request and waits for the answer. libfuse3 hands the INTERRUPT to the
 * callback the addon registered for that request (native/agent9_fuse.c), which posts it to us; the
 * request then answers EINTR. What it was waiting for is not cancelled: the open file keeps it for the
 * reader's retry (coreutils, bash, Python, Node and Go all retry EINTR), so no datum is lost and no
 * call runs twice.
 */

export const INTERRUPTED: unique symbol = Symbol('interrupted');
export type Interrupted = typeof INTERRUPTED;

/** The interrupt state of one request. */
export class RequestInterrupt {
  private wakers: Array<() => void> = [];

  constructor(private fired = false) {}

  get interrupted(): boolean {
    return this.fired;
  }

  fire(): void {
    this.fired = true;
    const wakers = this.wakers;
    this.wakers = [];
    for (const wake of wakers) wake();
  }

  /** Waits for `work` unless the request is interrupted first. The work goes on either way. */
  race<T>(work: Promise<T>): Promise<T | Interrupted> {
    if (this.fired) return Promise.resolve(INTERRUPTED);
    return new Promise<T | Interrupted>((resolve, reject) => {
      this.wakers.push(() => resolve(INTERRUPTED));
      work.then(resolve, reject);
    });
  }
}
