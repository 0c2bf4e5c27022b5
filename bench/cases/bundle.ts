/**
 * Export and import of a large agent against the assembled server (`agentctl serve` in a child
 * process, over HTTP on loopback):
 * - the server's RSS while a 400 MB agent (memory files) is exported over HTTP and read by a client,
 *   against its RSS just before (idle); the goal is at most 100 MB above idle;
 * - the longest stall of enqueues to another agent (one POST after another) while a 400 MB bundle is
 *   imported over HTTP, against the longest over as many enqueues with no import.
 * Each figure is the median of `runs` interleaved rounds (the baseline measured right before its own
 * round); the spread (min..max) is in the note.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { BenchCase, Figure } from '../harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const AGENTCTL = join(here, '..', '..', 'src', 'cli', 'agentctl.js');

interface Served {
  url: string;
  token: string;
  proc: ChildProcess;
  rssMb(): Promise<number>;
  stop(): Promise<void>;
}

async function serve(home: string): Promise<Served> {
  const proc = spawn(process.execPath, [AGENTCTL, 'serve', '--port', '0', '--log-level', 'warn'], {
    env: { ...process.env, AGENT9_HOME: home },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const info = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string; pid: number };
      if (info.pid === proc.pid && err.includes('agent9 serving')) {
        const token = readFileSync(join(home, 'admin.token'), 'utf8').trim();
        return {
          url: info.url,
          token,
          proc,
          rssMb: async () => {
            const status = await readFile(`/proc/${proc.pid}/status`, 'utf8');
            return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
          },
          stop: () =>
            new Promise((resolve) => {
              proc.once('close', () => resolve());
              proc.kill('SIGTERM');
            }),
        };
      }
    } catch {
      /* not yet */
    }
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`agentctl serve did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function auth(s: Served): Record<string, string> {
  return { authorization: `Bearer ${s.token}` };
}

async function must(res: Promise<Response>, what: string): Promise<Response> {
  const r = await res;
  if (r.status >= 400) throw new Error(`${what}: HTTP ${r.status} ${await r.text()}`);
  return r;
}

/** Samples `sample` every 10 ms while `work` runs; the largest value. */
async function peakWhile(sample: () => Promise<number>, work: Promise<unknown>): Promise<number> {
  let peak = await sample();
  let done = false;
  void work.finally(() => (done = true)).catch(() => undefined);
  while (!done) {
    peak = Math.max(peak, await sample());
    await new Promise((r) => setTimeout(r, 10));
  }
  await work;
  return Math.max(peak, await sample());
}

/** Enqueues to `agent`, one after another, until `stop()`; the longest single request and the p99 (ms). */
async function longestEnqueue(s: Served, agent: string, stop: () => boolean, minCount = 50): Promise<{ max: number; p99: number; n: number }> {
  const times: number[] = [];
  for (let i = 0; !stop() || i < minCount; i++) {
    const t0 = performance.now();
    await must(fetch(`${s.url}/agents/${agent}/inbox`, { method: 'POST', headers: auth(s), body: JSON.stringify({ payload: { i } }) }), 'enqueue');
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { max: times[times.length - 1]!, p99: times[Math.floor(times.length * 0.99)]!, n: times.length };
}

/** POSTs the bundle (after an options line) to /agents/import from a child process, streamed. */
function upload(s: Served, file: string, options: object): Promise<void> {
  const script = `
    const { createReadStream } = require('node:fs');
    const { Readable } = require('node:stream');
    const [url, token, file, options] = process.argv.slice(1);
    const body = Readable.from((async function* () { yield Buffer.from(options + '\\n'); yield* createReadStream(file, { highWaterMark: 1 << 20 }); })());
    fetch(url + '/agents/import', { method: 'POST', headers: { authorization: 'Bearer ' + token }, body, duplex: 'half' })
      .then(async (r) => { if (r.status !== 200) { console.error(r.status, await r.text()); process.exit(1); } })
      .catch((e) => { console.error(e); process.exit(1); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, s.url, s.token, file, JSON.stringify(options)], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`import upload exited ${code}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(1)}..${Math.max(...xs).toFixed(1)}`;

export const bundleCase: BenchCase = {
  name: 'bundle',
  async run({ tmp, quick }) {
    const parts = quick ? 2 : 10;
    const totalMb = parts * 40;
    const runs = 3;
    const home = join(tmp, 'home');
    const s = await serve(home);
    try {
      await must(fetch(`${s.url}/agents/new`, { method: 'POST', headers: auth(s), body: JSON.stringify({ name: 'big', program: 'echo' }) }), 'create big');
      await must(
        fetch(`${s.url}/agents/new`, { method: 'POST', headers: auth(s), body: JSON.stringify({ name: 'other', program: 'echo', inbox: { max_depth: 1_000_000 }, schedule: { on_message: false } }) }),
        'create other',
      );
      const part = Buffer.alloc(40 * 1024 * 1024);
      for (let i = 0; i < parts; i++) {
        // Random-ish bytes (not all zeros): the bundle's base64 is what a real one would be.
        for (let j = 0; j < part.length; j += 4096) part.writeUInt32LE((i * 2654435761 + j) >>> 0, j);
        await must(fetch(`${s.url}/agents/big/memory/part${i}.bin`, { method: 'PUT', headers: auth(s), body: part }), 'fill memory');
      }
      const bundle = join(tmp, 'big.bundle');
      const rss: { idle: number; peak: number }[] = [];
      for (let r = 0; r < runs; r++) {
        await new Promise((res) => setTimeout(res, 500));
        const idle = await s.rssMb();
        const exported = (async () => {
          const res = await must(fetch(`${s.url}/agents/big/export`, { headers: auth(s) }), 'export');
          await pipeline(Readable.fromWeb(res.body! as NodeReadableStream<Uint8Array>), createWriteStream(bundle));
        })();
        const peak = await peakWhile(() => s.rssMb(), exported);
        rss.push({ idle, peak });
      }
      const bundleMb = statSync(bundle).size / 1024 / 1024;

      const stalls: { quiet: number; importing: number; p99: number; n: number }[] = [];
      for (let r = 0; r < runs; r++) {
        const quiet = await longestEnqueue(s, 'other', () => true, 200);
        let importing = true;
        // The upload runs in a process of its own: streaming 500 MB from this one would delay its own enqueues.
        const imported = upload(s, bundle, { id: `copy-${r}` }).finally(() => (importing = false));
        const during = await longestEnqueue(s, 'other', () => !importing);
        await imported;
        stalls.push({ quiet: quiet.max, importing: during.max, p99: during.p99, n: during.n });
        await must(fetch(`${s.url}/agents/copy-${r}`, { method: 'DELETE', headers: auth(s) }), 'delete copy');
      }

      const above = rss.map((x) => x.peak - x.idle);
      const idleMb = median(rss.map((x) => x.idle));
      const aboveMb = median(above);
      const stall = median(stalls.map((x) => x.importing));
      const quietStall = median(stalls.map((x) => x.quiet));
      const figures: Figure[] = [
        {
          name: `server RSS growth above idle during a ${totalMb} MB export over HTTP`,
          unit: 'MB',
          value: aboveMb,
          baselineName: "the same server's RSS just before (idle)",
          baseline: idleMb,
          higherIsBetter: false,
          // The goal: under 100 MB above idle, whatever the agent holds.
          bar: '< 100 MB',
          note: `bundle ${bundleMb.toFixed(0)} MB; RSS above idle, median of ${runs}: ${aboveMb.toFixed(1)} MB (spread ${spread(above)})`,
        },
        {
          name: `longest enqueue to another agent during a ${totalMb} MB import over HTTP`,
          unit: 'ms',
          value: stall,
          baselineName: 'longest of 200 enqueues with no import',
          baseline: quietStall,
          higherIsBetter: false,
          note:
            `no bar is set for this figure; longest enqueue during the import, median of ${runs}: ${stall.toFixed(1)} ms (spread ${spread(stalls.map((x) => x.importing))}); ` +
            `p99 ${spread(stalls.map((x) => x.p99))} ms over ${stalls.map((x) => x.n).join('/')} enqueues; quiet longest: spread ${spread(stalls.map((x) => x.quiet))}`,
        },
      ];
      return figures;
    } finally {
      await s.stop();
    }
  },
};
