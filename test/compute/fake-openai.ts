/**
 * TEST DOUBLE of an OpenAI-compatible model endpoint (no model behind it): a local fastify app that
 * answers /v1/chat/completions with canned text, streaming through SSE like the real API, so the
 * `openai` provider is tested over real HTTP. What it does depends on the model named in the request:
 *
 *   fake-chat          "Hello from the test double! You said: <last user message>" (usage 10 + 7 tokens)
 *   fake-nousage       the same, without usage
 *   fake-error         HTTP 400 with an OpenAI-style error message
 *   fake-leaky-error   HTTP 500 whose message repeats the Authorization header it received
 *   fake-slow          waits `slowMs` before sending anything
 *   fake-stream-error  streams one chunk, then an error event
 *   fake-broken        streams one chunk, then closes the connection
 *   fake-overcount     like fake-chat, with usage counting one token per byte (4× agent9's estimate)
 * Every model ignores max_tokens (it answers in full), as an endpoint that does not honour it would.
 * A request with another bearer token than `apiKey` gets HTTP 401 (the message names the token it got,
 * as some real endpoints do).
 */
import Fastify, { type FastifyInstance } from 'fastify';

export interface FakeOpenAi {
  url: string;
  app: FastifyInstance;
  requests: { model: string; stream: boolean; body: Record<string, unknown>; auth: string | undefined }[];
  /** Delay between stream chunks (ms). */
  chunkDelayMs: number;
  /** How long fake-slow waits (ms). */
  slowMs: number;
  close(): Promise<void>;
}

export const FAKE_MODELS = ['fake-chat', 'fake-nousage', 'fake-error', 'fake-leaky-error', 'fake-slow', 'fake-stream-error', 'fake-broken', 'fake-overcount'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeOpenAi(apiKey = 'sk-test-double-key-123456'): Promise<FakeOpenAi> {
  const app = Fastify({ logger: false });
  const fake: FakeOpenAi = {
    url: '',
    app,
    requests: [],
    chunkDelayMs: 5,
    slowMs: 2000,
    close: () => app.close(),
  };

  const authorized = (auth: string | undefined) => auth === `Bearer ${apiKey}`;

  app.get('/v1/models', async (req, reply) => {
    if (!authorized(req.headers.authorization)) return reply.code(401).send({ error: { message: 'Incorrect API key provided' } });
    return { object: 'list', data: FAKE_MODELS.map((id) => ({ id, object: 'model' })) };
  });

  app.post('/v1/chat/completions', async (req, reply) => {
    const body = req.body as { model: string; stream?: boolean; messages: { role: string; content: string }[]; stream_options?: { include_usage?: boolean } };
    const auth = req.headers.authorization;
    fake.requests.push({ model: body.model, stream: !!body.stream, body: body as unknown as Record<string, unknown>, auth });
    if (!authorized(auth)) {
      return reply.code(401).send({ error: { message: `Incorrect API key provided: ${auth?.replace(/^Bearer /, '') ?? '(none)'}.`, type: 'invalid_request_error' } });
    }
    const model = body.model;
    if (model === 'fake-error') {
      return reply.code(400).send({ error: { message: 'The model `fake-error` does not exist or you do not have access to it.', type: 'invalid_request_error' } });
    }
    if (model === 'fake-leaky-error') {
      return reply.code(500).send({ error: { message: `internal error while handling request with header ${auth}` } });
    }
    if (model === 'fake-slow') await sleep(fake.slowMs);
    const last = [...body.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const text = `Hello from the test double! You said: ${last}`;
    const bytes = (t: string) => Buffer.byteLength(t);
    const promptBytes = body.messages.reduce((n, m) => n + bytes(m.content), 0);
    const usage =
      model === 'fake-nousage'
        ? undefined
        : model === 'fake-overcount'
          ? { prompt_tokens: promptBytes, completion_tokens: bytes(text), total_tokens: promptBytes + bytes(text) }
          : { prompt_tokens: 10, completion_tokens: 7, total_tokens: 17 };
    const id = `chatcmpl-${fake.requests.length}`;
    if (!body.stream) {
      return {
        id,
        object: 'chat.completion',
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        ...(usage ? { usage } : {}),
      };
    }
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (data: unknown) => raw.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
      id,
      object: 'chat.completion.chunk',
      model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    send(chunk({ role: 'assistant', content: '' }, null));
    const words = text.match(/\S+\s*/g) ?? [];
    for (const [i, w] of words.entries()) {
      if (raw.destroyed) return;
      await sleep(fake.chunkDelayMs);
      send(chunk({ content: w }, null));
      if (i === 0 && model === 'fake-stream-error') {
        send({ error: { message: 'The server had an error while processing your request.' } });
        raw.end();
        return;
      }
      if (i === 0 && model === 'fake-broken') {
        raw.destroy();
        return;
      }
    }
    send(chunk({}, 'stop'));
    if (usage && body.stream_options?.include_usage) send({ id, object: 'chat.completion.chunk', model, choices: [], usage });
    send('[DONE]');
    raw.end();
  });

  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  fake.url = `${address}/v1`;
  return fake;
}
