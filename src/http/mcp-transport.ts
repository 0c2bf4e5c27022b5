/**
 * The MCP streamable-HTTP transport of one session, on fastify's request and reply: an SDK `Transport`
 * (the SDK's `Server` does all of JSON-RPC and MCP; this only moves messages). The SDK's own Node
 * transport turns every request into a web Request and Response through @hono/node-server, which
 * measured about 9x the server CPU of a plain GET for a 100-byte read; this one writes the reply
 * directly. What it does, per the streamable HTTP transport of the MCP specification:
 * - POST with requests: answered as one JSON response (an array for a batch) once every request in it
 *   is answered; when a request asks for progress (`_meta.progressToken`) the answer is an SSE stream
 *   instead, carrying its notifications and then its response. Only notifications or responses: 202.
 * - a client that goes away before its answer cancels its requests (`notifications/cancelled`).
 * - GET: the session's one stream of messages that answer no request (resource-updated notifications),
 *   SSE with a heartbeat; a second one is 409.
 * - every answer names the session (`Mcp-Session-Id`).
 */
import type { ServerResponse } from 'node:http';
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { FastifyReply } from 'fastify';

const HEARTBEAT_MS = 15_000;

type Message = JSONRPCMessage & { id?: RequestId; method?: string; params?: { _meta?: { progressToken?: unknown } } };

const isRequest = (m: Message): boolean => typeof m.method === 'string' && m.id !== undefined;
const isResponse = (m: Message): boolean => m.id !== undefined && m.method === undefined;

function sseFrame(message: JSONRPCMessage): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

/** One POST's requests and how their answers go back: collected into JSON, or streamed as SSE. */
class Exchange {
  private readonly answers = new Map<RequestId, JSONRPCMessage>();
  private finished = false;
  readonly done: Promise<void>;
  private resolve!: () => void;

  constructor(
    private readonly reply: FastifyReply,
    readonly ids: readonly RequestId[],
    private readonly batch: boolean,
    private readonly sse: boolean,
    sessionId: string,
  ) {
    this.done = new Promise((r) => (this.resolve = r));
    if (sse) {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', 'mcp-session-id': sessionId });
    } else {
      reply.header('mcp-session-id', sessionId);
    }
  }

  get raw(): ServerResponse {
    return this.reply.raw;
  }

  /** A notification about one of the requests: only an SSE answer can carry it. */
  notify(message: JSONRPCMessage): void {
    if (this.sse && !this.finished) this.reply.raw.write(sseFrame(message));
  }

  answer(id: RequestId, message: JSONRPCMessage): void {
    if (this.finished) return;
    this.answers.set(id, message);
    if (this.sse) this.reply.raw.write(sseFrame(message));
    if (this.answers.size < this.ids.length) return;
    this.finished = true;
    if (this.sse) this.reply.raw.end();
    else {
      const body = this.batch ? this.ids.map((i) => this.answers.get(i)) : message;
      void this.reply.code(200).header('cache-control', 'no-store').type('application/json').send(JSON.stringify(body));
    }
    this.resolve();
  }

  /** The client went away, or the session closed before the answer: the session is gone for it. */
  abandon(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.sse) this.reply.raw.end();
    else if (!this.reply.sent && !this.reply.raw.destroyed) {
      void this.reply.code(404).type('application/json').send(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session closed' }, id: null }));
    }
    this.resolve();
  }
}

export class McpHttpTransport implements Transport {
  onmessage?: Transport['onmessage'];
  onclose?: Transport['onclose'];
  onerror?: Transport['onerror'];
  /** Requests in flight, by JSON-RPC id, and the POST that carried each. */
  private readonly pending = new Map<RequestId, Exchange>();
  private stream: ServerResponse | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  constructor(readonly sessionId: string) {}

  async start(): Promise<void> {}

  /** A POST's messages; resolves once its answer is sent (or the client is gone). */
  async post(reply: FastifyReply, body: unknown): Promise<void> {
    const batch = Array.isArray(body);
    const messages = (batch ? body : [body]) as Message[];
    const requests = messages.filter(isRequest);
    if (requests.length === 0) {
      for (const m of messages) this.onmessage?.(m);
      await reply.code(202).header('mcp-session-id', this.sessionId).send();
      return;
    }
    const ids = requests.map((r) => r.id!);
    if (ids.some((id) => this.pending.has(id)) || new Set(ids).size !== ids.length) {
      await reply
        .code(400)
        .type('application/json')
        .send(JSON.stringify({ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request: a request id already in flight in this session' }, id: null }));
      return;
    }
    const sse = requests.some((r) => r.params?._meta?.progressToken !== undefined);
    const exchange = new Exchange(reply, ids, batch, sse, this.sessionId);
    for (const id of ids) this.pending.set(id, exchange);
    exchange.raw.once('close', () => {
      // Gone before its answer: the handlers are told, as if the client had cancelled.
      for (const id of ids) {
        if (this.pending.get(id) !== exchange) continue;
        this.pending.delete(id);
        this.onmessage?.({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'the HTTP request ended' } });
      }
      exchange.abandon();
    });
    for (const m of messages) this.onmessage?.(m);
    await exchange.done;
  }

  /** The GET stream; false when one is open already. */
  openStream(res: ServerResponse): boolean {
    if (this.stream || this.closed) return false;
    this.stream = res;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', 'mcp-session-id': this.sessionId });
    res.write(': agent9 mcp session stream\n\n');
    this.heartbeat = setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS);
    this.heartbeat.unref();
    res.once('close', () => {
      clearInterval(this.heartbeat);
      if (this.stream === res) this.stream = undefined;
    });
    return true;
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const m = message as Message;
    if (isResponse(m)) {
      const exchange = this.pending.get(m.id!);
      // An answer nobody waits for any more (the client went away) is dropped.
      if (!exchange) return;
      this.pending.delete(m.id!);
      exchange.answer(m.id!, message);
      return;
    }
    const related = options?.relatedRequestId;
    if (related !== undefined) {
      this.pending.get(related)?.notify(message);
      return;
    }
    // A message that answers no request goes on the GET stream, if the client keeps one open.
    this.stream?.write(sseFrame(message));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const exchange of new Set(this.pending.values())) exchange.abandon();
    this.pending.clear();
    clearInterval(this.heartbeat);
    this.stream?.end();
    this.stream = undefined;
    this.onclose?.();
  }
}
