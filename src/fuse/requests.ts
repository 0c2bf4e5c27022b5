/**
 * FUSE requests in flight: each is answered exactly once (a second reply would free libfuse's request
 * twice), never after the session ended, and can be interrupted by the kernel (interrupts.ts).
 */
import type { NativeFuse, StatWords } from './binding.js';
import { RequestInterrupt } from './interrupts.js';

export class Requests {
  private readonly pending = new Map<number, Reply>();
  private ended = false;

  constructor(readonly native: NativeFuse) {}

  get alive(): boolean {
    return !this.ended;
  }

  /** How many requests wait for an answer. */
  get size(): number {
    return this.pending.size;
  }

  begin(req: number, interrupted = false): Reply {
    const r = new Reply(req, this, new RequestInterrupt(interrupted));
    this.pending.set(req, r);
    return r;
  }

  /** The kernel gave up waiting for `req` (the caller got a signal). */
  interrupt(req: number): void {
    this.pending.get(req)?.interrupt.fire();
  }

  /** The session is gone: nothing may be answered any more (libfuse freed the requests). */
  end(): void {
    this.ended = true;
    for (const r of this.pending.values()) r.interrupt.fire();
    this.pending.clear();
  }

  /** @internal */
  finish(r: Reply): boolean {
    if (this.ended || !this.pending.has(r.req)) return false;
    this.pending.delete(r.req);
    return true;
  }
}

/** One request's answer. Every method answers at most once; later calls are ignored. */
export class Reply {
  constructor(
    readonly req: number,
    private readonly owner: Requests,
    readonly interrupt: RequestInterrupt,
  ) {}

  private take(): boolean {
    return this.owner.finish(this);
  }

  err(errno: number): void {
    if (this.take()) this.owner.native.replyErr(this.req, errno);
  }

  ok(): void {
    this.err(0);
  }

  entry(stat: StatWords, attrTimeout: number, entryTimeout: number): void {
    if (this.take()) this.owner.native.replyEntry(this.req, stat, 0, attrTimeout, entryTimeout);
  }

  attr(stat: StatWords, attrTimeout: number): void {
    if (this.take()) this.owner.native.replyAttr(this.req, stat, attrTimeout);
  }

  open(fh: number, flags: number): boolean {
    if (!this.take()) return false;
    return this.owner.native.replyOpen(this.req, fh, flags) === 0;
  }

  create(stat: StatWords, attrTimeout: number, entryTimeout: number, fh: number, flags: number): boolean {
    if (!this.take()) return false;
    return this.owner.native.replyCreate(this.req, stat, 0, attrTimeout, entryTimeout, fh, flags) === 0;
  }

  buf(data: Uint8Array, length = data.length): void {
    if (this.take()) this.owner.native.replyBuf(this.req, data, length);
  }

  written(count: number): void {
    if (this.take()) this.owner.native.replyWrite(this.req, count);
  }

  readlink(target: string): void {
    if (this.take()) this.owner.native.replyReadlink(this.req, target);
  }

  xattrSize(size: number): void {
    if (this.take()) this.owner.native.replyXattr(this.req, size);
  }

  statfs(words: number[]): void {
    if (this.take()) this.owner.native.replyStatfs(this.req, words);
  }

  dir(size: number, names: string[], inos: number[], modes: number[], first: number): void {
    if (this.take()) this.owner.native.replyDir(this.req, size, names, inos, modes, first);
  }
}
