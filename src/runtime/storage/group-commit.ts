/**
 * Group commit, on the one transaction API: work submitted while other work of the same turn is still
 * running (concurrent ticks, concurrent writers) commits in one `storage.tx(..., {immediate: true})`,
 * each piece in its own nested `storage.tx` (a savepoint), so a failing piece rolls back alone and every
 * submitter learns its own outcome only after the commit is durable. A lone piece runs in a plain
 * transaction. IMMEDIATE because the pieces read, then write: the write lock is taken at BEGIN, so the
 * group cannot fail with SQLITE_BUSY half way when another connection writes.
 */
import type { Storage } from './index.js';
import { FsError } from '../../fs/errors.js';

interface Job {
  work: () => unknown;
  savepoint: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit {
  private pending: Job[] = [];
  readonly stats = { transactions: 0, jobs: 0 };

  /**
   * `gather: 'io'` waits for the end of the event loop's turn (setImmediate) instead of the end of the
   * current callback (nextTick): work from every request read in this turn (each request's body ends in
   * its own I/O callback) shares one commit. `immediate` (default true): the write lock is taken at BEGIN.
   */
  constructor(
    private readonly storage: Pick<Storage, 'tx'>,
    private readonly options: { gather?: 'tick' | 'io'; immediate?: boolean } = {},
  ) {}

  /**
   * Runs `work` inside a transaction shared with the other work of this turn; resolves after commit.
   * `savepoint: false` skips the savepoint for work that throws only before it writes anything (its
   * expected failures leave the others untouched; an unexpected one aborts the whole group).
   */
  run<T>(work: () => T, options: { savepoint?: boolean } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, savepoint: options.savepoint ?? true, resolve: resolve as (v: unknown) => void, reject });
      // After every promise continuation of this turn has run, so concurrent submitters share it.
      if (this.pending.length === 1) {
        if (this.options.gather === 'io') setImmediate(() => this.flush());
        else process.nextTick(() => this.flush());
      }
    });
  }

  private flush(): void {
    const jobs = this.pending;
    this.pending = [];
    const outcomes: { ok: boolean; value: unknown }[] = [];
    try {
      this.storage.tx(
        () => {
          for (const job of jobs) {
            if (jobs.length === 1) {
              outcomes.push({ ok: true, value: job.work() });
              continue;
            }
            try {
              outcomes.push({ ok: true, value: job.savepoint ? this.storage.tx(job.work) : job.work() });
            } catch (err) {
              if (!job.savepoint && !(err instanceof FsError)) throw err;
              outcomes.push({ ok: false, value: err });
            }
          }
        },
        { immediate: this.options.immediate ?? true },
      );
    } catch (err) {
      for (const job of jobs) job.reject(err);
      return;
    }
    this.stats.transactions++;
    this.stats.jobs += jobs.length;
    jobs.forEach((job, i) => {
      const o = outcomes[i]!;
      if (o.ok) job.resolve(o.value);
      else job.reject(o.value);
    });
  }
}
