/**
 * HTTP against bare fastify, each server in its own process and the load (autocannon) in a third, so
 * no two share an event loop. Ours is the shipped server: `agentctl serve` itself, requests carrying an
 * agent-scoped token, so each goes through the token check, the agent's view, its access levels and
 * its memory tree (bench/servers/children.ts).
 * - GET of a 100-byte file (`/memory/hundred`) vs a bare fastify route returning 100 bytes from memory.
 * - PUT of 100 bytes over that file vs a bare fastify route storing the body with one better-sqlite3
 *   upsert, on a database opened with Storage's own pragmas.
 *   Both: same connections and duration, runs interleaved (bare, ours / ours, bare / bare, ours), the
 *   median of 3 runs with their spread, and the server's CPU time per request beside it.
 * - One event fanned out to 2,000 SSE watchers: a PUT of the watched file through agent9 (committed to
 *   SQLite, published through the event log to each watch) vs a bare @fastify/sse broadcast of one
 *   message to 2,000 streams; delivery latency from sending the trigger to each watcher's receipt.
 * Where the time goes: `AGENT9_BENCH_CPU_PROF=DIR npm run bench -- http-files` runs every server under
 * node --cpu-prof and leaves their profiles in DIR.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { request, get, type IncomingMessage } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchCase, Figure } from '../harness.js';
import type { LoadResult, LoadRun } from '../load/autocannon-child.js';
import { HUNDRED, startChild, startShipped, type ServerChild } from '../servers/children.js';

const here = dirname(fileURLToPath(import.meta.url));

const auth = (token: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

/** The load generator's process, one run at a time. */
export class LoadChild {
  private readonly proc: ChildProcess = fork(join(here, '..', 'load', 'autocannon-child.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

  run(run: LoadRun): Promise<LoadResult> {
    return new Promise((resolve, reject) => {
      this.proc.once('message', (m: LoadResult & { error?: string }) => (m.error ? reject(new Error(m.error)) : resolve(m)));
      this.proc.send(run);
    });
  }

  close(): void {
    this.proc.disconnect();
  }
}

export interface Measured {
  rps: number;
  /** Server CPU time per request, microseconds. */
  cpuPerRequest: number;
}

export async function measure(load: LoadChild, server: ServerChild, run: Omit<LoadRun, 'url' | 'headers'>, path: string, headers: Record<string, string> = {}): Promise<Measured> {
  const cpu0 = await server.cpuMicros();
  const r = await load.run({ ...run, url: server.url + path, headers: { ...auth(server.token), ...headers } });
  const cpu1 = await server.cpuMicros();
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${run.method} ${server.url}${path}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
  return { rps: r.rps, cpuPerRequest: (cpu1 - cpu0) / Math.max(1, r.requests) };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const spreadOf = (xs: number[]): string => `${Math.round(Math.min(...xs))}-${Math.round(Math.max(...xs))}`;

/**
 * Ours beside the baseline: a warm-up of each, then `rounds` rounds, the order flipping each round so
 * that drift on the shared machine weighs on both alike; medians, with each side's spread.
 */
async function sideBySide(
  quick: boolean,
  what: { name: string; baselineName: string; bar: string; method: 'GET' | 'PUT'; body?: string; missedBecause: string },
): Promise<Figure> {
  const connections = 100;
  const duration = quick ? 3 : 8;
  const rounds = 3;
  const load = new LoadChild();
  const ours = await startShipped();
  const bare = await startChild('bare-fastify.js');
  const body = what.body !== undefined ? Buffer.from(what.body).toString('base64') : undefined;
  const run = { method: what.method, connections, duration, ...(body !== undefined ? { body } : {}) };
  try {
    await measure(load, bare, { ...run, duration: 2 }, bare.hundredPath);
    await measure(load, ours, { ...run, duration: 2 }, ours.hundredPath);
    const o: Measured[] = [];
    const b: Measured[] = [];
    for (let i = 0; i < rounds; i++) {
      if (i % 2 === 0) {
        b.push(await measure(load, bare, run, bare.hundredPath));
        o.push(await measure(load, ours, run, ours.hundredPath));
      } else {
        o.push(await measure(load, ours, run, ours.hundredPath));
        b.push(await measure(load, bare, run, bare.hundredPath));
      }
    }
    const oRps = o.map((m) => m.rps);
    const bRps = b.map((m) => m.rps);
    const oCpu = median(o.map((m) => m.cpuPerRequest));
    const bCpu = median(b.map((m) => m.cpuPerRequest));
    return {
      name: `${what.name}, ${connections} connections (autocannon)`,
      unit: 'req/s',
      value: median(oRps),
      baselineName: what.baselineName,
      baseline: median(bRps),
      higherIsBetter: true,
      bar: what.bar,
      spread: { ours: spreadOf(oRps), baseline: spreadOf(bRps) },
      missedBecause: `${what.missedBecause}; server CPU per request ${(oCpu / bCpu).toFixed(2)}x the baseline's`,
      note:
        `shipped server (agentctl serve, agent-scoped token, /memory of agent bench); median of ${rounds} interleaved ${duration} s runs; ` +
        `runs ours ${oRps.map(Math.round).join(', ')}, bare ${bRps.map(Math.round).join(', ')} req/s; ` +
        `server CPU per request ours ${oCpu.toFixed(0)} us, bare ${bCpu.toFixed(0)} us (${(oCpu / bCpu).toFixed(2)}x)`,
    };
  } finally {
    load.close();
    await ours.stop();
    await bare.stop();
  }
}

const smallGet = (quick: boolean) =>
  sideBySide(quick, {
    name: 'GET 100-byte file',
    baselineName: 'bare fastify route, same 100 bytes from memory',
    bar: '>= 0.6x',
    method: 'GET',
    missedBecause: "each GET also checks the token and walks the views (the token's root, /agents, the agent's namespace and its /memory mount) to the data file",
  });

const smallPut = (quick: boolean) =>
  sideBySide(quick, {
    name: 'PUT 100 bytes over a file',
    baselineName: 'bare fastify route, one better-sqlite3 upsert (same pragmas)',
    bar: '>= 0.5x',
    method: 'PUT',
    body: HUNDRED,
    missedBecause:
      "each PUT also checks the token, walks the views to the agent's memory tree, and commits a change event (the log watches resume from, with its retention pruning) beside the file row; " +
      'concurrent PUTs share commits (group commit), the baseline commits each upsert alone',
  });

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
    const ours = await startShipped();
    return fanOut(
      ours,
      `${ours.url}${ours.watchedPath}?watch=1`,
      ': watching',
      (r) => trigger(`${ours.url}${ours.watchedPath}`, 'PUT', ours.token, String(r)),
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
      note: `shipped server (agentctl serve, agent-scoped token); servers run bare, ours, ours, bare; each figure is the mean of two medians over ${rounds} rounds after 3 warm-up rounds; ours is a PUT committed to SQLite then published through the event log`,
    },
    { name: `${name}: p50 delivery`, unit: 'ms', value: oursResult.p50, baselineName: 'bare @fastify/sse broadcast', baseline: bareResult.p50, higherIsBetter: false },
    { name: `server RSS with ${watchers} watchers`, unit: 'MB', value: oursResult.rssMb, baselineName: 'bare @fastify/sse server', baseline: bareResult.rssMb, higherIsBetter: false },
  ];
}

export const httpCase: BenchCase = {
  name: 'http-files',
  async run({ quick }) {
    return [await smallGet(quick), await smallPut(quick)];
  },
};

export const sseCase: BenchCase = {
  name: 'http-sse',
  run: ({ quick }) => sseFanOut(quick),
};
