/**
 * openai: any OpenAI-compatible chat endpoint (`POST <base_url>/chat/completions`), streaming through
 * server-sent events. Base URL, key, models and prices come from the server config. Failures become
 * FsErrors with the provider's own message: EREMOTEIO (HTTP errors, unreachable endpoint, broken
 * stream) or ETIMEDOUT (no complete answer within the job's timeout). The API key is sent only in the
 * Authorization header: it is never in a file, an error, a log line or a trace, and it is scrubbed from
 * anything the endpoint sends back.
 */
import { FsError } from '../../../fs/errors.js';
import { usageOf } from '../pricing.js';
import type {
  ComputeProvider,
  ComputeRequest,
  ModelInfo,
  Pricing,
  ProviderHealth,
  ProviderInfo,
  ProviderResult,
  ProviderRun,
  TokenUsage,
} from '../types.js';

export interface OpenAiConfig {
  type?: 'openai';
  name?: string;
  /** e.g. https://api.openai.com/v1 (the path before /chat/completions). */
  base_url: string;
  /** The name of the environment variable holding the key (preferred). */
  api_key_env?: string;
  /** The key itself (keep config.json private: 0600). */
  api_key?: string;
  /** Models it serves; without a list it serves any model no other provider lists. */
  models?: (string | ModelInfo)[];
  /** Default prices for models without their own, micro-USD per million tokens. */
  pricing?: Pricing;
  /** Upper bound for one request, whatever the job's timeout_ms (default 600000). */
  timeout_ms?: number;
  /** False for endpoints that cannot stream: every job then yields one chunk. */
  streaming?: boolean;
  /** Ask for usage in the last stream chunk (stream_options.include_usage); default true. */
  stream_usage?: boolean;
  /** Expected time to first token, for routing (default 500). */
  ttft_ms?: number;
  /** Extra request headers (never shown). */
  headers?: Record<string, string>;
}

export const ZERO_PRICING: Pricing = { input_per_mtok: 0, output_per_mtok: 0 };
const MAX_ERROR_TEXT = 500;
const HEALTH_TIMEOUT_MS = 5000;

interface ChatCompletion {
  choices?: { message?: { content?: string | null }; delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null;
  error?: { message?: string } | string;
}

/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What a header value cannot hold: fetch refuses CR, LF and NUL, and other controls are never meant. */
// eslint-disable-next-line no-control-regex
const NOT_IN_HEADER = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** The URL without credentials or query, for info files and messages. */
function displayUrl(raw: string): string {
  try {
    const u = new URL(raw);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(invalid URL)';
  }
}

export class OpenAiProvider implements ComputeProvider {
  private readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly authSource: string;
  private readonly configured: ModelInfo[] | undefined;
  private discovered: ModelInfo[] | undefined;
  private readonly pricing: Pricing;
  private readonly timeoutMs: number;
  private readonly streaming: boolean;
  private readonly basicAuth: string | undefined;
  /** Everything besides the key that must never show in a message: URL credentials, extra header values. */
  private readonly secrets: string[];

  constructor(
    readonly id: string,
    private readonly config: OpenAiConfig,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    let url: URL;
    try {
      url = new URL(config.base_url);
    } catch {
      throw new FsError('EINVAL', `/providers/${id}`, `compute provider '${id}': base_url is not a URL`);
    }
    const refuse = (why: string): never => {
      throw new FsError('EINVAL', `/providers/${id}`, `compute provider '${id}': ${why}`);
    };
    if (url.protocol !== 'http:' && url.protocol !== 'https:') refuse('base_url must be http or https');
    // Request paths are appended to it: a query or fragment would swallow them.
    if (url.search || url.hash) refuse('base_url cannot have a query (?) or fragment (#); /chat/completions and /models are appended to it');
    for (const [name, value] of Object.entries(config.headers ?? {})) {
      if (!HEADER_NAME.test(name)) refuse(`header ${JSON.stringify(name)} is not a header name`);
      if (NOT_IN_HEADER.test(value)) refuse(`the value of header '${name}' holds a control character (a newline?)`);
    }
    url.search = '';
    url.hash = '';
    // fetch refuses URLs with credentials (and its error repeats the URL): they become a Basic header.
    const password = decodeURIComponent(url.password);
    const userinfo = url.username || password ? `${decodeURIComponent(url.username)}:${password}` : undefined;
    url.username = '';
    url.password = '';
    this.baseUrl = url.toString().replace(/\/+$/, '');
    this.basicAuth = userinfo === undefined ? undefined : `Basic ${Buffer.from(userinfo).toString('base64')}`;
    this.secrets = [userinfo, password, this.basicAuth?.slice('Basic '.length), ...Object.values(config.headers ?? {})].filter((s): s is string => !!s && s.length >= 4);
    if (config.api_key_env) {
      this.apiKey = env[config.api_key_env] || undefined;
      if (this.apiKey && NOT_IN_HEADER.test(this.apiKey)) refuse(`the key in $${config.api_key_env} holds a control character (a newline?)`);
      this.authSource = `bearer key from $${config.api_key_env}${this.apiKey ? '' : ' (not set)'}`;
    } else if (config.api_key) {
      this.apiKey = config.api_key;
      if (NOT_IN_HEADER.test(this.apiKey)) refuse('api_key holds a control character (a newline?)');
      this.authSource = 'bearer key from config.json';
    } else {
      this.authSource = this.basicAuth ? 'basic credentials from base_url' : 'none';
    }
    if (this.apiKey && this.apiKey.length >= 4) this.secrets.push(this.apiKey);
    this.configured = config.models?.map((m) => (typeof m === 'string' ? { id: m } : m));
    this.pricing = config.pricing ?? ZERO_PRICING;
    this.timeoutMs = config.timeout_ms ?? 600_000;
    this.streaming = config.streaming ?? true;
  }

  info(): ProviderInfo {
    const models = (this.configured ?? this.discovered ?? []).map((m) => ({ ...m, pricing: m.pricing ?? this.pricing }));
    return {
      id: this.id,
      type: 'openai',
      name: this.config.name ?? `OpenAI-compatible endpoint (${this.id})`,
      description: `Chat completions at ${displayUrl(this.baseUrl)}/chat/completions${this.configured ? '' : '; serves any model no other provider lists'}`,
      streaming: this.streaming,
      models,
      pricing: this.pricing,
      latency: { ttft_ms: this.config.ttft_ms ?? 500, measured: false },
      endpoint: displayUrl(this.baseUrl),
      auth: this.authSource,
    };
  }

  supports(model: string): boolean {
    const list = this.configured ?? this.discovered;
    return list ? list.some((m) => m.id === model) : true;
  }

  /** Removes the key and every other credential from text an endpoint or fetch sent back (some echo headers). */
  private scrub(text: string): string {
    let out = text;
    for (const secret of this.secrets) {
      out = out.split(secret).join('[redacted]');
      const encoded = encodeURIComponent(secret);
      if (encoded !== secret) out = out.split(encoded).join('[redacted]');
    }
    return out;
  }

  private fail(detail: string, code: 'EREMOTEIO' | 'ETIMEDOUT' = 'EREMOTEIO'): FsError {
    return new FsError(code, '/', `provider ${this.id}: ${this.scrub(detail)}`);
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    for (const [k, v] of Object.entries(this.config.headers ?? {})) h[k.toLowerCase()] = v;
    if (this.apiKey) h['authorization'] = `Bearer ${this.apiKey}`;
    else if (this.basicAuth) h['authorization'] = this.basicAuth;
    return h;
  }

  async health(signal?: AbortSignal): Promise<ProviderHealth> {
    const started = Date.now();
    const timeout = AbortSignal.timeout(HEALTH_TIMEOUT_MS);
    try {
      const res = await fetch(`${this.baseUrl}/models`, {
        headers: this.headers(),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        redirect: 'manual',
      });
      const latency = Date.now() - started;
      const body = await res.text();
      if (res.ok) {
        if (!this.configured) this.discovered = parseModelList(body);
        return { status: 'available', checked_at: Date.now(), latency_ms: latency };
      }
      const reason = `HTTP ${res.status}: ${this.scrub(redirectText(res) ?? errorText(body))}`;
      const status = res.status === 401 || res.status === 403 || res.status >= 500 ? 'unavailable' : 'degraded';
      return { status, reason, checked_at: Date.now(), latency_ms: latency };
    } catch (err) {
      return { status: 'unavailable', reason: this.scrub(describeFetchError(err, HEALTH_TIMEOUT_MS)), checked_at: Date.now() };
    }
  }

  async run(request: ComputeRequest, io: ProviderRun): Promise<ProviderResult> {
    const stream = request.stream && this.streaming;
    const body: Record<string, unknown> = { model: request.model, messages: request.messages, stream };
    if (request.max_tokens !== undefined) body['max_tokens'] = request.max_tokens;
    if (request.temperature !== undefined) body['temperature'] = request.temperature;
    if (request.top_p !== undefined) body['top_p'] = request.top_p;
    if (request.stop !== undefined) body['stop'] = request.stop;
    if (stream && this.config.stream_usage !== false) body['stream_options'] = { include_usage: true };

    const limit = Math.min(request.timeout_ms, this.timeoutMs);
    const timeout = AbortSignal.timeout(limit);
    const signal = AbortSignal.any([io.signal, timeout]);
    const onAbort = (): never => {
      if (io.signal.aborted) throw io.signal.reason;
      throw this.fail(`no complete answer within ${limit} ms`, 'ETIMEDOUT');
    };
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: this.headers(),
        body: JSON.stringify(body),
        signal,
        redirect: 'manual',
      });
    } catch (err) {
      if (signal.aborted) onAbort();
      throw this.fail(describeFetchError(err, limit));
    }
    try {
      if (!res.ok) {
        const text = await res.text();
        throw this.fail(`HTTP ${res.status}: ${redirectText(res) ?? errorText(text)}`);
      }
      const type = res.headers.get('content-type') ?? '';
      // Usage the endpoint does not report stays null: the engine estimates it at this model's token ratio.
      return type.includes('text/event-stream') ? await this.readStream(res, io) : this.readJson(await res.text());
    } catch (err) {
      if (err instanceof FsError) throw err;
      if (signal.aborted) onAbort();
      throw this.fail(`broken answer: ${(err as Error).message}`);
    }
  }

  private readJson(text: string): ProviderResult {
    let parsed: ChatCompletion;
    try {
      parsed = JSON.parse(text) as ChatCompletion;
    } catch {
      throw this.fail(`answer is not JSON: ${text.slice(0, 200)}`);
    }
    if (parsed.error) throw this.fail(errorText(JSON.stringify(parsed)));
    const choice = parsed.choices?.[0];
    if (!choice) throw this.fail('answer has no choices');
    return {
      output: { text: choice.message?.content ?? '', finish_reason: choice.finish_reason ?? 'stop' },
      usage: toUsage(parsed.usage),
    };
  }

  /** Reads an SSE answer: `data: {chunk}` events until `data: [DONE]` or the end of the body. */
  private async readStream(res: Response, io: ProviderRun): Promise<ProviderResult> {
    if (!res.body) throw this.fail('empty answer');
    const decoder = new TextDecoder();
    let buffer = '';
    let text = '';
    let finish: string | null = null;
    let usage: TokenUsage | null = null;
    let done = false;
    const handle = (event: string) => {
      const data = event
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (!data) return;
      if (data.trim() === '[DONE]') {
        done = true;
        return;
      }
      let chunk: ChatCompletion;
      try {
        chunk = JSON.parse(data) as ChatCompletion;
      } catch {
        throw this.fail(`stream event is not JSON: ${data.slice(0, 200)}`);
      }
      if (chunk.error) throw this.fail(errorText(JSON.stringify(chunk)));
      const choice = chunk.choices?.[0];
      const delta = choice?.delta?.content;
      if (delta) {
        text += delta;
        io.chunk(delta);
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) usage = toUsage(chunk.usage);
    };
    const reader = res.body.getReader();
    try {
      while (!done) {
        const { value, done: eof } = await reader.read();
        if (eof) break;
        buffer += decoder.decode(value, { stream: true });
        let at: RegExpExecArray | null;
        while (!done && (at = /\r?\n\r?\n/.exec(buffer))) {
          const event = buffer.slice(0, at.index);
          buffer = buffer.slice(at.index + at[0].length);
          handle(event);
        }
      }
      if (!done && buffer.trim()) handle(buffer);
    } finally {
      void reader.cancel().catch(() => undefined);
    }
    if (!done && finish === null) throw this.fail('stream ended before the answer finished');
    return { output: { text, finish_reason: finish ?? 'stop' }, usage };
  }
}

function toUsage(u: ChatCompletion['usage']): TokenUsage | null {
  if (!u || typeof u.prompt_tokens !== 'number' || typeof u.completion_tokens !== 'number') return null;
  return usageOf(u.prompt_tokens, u.completion_tokens);
}

/**
 * A redirect is not followed: it would carry the key (and the request) to wherever the endpoint says.
 * Its message tells the admin where base_url should point instead.
 */
function redirectText(res: Response): string | undefined {
  if (res.status < 300 || res.status > 399) return undefined;
  const location = res.headers.get('location');
  let target = '';
  try {
    if (location) target = ` to ${displayUrl(new URL(location, res.url).toString())}`;
  } catch {
    // not a URL: said without it
  }
  return `the endpoint redirects${target}; redirects are not followed (they would carry the key elsewhere): point base_url there`;
}

/** The provider's own message from an error body (OpenAI's `{error:{message}}`), else the text. */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    const e = parsed.error;
    const msg = typeof e === 'string' ? e : typeof e?.message === 'string' ? e.message : typeof parsed.message === 'string' ? parsed.message : undefined;
    if (msg) return msg.slice(0, MAX_ERROR_TEXT);
  } catch {
    // not JSON: the raw text below
  }
  return body.trim().slice(0, MAX_ERROR_TEXT) || '(empty body)';
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `cannot reach the endpoint: ${e?.message ?? String(err)}${cause ? ` (${cause})` : ''}`;
}

function parseModelList(body: string): ModelInfo[] | undefined {
  try {
    const parsed = JSON.parse(body) as { data?: { id?: unknown }[] };
    if (!Array.isArray(parsed.data)) return undefined;
    return parsed.data.filter((m) => typeof m.id === 'string').map((m) => ({ id: m.id as string }));
  } catch {
    return undefined;
  }
}
