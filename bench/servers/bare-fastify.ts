/**
 * Bench child, the baseline: a bare fastify app with @fastify/sse and one better-sqlite3 table.
 * - `GET /hundred` returns the same 100 bytes from memory;
 * - `PUT /hundred` (or any name) stores the body with one upsert, on a database opened by Storage's own
 *   openDb (WAL, the same synchronous setting and pragmas), and answers 204;
 * - `GET /events` is an SSE stream; `POST /broadcast` sends one event to every open stream.
 */
import Fastify from 'fastify';
import { fastifySSE } from '@fastify/sse';
import type { FastifyReply } from 'fastify';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb } from '../../src/runtime/storage/db.js';

const HUNDRED = Buffer.from('x'.repeat(99) + '\n');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'agent9-bench-bare-'));
  const db = openDb(join(dir, 'bare.db'));
  db.exec('CREATE TABLE files (path TEXT PRIMARY KEY, data BLOB NOT NULL)');
  const upsert = db.prepare('INSERT INTO files (path, data) VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET data = excluded.data');

  const app = Fastify({ logger: false });
  await app.register(fastifySSE, { heartbeatInterval: 15_000 });
  // A body is bytes, whatever its type (as agent9 takes it).
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  const clients = new Set<FastifyReply>();
  let id = 0;
  app.get('/hundred', async (_req, reply) => reply.type('text/plain; charset=utf-8').send(HUNDRED));
  app.put<{ Params: { name: string } }>('/:name', async (req, reply) => {
    upsert.run(req.params.name, req.body as Buffer);
    return reply.code(204).send();
  });
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
    db.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('disconnect', () => void stop());
  process.send!({ url: `http://127.0.0.1:${port}` });
}

void main();
