/**
 * A watch of an agent across a real server restart: `agentctl serve` is stopped with SIGTERM and started
 * again on the same data directory and port while a client watches; the client resumes with
 * Last-Event-ID and sees exactly what a replay from its first cursor sees afterwards.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FsEvent } from '../../src/fs/types.js';
import { HttpFileService } from '../../src/http/client.js';
import { admin, cleanup, tempDir } from '../helpers.js';
import { ensureBuilt, startServe, type ServeProcess } from './helpers.js';

let server: ServeProcess | undefined;

beforeAll(async () => {
  await ensureBuilt();
}, 240_000);

afterAll(async () => {
  await server?.stop('SIGKILL');
  cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function send(s: ServeProcess, text: string): Promise<void> {
  const res = await fetch(`${s.url}/agents/demo/inbox`, { method: 'POST', headers: { authorization: `Bearer ${s.token}` }, body: text });
  expect(res.status).toBe(201);
}

it('a watch resumes across a server restart with nothing lost or repeated', async () => {
  const home = tempDir('agent9-restart-');
  server = await startServe(home, ['--demo']);
  const port = new URL(server.url).port;
  const client = new HttpFileService({ url: server.url, token: server.token, reconnectDelayMs: 100, reconnectForMs: 30_000 });
  // The cursor: the newest event now (from the first frame of a watch).
  const head = await fetch(`${server.url}/agents/demo?watch=1`, { headers: { authorization: `Bearer ${server.token}` } });
  const headReader = head.body!.getReader();
  const first = new TextDecoder().decode((await headReader.read()).value);
  await headReader.cancel();
  const from = Number(/id: (\d+)/.exec(first)![1]);
  const ac = new AbortController();
  const seen: FsEvent[] = [];
  const watching = (async () => {
    for await (const ev of client.watch('/agents/demo', from, { ...admin, signal: ac.signal })) seen.push(ev);
  })();

  for (let i = 0; i < 10; i++) await send(server, `before ${i}`);
  await sleep(300);
  expect(await server.stop('SIGTERM')).toBe(0);
  server = await startServe(home, ['--port', port]);
  for (let i = 0; i < 10; i++) await send(server, `after ${i}`);

  // What a replay from the same cursor gives now is what the resumed watch must have seen.
  const replay: FsEvent[] = [];
  const replayClient = new HttpFileService({ url: server.url, token: server.token });
  const deadline = Date.now() + 20_000;
  for (;;) {
    replay.length = 0;
    // A new controller per pass: an aborted one would end every later replay at once, empty.
    const rc = new AbortController();
    const timer = setTimeout(() => rc.abort(), 1500);
    try {
      for await (const ev of replayClient.watch('/agents/demo', from, { ...admin, signal: rc.signal })) replay.push(ev);
    } finally {
      clearTimeout(timer);
    }
    const inbox = seen.filter((e) => e.path.startsWith('/agents/demo/outbox/')).length;
    if ((inbox >= 20 && seen.length >= replay.length) || Date.now() > deadline) break;
    await sleep(200);
  }
  ac.abort();
  await watching;
  const ids = seen.map((e) => e.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids).toEqual(replay.map((e) => e.id));
  // Twenty messages, twenty answers in the outbox, on both sides of the restart.
  expect(seen.filter((e) => e.type === 'created' && e.path.startsWith('/agents/demo/outbox/')).length).toBe(20);
}, 90_000);
