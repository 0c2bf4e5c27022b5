/**
 * A watch over HTTP loses nothing and repeats nothing across 50 forced disconnects (the server cuts the
 * socket) and one server restart (the database reopened, the same port): the client resumes each time
 * with Last-Event-ID.
 */
import type { Socket } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { writeAll } from '../../src/fs/ops.js';
import type { FsEvent } from '../../src/fs/types.js';
import { HttpFileService } from '../../src/http/client.js';
import { admin, cleanup } from '../helpers.js';
import { startFixtureServer, type FixtureServer } from './helpers.js';
import { FIXTURE_SCOPE } from '../conformance/fixture.js';
import { isUnder } from '../../src/fs/paths.js';

let current: FixtureServer | undefined;
afterAll(async () => {
  await current?.close();
  cleanup();
});

interface Tracked {
  sockets: Set<Socket>;
  /** Connections accepted so far. */
  count: number;
}

function trackSockets(s: FixtureServer): Tracked {
  const t: Tracked = { sockets: new Set(), count: 0 };
  s.server.app.server.on('connection', (sock: Socket) => {
    t.count++;
    t.sockets.add(sock);
    sock.on('close', () => t.sockets.delete(sock));
  });
  return t;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(2);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('resumes with nothing lost or duplicated across 50 forced disconnects and a restart', async () => {
  const WRITES = 600;
  const DISCONNECTS = 50;
  current = await startFixtureServer({ retryMs: 20, heartbeatMs: 100 });
  const home = current.home;
  const port = Number(new URL(current.url).port);
  let sockets = trackSockets(current);
  const from = current.storage.eventStore.lastId();

  let reconnects = 0;
  const client = new HttpFileService({
    url: current.url,
    token: current.token,
    reconnectForMs: 20_000,
    // A connection cut at accept can leave fetch waiting forever: the heartbeat watchdog catches it.
    idleTimeoutMs: 400,
    onReconnect: () => reconnects++,
  });
  const ac = new AbortController();
  const received: FsEvent[] = [];
  const consuming = (async () => {
    for await (const ev of client.watch('/data', from, { ...admin, signal: ac.signal })) received.push(ev);
  })();

  let cuts = 0;
  for (let i = 0; i < WRITES; i++) {
    // Writes go in process, so that cutting sockets only ever hits the watch.
    await writeAll(current.ns, `/data/f${i % 37}`, `write ${i}`, admin);
    // Pauses let the watch catch up, so both replay and live delivery are cut mid-way.
    if (i % 4 === 0) await sleep(2);
    if (i % 11 === 5 && cuts < DISCONNECTS) {
      // Cut the watch's socket, then let it come back before the next cut.
      const seen = sockets.count;
      await until(() => sockets.sockets.size > 0);
      for (const sock of sockets.sockets) sock.destroy();
      cuts++;
      await until(() => sockets.count > seen);
    }
    if (i === WRITES / 2) {
      // The restart: everything closed, the same database and port opened again.
      await current.close();
      await sleep(100);
      current = await startFixtureServer({ home, port, retryMs: 20, heartbeatMs: 100 });
      sockets = trackSockets(current);
    }
  }
  expect(cuts).toBe(DISCONNECTS);

  // The events the store holds for /data after the cursor are exactly what the watch must have seen.
  const expected = current.storage.eventStore
    .after(from, 100_000)
    .filter((rec) => rec.scope === FIXTURE_SCOPE && isUnder(rec.path, '/data'))
    .map((rec) => rec.id);
  expect(expected.length).toBe(WRITES);
  const deadline = Date.now() + 15_000;
  while (received.length < expected.length && Date.now() < deadline) await sleep(20);
  ac.abort();
  await consuming;

  const ids = received.map((e) => e.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids).toEqual(expected);
  expect(reconnects).toBeGreaterThanOrEqual(DISCONNECTS);
  expect(received.every((e) => e.type === 'created' || e.type === 'modified')).toBe(true);
});
