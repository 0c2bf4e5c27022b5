/**
 * Bench child, the baseline: a bare fastify app with @fastify/sse. `GET /hundred` returns the same 100
 * bytes; `GET /events` is an SSE stream; `POST /broadcast` sends one event to every open stream.
 */
import Fastify from 'fastify';
import { fastifySSE } from '@fastify/sse';
import type { FastifyReply } from 'fastify';

const HUNDRED = Buffer.from('x'.repeat(99) + '\n');

async function main(): Promise<void> {
  const app = Fastify({ logger: false });
  await app.register(fastifySSE, { heartbeatInterval: 15_000 });
  const clients = new Set<FastifyReply>();
  let id = 0;
  app.get('/hundred', async (_req, reply) => reply.type('text/plain; charset=utf-8').send(HUNDRED));
  app.get('/events', { sse: 'only' }, async (_req, reply) => {
    reply.sse.keepAlive();
    clients.add(reply);
    reply.sse.onClose(() => clients.delete(reply));
    reply.sse.sendHeaders(200);
    reply.raw.write(': open\n\n');
  });
  app.post('/broadcast', async (_req, reply) => {
    id++;
    const data = { id, type: 'modified', path: '/data/watched', time: Date.now(), version: id };
    await Promise.all([...clients].map((r) => r.sse.send({ id: String(id), event: 'modified', data })));
    return reply.code(204).send();
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.on('message', (msg: { cmd?: string }) => {
    if (msg.cmd === 'rss') process.send!({ rss: process.memoryUsage().rss });
    if (msg.cmd === 'cpu') process.send!({ cpu: process.cpuUsage() });
  });
  const stop = async () => {
    for (const r of clients) r.sse.close();
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('disconnect', () => void stop());
  process.send!({ url: `http://127.0.0.1:${port}`, token: '' });
}

void main();
