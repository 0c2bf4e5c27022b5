/**
 * A FileService over the HTTP mapping of a remote agent9 server: stat is HEAD, readdir is GET dir/,
 * reads are GET, writes are buffered per handle and sent on flush/close with the verb the file kind
 * needs (PUT for data and views, POST ?append=1 for messages and appends, POST for calls), watch is
 * SSE that resumes from the last event id after any disconnect, including a server restart.
 * agentctl uses it; so can a FUSE mount of a remote server.
 */
import { EMPTY, concatBytes, copyBytes } from '../fs/bytes.js';
import { ERROR_TABLE, FsError, isErrorCode } from '../fs/errors.js';
import { sliceAt } from '../fs/handles.js';
import { normalizePath } from '../fs/paths.js';
import type {
  Cx,
  DirEntry,
  FileKind,
  FileService,
  FsEvent,
  FsSpace,
  Handle,
  OpenFlags,
  Stat,
  WriteFileOptions,
} from '../fs/types.js';
import { SseParser } from './sse-parser.js';
import { spaceFromJson } from './space-json.js';

export interface ClientOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:7070 */
  url: string;
  token?: string;
  /** How long a watch keeps trying to reconnect before it fails with EIO (default 30 s). */
  reconnectForMs?: number;
  /** Delay between reconnection attempts when the server gave no `retry:` (default 1 s). */
  reconnectDelayMs?: number;
  /**
   * A watch that receives nothing (not even the server's heartbeat, every 15 s) for this long is
   * considered dead and reconnects (default 45 s). A silently dropped connection is caught this way.
   */
  idleTimeoutMs?: number;
  /** Called on each watch disconnect that will be retried. */
  onReconnect?: (info: { path: string; lastEventId: string | undefined; error: unknown }) => void;
}

interface RequestSpec {
  method: string;
  path: string;
  /** Ask for the directory form (`/p/`). */
  slash?: boolean;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** Bytes, or a stream sent as it is read (chunked). */
  body?: Uint8Array | ReadableStream<Uint8Array>;
  signal?: AbortSignal | undefined;
}

/** The path, URL-encoded segment by segment (not normalised: the server judges it). */
export function encodePath(path: string): string {
  return path
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
}

function statFromHeaders(h: Headers, path: string): Stat {
  const num = (name: string): number => {
    const v = h.get(name);
    if (v === null) throw new FsError('EIO', path, `the server sent no ${name} header`);
    return Number(v);
  };
  const type = h.get('x-agent9-type') === 'dir' ? 'dir' : 'file';
  return {
    type,
    kind: (h.get('x-agent9-kind') ?? (type === 'dir' ? 'dir' : 'data')) as FileKind,
    size: num('x-agent9-size'),
    mode: parseInt(h.get('x-agent9-mode') ?? '0', 8),
    mtime: num('x-agent9-mtime'),
    ctime: num('x-agent9-ctime'),
    version: num('x-agent9-version'),
  };
}

/** An FsError from an error response: the JSON body when there is one, else the status. */
async function errorFrom(res: Response, path: string): Promise<FsError> {
  let code = res.headers.get('x-agent9-error') ?? '';
  let message = '';
  let errPath = path;
  try {
    const text = await res.text();
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; path?: string } };
    if (body.error) {
      code = body.error.code ?? code;
      errPath = body.error.path ?? path;
      message = body.error.message ?? '';
    }
  } catch {
    // No JSON body (HEAD): the message is in a header.
    const decode = (name: string): string | undefined => {
      const v = res.headers.get(name);
      if (v === null) return undefined;
      try {
        return decodeURIComponent(v);
      } catch {
        return v;
      }
    };
    message = decode('x-agent9-message') ?? '';
    errPath = decode('x-agent9-path') ?? path;
  }
  if (!isErrorCode(code)) code = res.status === 401 ? 'EAUTH' : res.status >= 500 ? 'EIO' : 'EINVAL';
  const prefix = `${errPath}: `;
  const detail = message.startsWith(prefix) ? message.slice(prefix.length) : message || `HTTP ${res.status} ${res.statusText}`;
  const retry = res.headers.get('retry-after');
  return new FsError(code as keyof typeof ERROR_TABLE, errPath, detail, retry ? { retryAfterMs: Number(retry) * 1000 } : {});
}

function networkError(err: unknown, url: string, path: string): FsError {
  if (err instanceof FsError) return err;
  const e = err as { name?: string; cause?: { code?: string; message?: string }; message?: string };
  if (e?.name === 'AbortError') return new FsError('ETIMEDOUT', path, 'request aborted', { cause: err });
  const why = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
  return new FsError('EIO', path, `cannot reach the agent9 server at ${url} (${why})`, { cause: err });
}

export class HttpFileService implements FileService {
  readonly serviceName = 'http';
  readonly url: string;
  private readonly token: string | undefined;

  constructor(readonly options: ClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.token = options.token;
  }

  /** Sends one request; error statuses become FsErrors. */
  async request(spec: RequestSpec): Promise<Response> {
    const p = normalizePath(spec.path);
    let target = this.url + encodePath(p);
    if (spec.slash && p !== '/') target += '/';
    if (spec.query) target += '?' + new URLSearchParams(spec.query).toString();
    const headers: Record<string, string> = { ...spec.headers };
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    const init: RequestInit = { method: spec.method, headers };
    if (spec.body !== undefined) init.body = spec.body;
    // A streamed body needs half duplex (Node's fetch refuses it otherwise).
    if (spec.body instanceof ReadableStream) (init as RequestInit & { duplex: 'half' }).duplex = 'half';
    if (spec.signal) init.signal = spec.signal;
    let res: Response;
    try {
      res = await fetch(target, init);
    } catch (err) {
      throw networkError(err, this.url, p);
    }
    if (res.status >= 400) throw await errorFrom(res, p);
    return res;
  }

  private async bytes(res: Response): Promise<Uint8Array> {
    return new Uint8Array(await res.arrayBuffer());
  }

  async stat(path: string, cx?: Cx): Promise<Stat> {
    const res = await this.request({ method: 'HEAD', path, signal: cx?.signal });
    return statFromHeaders(res.headers, path);
  }

  async readdir(path: string, cx?: Cx): Promise<DirEntry[]> {
    const res = await this.request({ method: 'GET', path, slash: true, signal: cx?.signal });
    const rows = (await res.json()) as (Stat & { name: string })[];
    return rows.map(({ name, ...stat }) => ({ name, stat }));
  }

  async readFile(path: string, cx?: Cx): Promise<Uint8Array> {
    const res = await this.request({ method: 'GET', path, signal: cx?.signal });
    if (res.headers.get('x-agent9-type') === 'dir') {
      await res.body?.cancel();
      throw new FsError('EISDIR', path, 'is a directory');
    }
    return this.bytes(res);
  }

  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions = {}, cx?: Cx): Promise<Stat> {
    const headers: Record<string, string> = {};
    if (opts.ifVersion === 0) headers['if-none-match'] = '*';
    else if (opts.ifVersion !== undefined) headers['if-match'] = `"${opts.ifVersion}"`;
    const query: Record<string, string> = {};
    if (opts.mode !== undefined) query['mode'] = opts.mode.toString(8).padStart(4, '0');
    if (opts.append) query['append'] = '1';
    const res = await this.request({ method: opts.append ? 'POST' : 'PUT', path, query, headers, body: data, signal: cx?.signal });
    return res.headers.has('x-agent9-version') ? statFromHeaders(res.headers, path) : this.stat(path, cx);
  }

  /** POST: a call's answer, a message sent, or a view replaced, as the server's file kind decides. */
  async post(path: string, data: Uint8Array, cx?: Cx): Promise<Uint8Array> {
    const res = await this.request({ method: 'POST', path, body: data, signal: cx?.signal });
    return res.status === 204 ? EMPTY : this.bytes(res);
  }

  /** statfs over HTTP: `GET /p?statfs=1`. */
  async statfs(path: string, cx?: Cx): Promise<FsSpace> {
    const res = await this.request({ method: 'GET', path, query: { statfs: '1' }, signal: cx?.signal });
    return spaceFromJson(await res.json().catch(() => null), path);
  }

  /** POST with a body streamed from `body` (never held whole): a call's answer. */
  async postStream(path: string, body: AsyncIterable<Uint8Array>, cx?: Cx): Promise<Uint8Array> {
    const it = body[Symbol.asyncIterator]();
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = await it.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      async cancel() {
        await it.return?.();
      },
    });
    const res = await this.request({ method: 'POST', path, body: stream, signal: cx?.signal });
    return res.status === 204 ? EMPTY : this.bytes(res);
  }

  /** GET as a stream of bytes (a large view, an export), never held whole. */
  async readStream(path: string, cx?: Cx): Promise<ReadableStream<Uint8Array>> {
    const res = await this.request({ method: 'GET', path, signal: cx?.signal });
    if (res.headers.get('x-agent9-type') === 'dir') {
      await res.body?.cancel();
      throw new FsError('EISDIR', path, 'is a directory');
    }
    return res.body ?? new ReadableStream({ start: (c) => c.close() });
  }

  async mkdir(path: string, mode: number, cx?: Cx): Promise<void> {
    const query: Record<string, string> = mode ? { mode: mode.toString(8).padStart(4, '0') } : {};
    await this.request({ method: 'PUT', path, slash: true, query, signal: cx?.signal });
  }

  async remove(path: string, cx?: Cx): Promise<void> {
    await this.request({ method: 'DELETE', path, signal: cx?.signal });
  }

  async rename(from: string, to: string, cx?: Cx): Promise<void> {
    await this.request({ method: 'MOVE', path: from, headers: { destination: encodePath(normalizePath(to)) }, signal: cx?.signal });
  }

  async truncate(path: string, size: number, cx?: Cx): Promise<void> {
    const st = await this.stat(path, cx);
    if (st.type === 'dir') throw new FsError('EISDIR', path, 'is a directory');
    if (st.kind !== 'data') {
      if (size !== 0) throw new FsError('EINVAL', path, 'only truncation to 0 is supported');
      return;
    }
    const current = size === 0 ? EMPTY : await this.readFile(path, cx);
    const next = new Uint8Array(size);
    next.set(current.subarray(0, size));
    await this.writeFile(path, next, { ifVersion: st.version }, cx);
  }

  async open(path: string, flags: OpenFlags, cx?: Cx): Promise<Handle> {
    const p = normalizePath(path);
    let stat: Stat | undefined;
    try {
      stat = await this.stat(p, cx);
    } catch (err) {
      if (!(err instanceof FsError && err.code === 'ENOENT' && flags.create)) throw err;
    }
    if (stat && flags.create && flags.exclusive) throw new FsError('EEXIST', p, 'file exists');
    if (stat?.type === 'dir') throw new FsError('EISDIR', p, 'is a directory');
    if (stat === undefined) {
      // A created file exists from its open on, as on a disk (fstat, stat and other readers see it),
      // not only once its content is sent at close. Create-only: a file made meanwhile is EEXIST
      // for an exclusive open and simply opened otherwise. A file that cannot be empty (a goal is its
      // JSON: EINVAL) is made by its content at close instead; until then only its handle knows it.
      try {
        await this.writeFile(p, EMPTY, { ifVersion: 0, ...(flags.mode !== undefined ? { mode: flags.mode } : {}) }, cx);
      } catch (err) {
        if (!(err instanceof FsError && (err.code === 'ESTALE' || err.code === 'EEXIST' || err.code === 'EINVAL'))) throw err;
        if (err.code !== 'EINVAL' && flags.exclusive) throw new FsError('EEXIST', p, 'file exists');
      }
    }
    return new HttpHandle(this, p, stat?.kind ?? 'data', stat === undefined, flags, cx);
  }

  /**
   * Watches over SSE. After a disconnect it reconnects with Last-Event-ID, so nothing is lost or
   * repeated; it gives up with EIO after `reconnectForMs` without a connection.
   */
  watch(path: string, from: number | undefined, cx?: Cx): AsyncIterable<FsEvent> {
    const p = normalizePath(path);
    return { [Symbol.asyncIterator]: () => this.watchEvents(p, from, cx?.signal)[Symbol.asyncIterator]() };
  }

  private async *watchEvents(path: string, from: number | undefined, signal: AbortSignal | undefined): AsyncGenerator<FsEvent> {
    let lastEventId = from === undefined ? undefined : String(from);
    let failingSince: number | undefined;
    const parser = new SseParser();
    for (;;) {
      if (signal?.aborted) return;
      const ac = new AbortController();
      const onAbort = () => ac.abort();
      signal?.addEventListener('abort', onAbort);
      let disconnect: unknown;
      let watchdog: ReturnType<typeof setTimeout> | undefined;
      const idleMs = this.options.idleTimeoutMs ?? 45_000;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ac.abort(), idleMs);
      };
      arm();
      try {
        const headers: Record<string, string> = { accept: 'text/event-stream' };
        if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
        const res = await this.request({ method: 'GET', path, query: { watch: '1' }, headers, signal: ac.signal });
        failingSince = undefined;
        const reader = res.body!.getReader();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            arm();
            for (const msg of parser.push(decoder.decode(value, { stream: true }))) {
              if (msg.event === 'error') throw new WatchRefused(errorEvent(msg.data, path));
              const ev = JSON.parse(msg.data) as FsEvent;
              lastEventId = msg.lastEventId || lastEventId;
              yield ev;
              // A watched stream file ends with its `end`; the server closes the watch after it.
              if (ev.type === 'end' && ev.path === path) return;
            }
            // An id-only frame (the starting cursor) moves the cursor without an event.
            if (parser.lastEventId) lastEventId = parser.lastEventId;
          }
        } finally {
          reader.cancel().catch(() => undefined);
        }
        disconnect = new FsError('EIO', path, 'the server closed the watch');
      } catch (err) {
        if (signal?.aborted) return;
        if (err instanceof WatchRefused) throw err.error;
        const fsErr = err instanceof FsError ? err : networkError(err, this.url, path);
        // Only trouble reaching the server is retried; a refusal (401, 403, 404...) is the answer.
        const retriable = fsErr.code === 'EIO' || fsErr.code === 'ETIMEDOUT' || fsErr.code === 'EAGAIN';
        if (!retriable) throw fsErr;
        disconnect = fsErr;
      } finally {
        clearTimeout(watchdog);
        signal?.removeEventListener('abort', onAbort);
        ac.abort();
      }
      const now = Date.now();
      failingSince ??= now;
      if (now - failingSince > (this.options.reconnectForMs ?? 30_000)) {
        throw new FsError('EIO', path, `watch lost its connection to ${this.url} and could not reconnect`, { cause: disconnect });
      }
      this.options.onReconnect?.({ path, lastEventId, error: disconnect });
      await sleep(parser.retryMs ?? this.options.reconnectDelayMs ?? 1000, signal);
    }
  }
}

/** An `error` event: the server refused the watch after it started; not retried. */
class WatchRefused extends Error {
  constructor(readonly error: FsError) {
    super(error.message);
  }
}

function errorEvent(data: string, path: string): FsError {
  try {
    const e = (JSON.parse(data) as { error: { code: string; message: string; path: string } }).error;
    const code = isErrorCode(e.code) ? e.code : 'EIO';
    const prefix = `${e.path}: `;
    return new FsError(code, e.path ?? path, e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message);
  } catch {
    return new FsError('EIO', path, `watch failed: ${data}`);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });
}

/**
 * One open file of the remote server. Data files are fetched whole on the first read (or the first
 * offset write) and sent back whole with PUT; appends, messages and calls are buffered and sent once.
 */
class HttpHandle implements Handle {
  private content: Uint8Array | undefined;
  private dirty = false;
  private pending: Uint8Array[] = [];
  private answer: Promise<Uint8Array> | undefined;
  private stream: ReadableStreamDefaultReader<Uint8Array> | undefined;
  private streamLeft: Uint8Array = EMPTY;
  private readonly abort = new AbortController();
  private closed = false;

  constructor(
    private readonly client: HttpFileService,
    private readonly path: string,
    readonly kind: FileKind,
    private readonly isNew: boolean,
    private readonly flags: OpenFlags,
    private readonly cx: Cx | undefined,
  ) {
    if (kind === 'data' && (isNew || (flags.truncate && flags.write))) {
      this.content = EMPTY;
      this.dirty = isNew || !!flags.truncate;
    }
    cx?.signal?.addEventListener('abort', () => this.abort.abort());
  }

  private get signal(): AbortSignal {
    return this.abort.signal;
  }

  private async whole(): Promise<Uint8Array> {
    this.content ??= await this.client.readFile(this.path, { ...this.cxBase(), signal: this.signal });
    return this.content;
  }

  private cxBase(): Cx {
    return this.cx ?? { principal: { id: 'http-client', admin: false } };
  }

  async read(length: number, offset: number): Promise<Uint8Array> {
    if (this.flags.write && this.flags.read === false) throw new FsError('EBADF', this.path, 'file not open for reading');
    switch (this.kind) {
      case 'call':
        return sliceAt(await this.callAnswer(), length, offset);
      case 'stream':
        return this.readStream(length);
      default:
        return sliceAt(await this.whole(), length, offset);
    }
  }

  async write(data: Uint8Array, offset: number): Promise<number> {
    if (!this.flags.write) throw new FsError('EBADF', this.path, 'file not open for writing');
    if (this.kind === 'call' && this.answer) throw new FsError('EBUSY', this.path, 'request already sent on this handle; open the file again');
    if (this.kind === 'data' && !this.flags.append) {
      const current = await this.whole();
      const end = offset + data.length;
      const next = end > current.length ? new Uint8Array(end) : current.slice();
      if (end > current.length) next.set(current);
      next.set(data, offset);
      this.content = next;
      this.dirty = true;
    } else {
      this.pending.push(copyBytes(data));
    }
    return data.length;
  }

  private takePending(): Uint8Array {
    const out = concatBytes(this.pending);
    this.pending = [];
    return out;
  }

  private callAnswer(): Promise<Uint8Array> {
    this.answer ??= this.client.post(this.path, this.pending.length ? this.takePending() : EMPTY, { ...this.cxBase(), signal: this.signal });
    return this.answer;
  }

  async flush(): Promise<void> {
    const cx = { ...this.cxBase(), signal: this.signal };
    if (this.kind === 'call') {
      if (this.pending.length > 0 && !this.answer) await this.callAnswer();
      return;
    }
    if (this.kind === 'data' && !this.flags.append) {
      if (!this.dirty) return;
      this.dirty = false;
      await this.client.writeFile(this.path, this.content ?? EMPTY, {}, cx);
      return;
    }
    if (this.pending.length === 0) return;
    const data = this.takePending();
    if (data.length === 0) return;
    // Messages and appends are one POST ?append=1; a view is replaced whole.
    await this.client.writeFile(this.path, data, this.kind === 'view' ? {} : { append: true }, cx);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.flush();
    } finally {
      this.abort.abort();
      void this.stream?.cancel().catch(() => undefined);
    }
  }

  async truncate(size: number): Promise<void> {
    if (this.kind !== 'data') {
      if (size !== 0) throw new FsError('EINVAL', this.path, 'only truncation to 0 is supported');
      return;
    }
    const current = size === 0 ? EMPTY : await this.whole();
    const next = new Uint8Array(size);
    next.set(current.subarray(0, size));
    this.content = next;
    this.dirty = true;
  }

  async stat(): Promise<Stat> {
    if (this.isNew && this.dirty) {
      const now = Date.now();
      return { type: 'file', kind: 'data', size: this.content?.length ?? 0, mode: this.flags.mode ?? 0o644, mtime: now, ctime: now, version: 0 };
    }
    const st = await this.client.stat(this.path, this.cx);
    return this.content && this.dirty ? { ...st, size: this.content.length } : st;
  }

  private async readStream(length: number): Promise<Uint8Array> {
    if (this.streamLeft.length === 0) {
      if (this.closed) return EMPTY;
      if (!this.stream) {
        const res = await this.client.request({ method: 'GET', path: this.path, signal: this.signal });
        this.stream = res.body!.getReader();
      }
      let next: Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>;
      try {
        next = await this.stream.read();
      } catch (err) {
        if (this.closed) return EMPTY;
        throw networkError(err, this.client.url, this.path);
      }
      if (next.done) return EMPTY;
      this.streamLeft = next.value;
    }
    const out = this.streamLeft.subarray(0, length);
    this.streamLeft = this.streamLeft.subarray(out.length);
    return out;
  }
}
