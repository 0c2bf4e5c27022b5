/** Handle implementations shared by every service: snapshot, message, call and stream. */
import { ByteBuffer, EMPTY, toBytes, utf8, type Content } from './bytes.js';
import { FsError } from './errors.js';
import type { FileKind, FsEvent, Handle, ReadOptions, Stat } from './types.js';

export const DEFAULT_MESSAGE_CAP = 1024 * 1024;

/** Serves fixed bytes by offset: the snapshot a view takes at open. */
export function sliceAt(bytes: Uint8Array, length: number, offset: number): Uint8Array {
  if (offset >= bytes.length) return EMPTY;
  return bytes.subarray(offset, Math.min(bytes.length, offset + length));
}

export interface SyntheticHandleSpec {
  path: string;
  kind: FileKind;
  /** Content read through this handle (a view snapshot), fixed at open. */
  snapshot?: Uint8Array;
  /**
   * A view whose content was not ready at open (its read threw EAGAIN): read again at the first read,
   * which may wait for it (ReadOptions.waitMs); the first content read is this handle's snapshot.
   */
  later?: {
    read: () => Promise<Content>;
    /** Resolves when the content may be there (the record changed, or a while passed). */
    wait: (signal: AbortSignal) => Promise<void>;
    /** Whether a blocking read waits (the wait is bounded), rather than answering EAGAIN at once. */
    bounded: () => boolean;
  };
  /** Message semantics: the buffered writes, committed once on flush/close. */
  commit?: (data: Uint8Array) => Promise<void>;
  /** Call semantics: the request, answered on the same handle. */
  call?: (request: Uint8Array) => Promise<Content | undefined>;
  /**
   * True when the bytes written so far are whole: a call's request is sent by that write, a writable
   * view's document (with `commit`) is applied by it, so that write reports a refusal (bash's builtin
   * echo ignores errors of close). Whitespace written after it is ignored.
   */
  complete?: (request: Uint8Array) => boolean;
  /**
   * Message semantics, command files: checks one complete line (its `\n` removed, never blank) when the
   * write that completes it arrives, so that write fails (EINVAL...) and nothing of the message is sent.
   */
  checkLine?: (line: string) => Promise<void> | void;
  /** Stream semantics: the data, as bytes, until the iterable ends. */
  stream?: (signal: AbortSignal) => AsyncIterable<Uint8Array>;
  canRead: boolean;
  canWrite: boolean;
  maxBytes?: number;
  stat?: () => Promise<Stat>;
}

/**
 * One handle type for every synthetic file. What it does on read and write follows from the spec:
 * snapshot reads, message commits, call request/response, or stream reads.
 */
export class SyntheticHandle implements Handle {
  readonly kind: FileKind;
  private readonly buffer = new ByteBuffer();
  private response: Uint8Array | undefined;
  private callError: unknown;
  private pendingCall: Promise<void> | undefined;
  private committed = false;
  private sentWhenComplete = false;
  /** A writable view whose whole document a write completed and applied. */
  private appliedWhole = false;
  /** Command files: bytes of the buffer whose lines were checked, and the refusal of a bad line. */
  private checkedBytes = 0;
  private refused: unknown;
  private closed = false;
  private streamIter: AsyncIterator<Uint8Array> | undefined;
  private streamLeft: Uint8Array = EMPTY;
  private streamDone = false;
  /** A view that was not ready at open: its content once read, and the wait under way for it. */
  private content: Uint8Array | undefined;
  private waiting: Promise<void> | undefined;
  /** Only stream handles need one (made at open); creating and aborting one per handle is costly. */
  private abort: AbortController | undefined;
  private readonly maxBytes: number;

  constructor(private readonly spec: SyntheticHandleSpec) {
    this.kind = spec.kind;
    this.maxBytes = spec.maxBytes ?? DEFAULT_MESSAGE_CAP;
    // Subscribe at open: what arrives between open and the first read is not lost.
    if (spec.stream && spec.canRead) {
      this.abort = new AbortController();
      this.streamIter = spec.stream(this.abort.signal)[Symbol.asyncIterator]();
    }
  }

  async read(length: number, offset: number, opts?: ReadOptions): Promise<Uint8Array> {
    if (!this.spec.canRead) throw new FsError('EBADF', this.spec.path, 'file not open for reading');
    if (this.spec.call) return sliceAt(await this.callResponse(), length, offset);
    if (this.spec.stream) return this.readStream(length);
    if (this.spec.later && this.content === undefined) this.content = await this.awaitContent(opts?.waitMs ?? 0);
    return sliceAt(this.content ?? this.spec.snapshot ?? EMPTY, length, offset);
  }

  /** The content of a view that was not ready at open: read again, waiting between tries while allowed. */
  private async awaitContent(waitMs: number): Promise<Uint8Array> {
    const later = this.spec.later!;
    const deadline = Date.now() + (waitMs === Infinity && !later.bounded() ? 0 : waitMs);
    for (;;) {
      try {
        return toBytes(await later.read());
      } catch (err) {
        const left = deadline - Date.now();
        if (!(err instanceof FsError && err.code === 'EAGAIN') || left <= 0 || this.closed) throw err;
        this.abort ??= new AbortController();
        // One wait per handle, shared by a read and its retry after an interrupt.
        this.waiting ??= later.wait(this.abort.signal).finally(() => (this.waiting = undefined));
        await untilOrAfter(this.waiting, left);
      }
    }
  }

  async write(data: Uint8Array, _offset: number): Promise<number> {
    if (!this.spec.canWrite) throw new FsError('EBADF', this.spec.path, 'file not open for writing');
    if (this.spec.call && this.committed) {
      // A request sent as soon as it was whole: trailing whitespace (echo's newline) belongs to it.
      if (this.sentWhenComplete && isWhitespace(data)) return data.length;
      throw new FsError('EBUSY', this.spec.path, 'request already sent on this handle; open the file again');
    }
    if (this.refused !== undefined) throw this.refused;
    if (this.appliedWhole) {
      if (isWhitespace(data)) return data.length;
      throw new FsError('EINVAL', this.spec.path, 'data after the JSON document, which the write that completed it applied already');
    }
    if (this.buffer.length + data.length > this.maxBytes) {
      throw new FsError('EFBIG', this.spec.path, `message larger than ${this.maxBytes} bytes`);
    }
    this.buffer.append(data);
    if (this.spec.checkLine) await this.checkLines();
    if (this.spec.complete && this.spec.complete(this.buffer.peek())) {
      if (this.spec.call) {
        this.sentWhenComplete = true;
        await this.callResponse();
      } else if (this.spec.commit) {
        // Applied once, here: a refusal fails this write and nothing is left to commit at close.
        this.appliedWhole = true;
        await this.spec.commit(this.buffer.take());
      }
    }
    return data.length;
  }

  /**
   * Checks the lines the last write completed. A bad one refuses the whole message: the write fails,
   * the buffer is dropped (no line of it runs), and later writes on this handle fail the same way.
   */
  private async checkLines(): Promise<void> {
    const bytes = this.buffer.peek();
    let start = this.checkedBytes;
    for (let nl = bytes.indexOf(0x0a, start); nl >= 0; nl = bytes.indexOf(0x0a, start)) {
      const line = utf8(bytes.subarray(start, nl)).trim();
      start = nl + 1;
      if (line.length === 0) continue;
      try {
        await this.spec.checkLine!(line);
      } catch (err) {
        this.refused = err;
        this.buffer.take();
        this.checkedBytes = 0;
        throw err;
      }
    }
    this.checkedBytes = start;
  }

  /** Message files commit what was written since the last flush; call files send their request. */
  async flush(): Promise<void> {
    if (this.spec.commit && this.buffer.length > 0) {
      this.checkedBytes = 0;
      await this.spec.commit(this.buffer.take());
    } else if (this.spec.call && !this.committed && this.buffer.length > 0) {
      await this.callResponse();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort?.abort();
    try {
      await this.flush();
    } finally {
      if (this.streamIter?.return) void this.streamIter.return(undefined).catch(() => undefined);
    }
  }

  async truncate(size: number): Promise<void> {
    // `>` on a message or call file opens with O_TRUNC: nothing to truncate, the buffer starts empty.
    if (size !== 0 && this.spec.canWrite) throw new FsError('EINVAL', this.spec.path, 'only truncation to 0 is supported');
  }

  async stat(): Promise<Stat> {
    if (this.spec.stat) {
      const st = await this.spec.stat();
      const snapshot = this.content ?? this.spec.snapshot;
      if (snapshot) return { ...st, size: snapshot.length };
      if (this.response) return { ...st, size: this.response.length };
      return st;
    }
    throw new FsError('ENOSYS', this.spec.path);
  }

  private async callResponse(): Promise<Uint8Array> {
    if (!this.committed) {
      this.committed = true;
      this.pendingCall = this.runCall();
    }
    // Every reader, also one that arrives while the call is still running, waits for the same answer.
    await this.pendingCall;
    if (this.callError !== undefined) throw this.callError;
    return this.response!;
  }

  private async runCall(): Promise<void> {
    try {
      const answer = await this.spec.call!(this.buffer.take());
      this.response = answer === undefined ? EMPTY : toBytes(answer);
    } catch (err) {
      this.callError = err;
    }
  }

  private async readStream(length: number): Promise<Uint8Array> {
    if (this.streamLeft.length === 0) {
      if (this.streamDone || this.closed) return EMPTY;
      this.abort ??= new AbortController();
      this.streamIter ??= this.spec.stream!(this.abort.signal)[Symbol.asyncIterator]();
      const next = await this.streamIter.next();
      if (next.done || this.closed) {
        this.streamDone = true;
        return EMPTY;
      }
      this.streamLeft = next.value;
    }
    const out = this.streamLeft.subarray(0, length);
    this.streamLeft = this.streamLeft.subarray(out.length);
    return out;
  }
}

/** Resolves when `p` settles or after `ms`, whichever comes first (never rejects). */
function untilOrAfter(p: Promise<void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, Math.min(ms, 2 ** 31 - 1));
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    p.then(done, done);
  });
}

function isWhitespace(data: Uint8Array): boolean {
  for (const b of data) if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return false;
  return true;
}

/**
 * A stream's events as bytes: each datum as text (strings) or a JSON line; ends at `end`.
 * The event iterator is created at once, so the subscription starts when the file is opened.
 */
export function streamBytes(
  events: AsyncIterable<FsEvent>,
  format: (ev: FsEvent) => Content | undefined = defaultStreamFormat,
): AsyncIterable<Uint8Array> {
  const it = events[Symbol.asyncIterator]();
  let ended = false;
  const iterator: AsyncIterator<Uint8Array> = {
    async next() {
      while (!ended) {
        const r = await it.next();
        if (r.done || r.value.type === 'end') break;
        if (r.value.type !== 'data') continue;
        const out = format(r.value);
        if (out !== undefined && out.length > 0) return { value: toBytes(out), done: false };
      }
      ended = true;
      void it.return?.();
      return { value: undefined, done: true };
    },
    async return() {
      ended = true;
      await it.return?.();
      return { value: undefined, done: true };
    },
  };
  return { [Symbol.asyncIterator]: () => iterator };
}

export function defaultStreamFormat(ev: FsEvent): Content | undefined {
  if (typeof ev.data === 'string') return ev.data.endsWith('\n') ? ev.data : ev.data + '\n';
  return JSON.stringify(ev.data) + '\n';
}

/**
 * A handle whose errors are translated on the way out (a mount's relative paths made whole, a scope's
 * paths renamed); everything else, readInto and the optional operations included, passes through.
 */
export class MappedHandle implements Handle {
  readonly kind: Handle['kind'];
  readInto?: (target: Uint8Array, offset: number) => Promise<number>;
  truncate?: (size: number) => Promise<void>;
  stat?: () => Promise<Stat>;
  room?: () => number;

  constructor(
    private readonly inner: Handle,
    private readonly mapError: (err: unknown) => unknown,
  ) {
    this.kind = inner.kind;
    if (inner.room) this.room = () => inner.room!();
    if (inner.readInto) this.readInto = (target, offset) => this.guard(() => inner.readInto!(target, offset));
    if (inner.truncate) this.truncate = (size) => this.guard(() => inner.truncate!(size));
    if (inner.stat) this.stat = () => this.guard(() => inner.stat!());
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.mapError(err);
    }
  }

  read(length: number, offset: number, opts?: ReadOptions): Promise<Uint8Array> {
    return this.guard(() => this.inner.read(length, offset, opts));
  }
  write(data: Uint8Array, offset: number): Promise<number> {
    return this.guard(() => this.inner.write(data, offset));
  }
  flush(): Promise<void> {
    return this.guard(() => this.inner.flush());
  }
  close(): Promise<void> {
    return this.guard(() => this.inner.close());
  }
}
