/** Backoff delays and a set of timers that all end at once, so that closing a pool leaves nothing running. */

export interface BackoffOptions {
  /** The first delay. */
  initialMs: number;
  /** No delay is longer than this. */
  maxMs: number;
  factor: number;
  /** 0..1: each delay is drawn from [base * (1 - jitter), base], so many clients do not retry in step. */
  jitter: number;
}

export const DEFAULT_RECONNECT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000, factor: 2, jitter: 0.5 };
export const DEFAULT_PUBLISH_BACKOFF: BackoffOptions = { initialMs: 200, maxMs: 5_000, factor: 2, jitter: 0.5 };

/** The delay before retry number `attempt` (0 for the first retry). */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(options.maxMs, options.initialMs * options.factor ** Math.max(0, attempt));
  return Math.max(0, Math.round(base * (1 - options.jitter * random())));
}

/** Timeouts that are cleared together; `sleep` resolves early (with false) when the set is cleared. */
export class TimerSet {
  private readonly timers = new Map<ReturnType<typeof setTimeout>, (() => void) | undefined>();
  private cleared = false;

  get size(): number {
    return this.timers.size;
  }

  /** Runs `fn` after `ms` unless the set is cleared first; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void {
    if (this.cleared) return () => undefined;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.set(timer, undefined);
    return () => {
      clearTimeout(timer);
      this.timers.delete(timer);
    };
  }

  /** Waits `ms`; true if the time passed, false if the set was cleared meanwhile. */
  sleep(ms: number): Promise<boolean> {
    if (this.cleared) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve(true);
      }, ms);
      this.timers.set(timer, () => resolve(false));
    });
  }

  /** Cancels every timer; later calls schedule nothing. */
  clear(): void {
    this.cleared = true;
    for (const [timer, wake] of this.timers) {
      clearTimeout(timer);
      wake?.();
    }
    this.timers.clear();
  }
}

export const nowSeconds = (nowMs: number = Date.now()): number => Math.floor(nowMs / 1000);
