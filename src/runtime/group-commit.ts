/**
 * Group commit: small writes queued during one turn of the event loop commit together in one SQLite
 * transaction (with their events published after it), each in its own savepoint so that one failing
 * write fails alone. Streams of many concurrent jobs (chunks, status changes, completions) then cost one
 * commit per turn instead of one per write. A write's promise resolves once it is durable.
 */
import type { Storage } from './storage/index.js';

interface Pending {
  fn: () => void;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;
  private readonly savepoint: (fn: () => void) => void;
  private readonly transaction: (fn: () => void) => void;

  constructor(storage: Storage) {
    const sp = storage.db.transaction((fn: () => void) => fn());
    // IMMEDIATE: the group takes the write lock at BEGIN, so what its writes read (a budget's remaining
    // amount) cannot change under it from another connection.
    this.transaction = (fn) => storage.events.batch(() => (storage.db.inTransaction ? sp(fn) : sp.immediate(fn)));
    // The inner batch drops the events of a savepoint that rolled back.
    this.savepoint = (fn) => storage.events.batch(() => sp(fn));
  }

  /** Queues `fn` (synchronous SQLite work) for the next group commit. */
  add(fn: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ fn, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits everything queued now (also called by the timer). */
  flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const failures = new Map<number, unknown>();
    try {
      this.transaction(() => {
        for (let i = 0; i < batch.length; i++) {
          try {
            this.savepoint(batch[i]!.fn);
          } catch (err) {
            failures.set(i, err);
          }
        }
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => (failures.has(i) ? p.reject(failures.get(i)) : p.resolve()));
  }

  get pending(): number {
    return this.queue.length;
  }
}
