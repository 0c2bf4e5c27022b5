/**
 * The `/agents/import` call file's handle: it reads the bundle as it is written, so no transport holds
 * it whole. A version-2 bundle (JSON lines) is staged line by line as the writes arrive (FUSE writes,
 * HTTP body chunks) and becomes the agent when its `end` record arrives: that write answers for the
 * whole import. A version-1 bundle (one JSON document, from v0.1.0) can only be parsed whole: it is
 * buffered, up to MAX_V1_BUNDLE_BYTES, and imported when the request ends (close, or the first read).
 * The answer is read on the same handle, as for any call file.
 */
import { ByteBuffer, EMPTY, toBytes } from '../fs/bytes.js';
import { FsError } from '../fs/errors.js';
import type { Handle, Stat } from '../fs/types.js';
import { sliceAt } from '../fs/handles.js';
import { validate } from './spec.js';
import type { AgentRuntime } from './agent-runtime.js';
import { HeaderSchema, ImportOptionsSchema, MAX_LINE_BYTES, RecordSchema, type BundleRecord, type ImportOptions } from './bundle-format.js';
import { fromV1, MAX_V1_BUNDLE_BYTES } from './bundle.js';
import { ImportStage } from './import-stage.js';

/** Bytes looked at before deciding that a bundle is not JSON lines (a v1 document on one line). */
const SNIFF_BYTES = 1024 * 1024;

type Mode = 'sniff' | 'lines' | 'v1';

export class ImportHandle implements Handle {
  readonly kind = 'call' as const;
  private mode: Mode = 'sniff';
  private readonly pending = new ByteBuffer();
  private options: ImportOptions | undefined;
  private stage: ImportStage | undefined;
  private lineNo = 0;
  private wrote = false;
  private ended = false;
  private response: Uint8Array | undefined;
  private failure: unknown;
  /** Writes are applied one after another, whatever the transport does. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly rt: AgentRuntime,
    private readonly path: string,
    private readonly canRead: boolean,
    private readonly answer: (id: string) => string,
    private readonly baseStat: () => Stat,
  ) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  write(data: Uint8Array, _offset: number): Promise<number> {
    return this.serial(async () => {
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) {
        if (isWhitespace(data)) return data.length;
        throw new FsError('EBUSY', this.path, 'request already sent on this handle; open the file again');
      }
      if (data.length > 0) this.wrote = true;
      await this.guard(() => this.take(data));
      return data.length;
    });
  }

  /** Runs a step; on failure the staging is removed and the error is the handle's answer. */
  private async guard(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.failure = err;
      this.ended = true;
      await this.stage?.abort().catch(() => undefined);
      throw err;
    }
  }

  private async take(data: Uint8Array): Promise<void> {
    if (this.mode === 'v1') return this.buffer(data);
    if (this.mode === 'sniff') {
      this.pending.append(data);
      this.sniff();
      if ((this.mode as Mode) !== 'lines') return;
      data = this.pending.take();
    }
    const records = this.lines(data);
    if (records.length > 0 && (await this.stage!.add(records))) await this.complete();
  }

  private buffer(data: Uint8Array): void {
    if (this.pending.length + data.length > MAX_V1_BUNDLE_BYTES) {
      throw new FsError('EFBIG', this.path, `a version 1 bundle is read whole: at most ${MAX_V1_BUNDLE_BYTES} bytes (export again for version 2)`);
    }
    this.pending.append(data);
  }

  /** Decides from the first line: a v2 header (or import options, then a header), else a v1 document. */
  private sniff(): void {
    for (;;) {
      const bytes = this.pending.peek();
      const nl = bytes.indexOf(0x0a);
      if (nl < 0) {
        if (bytes.length > SNIFF_BYTES) this.mode = 'v1';
        return;
      }
      const text = Buffer.from(bytes.subarray(0, nl)).toString('utf8').trim();
      if (text === '') {
        this.pending.take();
        this.pending.append(bytes.subarray(nl + 1));
        continue;
      }
      let first: unknown;
      try {
        first = JSON.parse(text);
      } catch {
        this.mode = 'v1';
        return;
      }
      const obj = first !== null && typeof first === 'object' && !Array.isArray(first) ? (first as Record<string, unknown>) : undefined;
      const isHeader = obj?.['format'] !== undefined && obj['version'] !== 1;
      const isOptions = this.options === undefined && obj !== undefined && !('format' in obj) && !('bundle' in obj) && Object.keys(obj).every((k) => k === 'id' || k === 'new_identity');
      if (!isHeader && !isOptions) {
        this.mode = 'v1';
        return;
      }
      this.lineNo++;
      this.pending.take();
      this.pending.append(bytes.subarray(nl + 1));
      if (isOptions) {
        this.options = validate(ImportOptionsSchema, obj, this.path, 'import options (line 1)');
        continue;
      }
      const header = validate(HeaderSchema, obj, this.path, `bundle header (line ${this.lineNo})`);
      this.stage = new ImportStage(this.rt, this.path);
      this.stage.begin(header, this.options ?? {});
      this.mode = 'lines';
      return;
    }
  }

  /**
   * The lines `data` completes, parsed and checked; the partial line at its end is kept. Only the new
   * bytes are searched, and a line is joined once, when its end arrives.
   */
  private lines(data: Uint8Array): BundleRecord[] {
    const out: BundleRecord[] = [];
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl < 0) break;
      let bytes = data.subarray(start, nl);
      if (this.pending.length > 0) {
        this.pending.append(bytes);
        bytes = this.pending.take();
      }
      start = nl + 1;
      this.lineNo++;
      const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new FsError('EINVAL', this.path, `bundle line ${this.lineNo}: malformed JSON: ${(err as Error).message}`);
      }
      out.push(validate(RecordSchema, value, this.path, `bundle line ${this.lineNo}`));
    }
    if (start < data.length) {
      if (this.pending.length + data.length - start > MAX_LINE_BYTES) {
        throw new FsError('EINVAL', this.path, `bundle line ${this.lineNo + 1} is longer than ${MAX_LINE_BYTES} bytes`);
      }
      this.pending.append(data.subarray(start));
    }
    return out;
  }

  private async complete(): Promise<void> {
    const id = this.stage!.finish();
    this.ended = true;
    this.response = toBytes(this.answer(id));
  }

  /** The request has ended (close, flush, or a read): a v1 bundle is imported now; a v2 one must be complete. */
  private finishRequest(): Promise<void> {
    return this.serial(async () => {
      if (this.ended || !this.wrote) return;
      await this.guard(async () => {
        if (this.mode === 'lines' || (this.mode === 'sniff' && this.stage)) {
          const records = this.pending.length > 0 && !isWhitespace(this.pending.peek()) ? this.lines(new Uint8Array([0x0a])) : [];
          if (records.length > 0 && (await this.stage!.add(records))) return this.complete();
          throw new FsError('EINVAL', this.path, `bundle ends at line ${this.lineNo} without its end record (cut short?); nothing was imported`);
        }
        await this.importV1();
      });
    });
  }

  private async importV1(): Promise<void> {
    const text = Buffer.from(this.pending.take()).toString('utf8');
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch (err) {
      throw new FsError('EINVAL', this.path, `malformed JSON: ${(err as Error).message}`);
    }
    const { header, options, records } = fromV1(request, this.path);
    this.stage = new ImportStage(this.rt, this.path);
    this.stage.begin(header, options);
    // Staged in batches, giving the event loop back between them, as a v2 bundle's writes would.
    let batch: BundleRecord[] = [];
    for (const r of records) {
      batch.push(r);
      if (batch.length >= 64 || r.t === 'end') {
        const ended = await this.stage.add(batch);
        batch = [];
        if (ended) return this.complete();
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  }

  async read(length: number, offset: number): Promise<Uint8Array> {
    if (!this.canRead) throw new FsError('EBADF', this.path, 'file not open for reading');
    if (!this.wrote && !this.ended) throw new FsError('EINVAL', this.path, 'write an export bundle');
    await this.finishRequest();
    if (this.failure !== undefined) throw this.failure;
    return this.response ? sliceAt(this.response, length, offset) : EMPTY;
  }

  async flush(): Promise<void> {
    await this.finishRequest();
    if (this.failure !== undefined) throw this.failure;
  }

  async close(): Promise<void> {
    await this.finishRequest().catch(() => undefined);
  }

  async truncate(size: number): Promise<void> {
    if (size !== 0) throw new FsError('EINVAL', this.path, 'only truncation to 0 is supported');
  }

  async stat(): Promise<Stat> {
    return { ...this.baseStat(), size: this.response?.length ?? 0 };
  }
}

function isWhitespace(data: Uint8Array): boolean {
  for (const b of data) if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return false;
  return true;
}
