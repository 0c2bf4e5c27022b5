/**
 * Write-behind for data files written through the mount. A write(2) is answered at once and kept, per
 * open file, as one contiguous run of bytes; the run is given to the Handle (one store transaction) when
 * it stops being contiguous, when it reaches RUN_BYTES, at the latest COMMIT_MS after its first byte,
 * and before anything that must see it: fsync, close (flush and release), and any other request on the
 * same inode (read, stat, setattr, lookup, rename, unlink), so readers on this mount always see it.
 * Other transports see it no later than the writer's close or fsync (close-to-open, as on NFS).
 * A failed commit (EDQUOT, EFBIG, EIO) is reported by the next fsync or close of that file, as NFS does.
 * The bytes held are bounded (MAX_HELD_BYTES over the mount): beyond it a write waits for commits.
 */
import type { Handle } from '../fs/types.js';

export const COMMIT_MS = 1000;
const RUN_BYTES = 4 * 1024 * 1024;
const MAX_HELD_BYTES = 64 * 1024 * 1024;

/** The pending run of one open file, and its commits in order. */
export class PendingWrites {
  private chunks: Uint8Array[] = [];
  private start = 0;
  private length = 0;
  since = 0;
  /** The commits started, in order; each waits for the one before. */
  private tail: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(
    readonly ino: number,
    private readonly handle: Handle,
  ) {}

  get held(): number {
    return this.length;
  }

  /** Whether `data` at `offset` extends the run (or starts one). */
  fits(offset: number): boolean {
    return this.length === 0 || offset === this.start + this.length;
  }

  add(data: Uint8Array, offset: number, now: number): void {
    if (this.length === 0) {
      this.start = offset;
      this.since = now;
    }
    this.chunks.push(data);
    this.length += data.length;
  }

  /** Starts committing the run (if any); resolves when it and every earlier commit are done. */
  commit(): Promise<void> {
    if (this.length > 0) {
      const data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
      const at = this.start;
      this.chunks = [];
      this.length = 0;
      this.tail = this.tail.then(async () => {
        try {
          let done = 0;
          while (done < data.length) done += await this.handle.write(data.subarray(done), at + done);
        } catch (err) {
          this.failure ??= err;
        }
      });
    }
    return this.tail;
  }

  /** Commits everything and throws the first failure since the last sync (then forgets it). */
  async sync(): Promise<void> {
    await this.commit();
    const err = this.failure;
    this.failure = undefined;
    if (err !== undefined) throw err;
  }
}

/** Every open file's pending writes on one mount, the 1-second committer and the bound. */
export class WriteBehind {
  private readonly byIno = new Map<number, Set<PendingWrites>>();
  private timer: NodeJS.Timeout | undefined;
  private held = 0;
  private readonly inFlight = new Set<Promise<void>>();

  /** Bytes held over the mount, not yet committed. */
  get heldBytes(): number {
    return this.held;
  }

  /** Takes a write; resolves when it may be answered (at once, unless the bound is reached). */
  async write(p: PendingWrites, data: Uint8Array, offset: number): Promise<void> {
    if (!p.fits(offset)) this.commit(p);
    p.add(data, offset, Date.now());
    this.held += data.length;
    let files = this.byIno.get(p.ino);
    if (!files) this.byIno.set(p.ino, (files = new Set()));
    files.add(p);
    this.timer ??= setInterval(() => this.tick(), COMMIT_MS / 4).unref();
    if (p.held >= RUN_BYTES) this.commit(p);
    while (this.held > MAX_HELD_BYTES && this.inFlight.size > 0) await Promise.race(this.inFlight);
  }

  /** Commits what `p` holds and waits; throws a failed commit of it. */
  async sync(p: PendingWrites): Promise<void> {
    this.release(p);
    await p.sync();
  }

  /** Commits everything pending on an inode (before a request that must see it). */
  async settle(ino: number | undefined): Promise<void> {
    if (ino === undefined) return;
    const files = this.byIno.get(ino);
    if (!files || files.size === 0) return;
    await Promise.all([...files].map((p) => this.commit(p)));
  }

  /** Whether an inode has writes not committed yet. */
  pending(ino: number | undefined): boolean {
    return ino !== undefined && (this.byIno.get(ino)?.size ?? 0) > 0;
  }

  /** Commits everything (at unmount). */
  async flushAll(): Promise<void> {
    const all = [...this.byIno.values()].flatMap((s) => [...s]);
    await Promise.all(all.map((p) => this.commit(p)));
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private commit(p: PendingWrites): Promise<void> {
    this.release(p);
    const work = p.commit();
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
    return work;
  }

  private release(p: PendingWrites): void {
    this.held -= p.held;
    const files = this.byIno.get(p.ino);
    if (files) {
      files.delete(p);
      if (files.size === 0) this.byIno.delete(p.ino);
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const files of [...this.byIno.values()]) for (const p of [...files]) if (now - p.since >= COMMIT_MS - COMMIT_MS / 4) this.commit(p);
    if (this.byIno.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
