/**
 * /compute with local-echo: the latency of submit -> result through the files (write `new`, read the
 * stream to its end, read `result`), in process and over HTTP (a server in a child process: POST new,
 * GET stream, GET result), beside a direct call of the same provider in the same run (and, over HTTP,
 * beside three round trips to a bare fastify route); and the rate of 1,000 jobs beside the same direct
 * calls and beside raw better-sqlite3 doing the minimum durable work of a job (insert it with its
 * event, then record its result with its events).
 */
import Database from 'better-sqlite3';
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Storage } from '../../src/runtime/storage/index.js';
import { Namespace } from '../../src/fs/namespace.js';
import { callFile, readAll } from '../../src/fs/ops.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { ComputeEngine, createComputeService, LocalEchoProvider, ProviderRegistry } from '../../src/services/compute/index.js';
import type { ComputeRequest } from '../../src/services/compute/types.js';
import type { Cx } from '../../src/fs/types.js';
import { median, timeAsync, timeIt, type BenchCase, type Figure } from '../harness.js';
import { serverMigrations } from '../../src/server/capabilities.js';

const here = dirname(fileURLToPath(import.meta.url));
const cx: Cx = { principal: { id: 'bench', admin: false, agentId: 'bench' } };
const PROMPT = 'the quick brown fox jumps over the lazy dog';
const request = JSON.stringify({ model: 'echo', prompt: PROMPT });

function directRequest(): ComputeRequest {
  return { model: 'echo', kind: 'complete', messages: [{ role: 'user', content: PROMPT }], stream: true, timeout_ms: 120_000 };
}

async function directCall(provider: LocalEchoProvider): Promise<void> {
  const signal = new AbortController().signal;
  let text = '';
  const out = await provider.run(directRequest(), { signal, chunk: (t) => (text += t) });
  if (out.output.text !== PROMPT || text !== PROMPT) throw new Error('local-echo answered something else');
}

function setup(dir: string) {
  const storage = Storage.open(dir, { migrations: serverMigrations() });
  const engine = new ComputeEngine({ storage, providers: new ProviderRegistry([new LocalEchoProvider()]) });
  const ns = new Namespace({ scope: 'bench', events: storage.events });
  mountWithAccess(ns, '/compute', createComputeService({ engine, agentId: 'bench' }), ReadWrite, { adminWrite: ['/policy'] });
  return { storage, engine, ns };
}

/** One job the way a user runs it: submit, follow the stream to its end, read the result. */
async function oneJob(ns: Namespace): Promise<void> {
  const answer = JSON.parse(new TextDecoder().decode(await callFile(ns, '/compute/new', request, cx))) as { job_id: string };
  await readAll(ns, `/compute/jobs/${answer.job_id}/stream`, cx);
  const result = JSON.parse(new TextDecoder().decode(await readAll(ns, `/compute/jobs/${answer.job_id}/result`, cx))) as {
    output: { text: string };
  };
  if (result.output.text !== PROMPT) throw new Error('wrong result');
}

async function latency(tmp: string, runs: number): Promise<Figure[]> {
  const { storage, engine, ns } = setup(join(tmp, 'latency'));
  const provider = new LocalEchoProvider();
  for (let i = 0; i < 20; i++) {
    await oneJob(ns);
    await directCall(provider);
  }
  const ours = await median(runs, async () => (await timeAsync(() => oneJob(ns))).ms);
  const direct = await median(runs, async () => (await timeAsync(() => directCall(provider))).ms);
  await engine.close();
  storage.close();
  return [
    {
      name: 'submit -> result latency, local-echo, in-process (median)',
      unit: 'ms',
      value: ours,
      baselineName: 'direct LocalEchoProvider.run()',
      baseline: direct,
      higherIsBetter: false,
      note: 'the overhead ratio: files, budget reservation, journal, durable job record and streamed events around a provider that costs nothing',
    },
  ];
}

async function throughput(tmp: string, n: number): Promise<Figure[]> {
  const { storage, engine, ns } = setup(join(tmp, 'throughput'));
  // Warm up (JIT, statement cache) on as many jobs as will be measured, then measure a fresh agent's.
  await Promise.all(Array.from({ length: n }, () => callFile(ns, '/compute/new', request, cx)));
  await engine.drain();
  engine.jobs.prune(Date.now() + 1);
  const ours = await timeAsync(async () => {
    const ids = await Promise.all(
      Array.from({ length: n }, async () => JSON.parse(new TextDecoder().decode(await callFile(ns, '/compute/new', request, cx))) as { job_id: string }),
    );
    await engine.drain();
    if (ids.length !== n || engine.jobs.counts('bench').complete !== n) throw new Error('not every job completed');
  });
  await engine.close();
  storage.close();

  const provider = new LocalEchoProvider();
  await Promise.all(Array.from({ length: n }, () => directCall(provider)));
  const direct = await timeAsync(async () => {
    await Promise.all(Array.from({ length: n }, () => directCall(provider)));
  });

  const db = new Database(join(tmp, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE jobs (id TEXT PRIMARY KEY, request TEXT, status TEXT, result TEXT);
    CREATE TABLE events (id INTEGER PRIMARY KEY, scope TEXT, path TEXT, type TEXT, time INTEGER, data TEXT);`);
  const insJob = db.prepare("INSERT INTO jobs (id, request, status) VALUES (?, ?, 'pending')");
  const finish = db.prepare("UPDATE jobs SET status = 'complete', result = ? WHERE id = ?");
  const ev = db.prepare("INSERT INTO events (scope, path, type, time, data) VALUES ('bench', ?, ?, ?, ?)");
  const submitTx = db.transaction((id: string) => {
    insJob.run(id, request);
    ev.run(`/compute/jobs/${id}`, 'created', Date.now(), null);
  });
  const completeTx = db.transaction((id: string) => {
    finish.run(JSON.stringify({ output: { text: PROMPT } }), id);
    ev.run(`/compute/jobs/${id}/stream`, 'data', Date.now(), JSON.stringify({ delta: { text: PROMPT } }));
    ev.run(`/compute/jobs/${id}/stream`, 'end', Date.now(), null);
    ev.run(`/compute/jobs/${id}/status`, 'modified', Date.now(), null);
  });
  const raw = timeIt(() => {
    for (let i = 0; i < n; i++) submitTx(`j${i}`);
    for (let i = 0; i < n; i++) completeTx(`j${i}`);
  });
  db.close();

  const rate = (ms: number) => (n / ms) * 1000;
  const name = `${n.toLocaleString('en-US')} local-echo jobs submitted at once, to completion`;
  return [
    { name, unit: 'jobs/s', value: rate(ours.ms), baselineName: 'raw better-sqlite3: job row + events, 2 tx per job', baseline: rate(raw.ms), higherIsBetter: true },
    { name, unit: 'jobs/s', value: rate(ours.ms), baselineName: 'direct LocalEchoProvider.run() calls', baseline: rate(direct.ms), higherIsBetter: true },
  ];
}

interface Child {
  url: string;
  token: string;
  stop(): Promise<void>;
}

function startChild(script: string): Promise<Child> {
  return new Promise((resolve, reject) => {
    const proc = fork(join(here, '..', 'servers', script), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    proc.once('message', (msg: { url: string; token?: string }) =>
      resolve({
        url: msg.url,
        token: msg.token ?? '',
        stop: () =>
          new Promise((res) => {
            proc.removeAllListeners('exit');
            proc.once('exit', () => res());
            proc.kill('SIGTERM');
          }),
      }),
    );
  });
}

/** One job over HTTP, the way curl would run it: POST new, GET the stream to its end, GET the result. */
async function oneHttpJob(server: Child): Promise<void> {
  const headers = { authorization: `Bearer ${server.token}` };
  const base = `${server.url}/agents/bench/compute`;
  const submitted = await fetch(`${base}/new`, { method: 'POST', headers, body: request });
  const { job_id } = (await submitted.json()) as { job_id: string };
  await (await fetch(`${base}/jobs/${job_id}/stream`, { headers })).text();
  const result = (await (await fetch(`${base}/jobs/${job_id}/result`, { headers })).json()) as { output: { text: string } };
  if (result.output.text !== PROMPT) throw new Error('wrong result over HTTP');
}

async function threeBareRoundTrips(bare: Child): Promise<void> {
  for (let i = 0; i < 3; i++) await (await fetch(`${bare.url}/hundred`)).text();
}

async function httpLatency(runs: number): Promise<Figure[]> {
  const ours = await startChild('agent9-compute.js');
  const bare = await startChild('bare-fastify.js');
  const provider = new LocalEchoProvider();
  try {
    for (let i = 0; i < 30; i++) {
      await oneHttpJob(ours);
      await threeBareRoundTrips(bare);
    }
    const http = await median(runs, async () => (await timeAsync(() => oneHttpJob(ours))).ms);
    const bareMs = await median(runs, async () => (await timeAsync(() => threeBareRoundTrips(bare))).ms);
    const direct = await median(runs, async () => (await timeAsync(() => directCall(provider))).ms);
    const name = 'submit -> result latency, local-echo, over HTTP (median)';
    return [
      { name, unit: 'ms', value: http, baselineName: 'direct LocalEchoProvider.run()', baseline: direct, higherIsBetter: false },
      {
        name,
        unit: 'ms',
        value: http,
        baselineName: '3 GETs of 100 B from bare fastify',
        baseline: bareMs,
        higherIsBetter: false,
        note: 'the same three HTTP round trips (POST new, GET stream, GET result) with nothing behind them',
      },
    ];
  } finally {
    await ours.stop();
    await bare.stop();
  }
}

export const computeCase: BenchCase = {
  name: 'compute',
  async run({ tmp, quick }) {
    return [...(await latency(tmp, quick ? 50 : 200)), ...(await httpLatency(quick ? 50 : 200)), ...(await throughput(tmp, 1000))];
  },
};
