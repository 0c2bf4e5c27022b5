/**
 * HTTP against bare fastify, each server in its own child process (so the load generator and the
 * watchers' client never share an event loop with the server measured), alternating runs:
 * - GET of a 100-byte data file through agent9 (bearer auth, the namespace, SQLite, ETag, content type)
 *   vs a bare fastify route returning the same 100 bytes; autocannon, same connections and duration.
 * - One event fanned out to 2,000 SSE watchers: a PUT of the watched file through agent9 (committed to
 *   SQLite, published through the event log to each watch) vs a bare @fastify/sse broadcast of one
 *   message to 2,000 streams; delivery latency from sending the trigger to each watcher's receipt.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { request, get, type IncomingMessage } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { BenchCase, Figure } from '../harness.js';

const here = dirname(fileURLToPath(import.meta.url));

interface ServerChild {
  url: string;
  token: string;
  rssMb(): Promise<number>;
  stop(): Promise<void>;
}

function startChild(script: string): Promise<ServerChild> {
  return new Promise((resolve, reject) => {
    const proc: ChildProcess = fork(join(here, '..', 'servers', script), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    proc.once('message', (msg: { url: string; token: string }) => {
      resolve({
        url: msg.url,
        token: msg.token,
        rssMb: () =>
          new Promise((res) => {
            proc.once('message', (m: { rss: number }) => res(m.rss / 1024 / 1024));
            proc.send({ cmd: 'rss' });
          }),
        stop: () =>
          new Promise((res) => {
            proc.removeAllListeners('exit');
            proc.once('exit', () => res());
            proc.kill('SIGTERM');
          }),
      });
    });
  });
}

const auth = (token: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

async function requestsPerSecond(url: string, token: string, connections: number, duration: number): Promise<number> {
  const r = await autocannon({ url, connections, duration, headers: auth(token) });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
  return r.requests.average;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function smallGet(quick: boolean): Promise<Figure[]> {
  const connections = 100;
  const duration = quick ? 3 : 8;
  const ours = await startChild('agent9-http.js');
  const bare = await startChild('bare-fastify.js');
  try {
    // Warm both up, then alternate so that drift on the shared machine hits both alike.
    await requestsPerSecond(`${ours.url}/data/hundred`, ours.token, connections, 1);
    await requestsPerSecond(`${bare.url}/hundred`, '', connections, 1);
    const oursRps: number[] = [];
    const bareRps: number[] = [];
    for (let i = 0; i < 2; i++) {
      bareRps.push(await requestsPerSecond(`${bare.url}/hundred`, '', connections, duration));
      oursRps.push(await requestsPerSecond(`${ours.url}/data/hundred`, ours.token, connections, duration));
    }
    return [
      {
        name: `GET 100-byte file, ${connections} connections (autocannon)`,
        unit: 'req/s',
        value: mean(oursRps),
        baselineName: 'bare fastify route, same 100 bytes',
        baseline: mean(bareRps),
        higherIsBetter: true,
        bar: '>= 0.6x',
        note: `runs ours ${oursRps.map((x) => Math.round(x)).join(', ')}; bare ${bareRps.map((x) => Math.round(x)).join(', ')} req/s`,
      },
    ];
  } finally {
    await ours.stop();
    await bare.stop();
  }
}

/** One watcher: a raw SSE connection that timestamps the first frame of the expected event. */
class Watcher {
  private buffer = '';
  private waiting: { marker: string; resolve: (t: number) => void } | undefined;
  res: IncomingMessage | undefined;

  static open(url: string, token: string, ready: string): Promise<Watcher> {
    const w = new Watcher();
    return new Promise((resolve, reject) => {
      const req = get(url, { agent: false, headers: { accept: 'text/event-stream', ...auth(token) } }, (res) => {
        w.res = res;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => w.data(chunk));
        w.expect(ready).then(() => resolve(w), reject);
      });
      req.on('error', reject);
    });
  }

  private data(chunk: string): void {
    this.buffer += chunk;
    if (this.waiting && this.buffer.includes(this.waiting.marker)) {
      const t = performance.now();
      const { resolve } = this.waiting;
      this.waiting = undefined;
      this.buffer = '';
      resolve(t);
    } else if (!this.waiting && this.buffer.length > 1 << 16) {
      this.buffer = '';
    }
  }

  expect(marker: string): Promise<number> {
    return new Promise((resolve) => {
      if (this.buffer.includes(marker)) {
        this.buffer = '';
        resolve(performance.now());
        return;
      }
      this.waiting = { marker, resolve };
    });
  }

  close(): void {
    this.res?.destroy();
  }
}

async function openMany(n: number, url: string, token: string, ready: string): Promise<Watcher[]> {
  const out: Watcher[] = [];
  for (let i = 0; i < n; i += 200) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => Watcher.open(url, token, ready)))));
  }
  return out;
}

function trigger(url: string, method: string, token: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...auth(token), 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode! < 300 ? resolve() : reject(new Error(`trigger: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface FanOut {
  p50: number;
  p99: number;
  rssMb: number;
}

async function fanOut(
  server: ServerChild,
  watchUrl: string,
  ready: string,
  fire: (round: number) => Promise<void>,
  watchers: number,
  rounds: number,
): Promise<FanOut> {
  const clients = await openMany(watchers, watchUrl, server.token, ready);
  try {
    const p50s: number[] = [];
    const p99s: number[] = [];
    const warmUp = 3;
    for (let r = 0; r < warmUp + rounds; r++) {
      const arrivals = clients.map((w) => w.expect('event: modified'));
      const t0 = performance.now();
      await fire(r);
      const times = (await Promise.all(arrivals)).map((t) => t - t0).sort((a, b) => a - b);
      if (r < warmUp) continue; // both servers' JIT warms up on the first rounds
      p50s.push(percentile(times, 50));
      p99s.push(percentile(times, 99));
      await new Promise((res) => setTimeout(res, 100));
    }
    return { p50: median(p50s), p99: median(p99s), rssMb: await server.rssMb() };
  } finally {
    for (const w of clients) w.close();
  }
}

async function sseFanOut(quick: boolean): Promise<Figure[]> {
  const watchers = 2000;
  const rounds = quick ? 3 : 7;
  const runBare = async () => {
    const bare = await startChild('bare-fastify.js');
    return fanOut(bare, `${bare.url}/events`, ': open', () => trigger(`${bare.url}/broadcast`, 'POST', '', ''), watchers, rounds).finally(() => bare.stop());
  };
  const runOurs = async () => {
    const ours = await startChild('agent9-http.js');
    return fanOut(
      ours,
      `${ours.url}/data/watched?watch=1`,
      ': watching',
      (r) => trigger(`${ours.url}/data/watched`, 'PUT', ours.token, String(r)),
      watchers,
      rounds,
    ).finally(() => ours.stop());
  };
  // A-B-B-A, so a drift in the machine's load weighs on both sides alike.
  const bare1 = await runBare();
  const ours1 = await runOurs();
  const ours2 = await runOurs();
  const bare2 = await runBare();
  const mean = (a: FanOut, b: FanOut): FanOut => ({ p50: (a.p50 + b.p50) / 2, p99: (a.p99 + b.p99) / 2, rssMb: Math.max(a.rssMb, b.rssMb) });
  const bareResult = mean(bare1, bare2);
  const oursResult = mean(ours1, ours2);
  const name = `one event to ${watchers} SSE watchers`;
  return [
    {
      name: `${name}: p99 delivery`,
      unit: 'ms',
      value: oursResult.p99,
      baselineName: 'bare @fastify/sse broadcast',
      baseline: bareResult.p99,
      higherIsBetter: false,
      bar: '<= 1.5x',
      note: `servers run bare, ours, ours, bare; each figure is the mean of two medians over ${rounds} rounds after 3 warm-up rounds; ours is a PUT committed to SQLite then published through the event log`,
    },
    { name: `${name}: p50 delivery`, unit: 'ms', value: oursResult.p50, baselineName: 'bare @fastify/sse broadcast', baseline: bareResult.p50, higherIsBetter: false },
    { name: `server RSS with ${watchers} watchers`, unit: 'MB', value: oursResult.rssMb, baselineName: 'bare @fastify/sse server', baseline: bareResult.rssMb, higherIsBetter: false },
  ];
}

export const httpCase: BenchCase = {
  name: 'http',
  async run({ quick }) {
    return [...(await smallGet(quick)), ...(await sseFanOut(quick))];
  },
};
