/**
 * The runtime against raw better-sqlite3 at the same WAL + synchronous setting:
 * - durable enqueue through the namespace (`echo ... > /agents/<id>/inbox`) vs one raw insert per write;
 * - 1,000 agents x 10 ticks of the echo program vs the same number of raw transactions doing the rows a
 *   tick writes (ack the envelope, save state, append the outbox envelope, update the agent row);
 * - 10,000 registered idle agents: RSS of a server process that holds them, measured in a child process
 *   beside the same process with none.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent9 } from '../../src/server/agent9.js';
import { writeAll, callFile } from '../../src/fs/ops.js';
import type { Cx } from '../../src/fs/types.js';
import { timeAsync, timeIt, type BenchCase, type Figure } from '../harness.js';

const cx: Cx = { principal: { id: 'bench', admin: true } };
const SYNC = 'NORMAL';

function rawDb(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${SYNC}`);
  return db;
}

function envelope(i: number): string {
  return JSON.stringify({ id: `e-${i}`, payload: { text: `message number ${i}` } });
}

/** Median of `runs` timings of `fn` (ms). */
async function medianMs(runs: number, fn: () => Promise<number> | number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await fn());
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/**
 * Enqueue rate: `runs` rounds, each timing `n` writes through the namespace and then `n` raw inserts,
 * so both see the same machine load; the medians are compared.
 */
async function enqueueRate(tmp: string, n: number, writers: number, runs: number): Promise<Figure[]> {
  const a9 = await Agent9.open({ home: join(tmp, `enqueue-${writers}`), scheduler: false, storage: { synchronous: SYNC } });
  await callFile(a9.namespace, '/agents/new', JSON.stringify({ name: 'sink', program: 'echo', inbox: { max_depth: 1_000_000 } }), cx);
  const db = rawDb(join(tmp, `raw-enqueue-${writers}.db`));
  db.exec('CREATE TABLE inbox (seq INTEGER PRIMARY KEY, agent_id TEXT NOT NULL, body TEXT NOT NULL)');
  const ins = db.prepare("INSERT INTO inbox (agent_id, body) VALUES ('sink', ?)");
  // The same rows as one enqueue, in one raw transaction: what the design costs before any code of ours.
  const eq = rawDb(join(tmp, `raw-equivalent-${writers}.db`));
  eq.exec(`CREATE TABLE agents (id TEXT PRIMARY KEY, queue_depth INTEGER, inbox_seq INTEGER, inbox_version INTEGER, enqueued INTEGER, inbox_mtime INTEGER);
    INSERT INTO agents VALUES ('sink', 0, 0, 0, 0, 0);
    CREATE TABLE inbox (agent_id TEXT NOT NULL, seq INTEGER NOT NULL, env_id TEXT NOT NULL, sender TEXT NOT NULL, created_at INTEGER NOT NULL,
      body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, PRIMARY KEY (agent_id, seq)) WITHOUT ROWID;
    CREATE UNIQUE INDEX inbox_env ON inbox (agent_id, env_id);
    CREATE TABLE events (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, path TEXT NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, version INTEGER, data TEXT);
    CREATE INDEX events_scope ON events (scope, id);`);
  const eqAgent = eq.prepare(`UPDATE agents SET queue_depth = queue_depth + 1, inbox_seq = inbox_seq + 1, inbox_version = inbox_version + 1,
    enqueued = enqueued + 1, inbox_mtime = ? WHERE id = 'sink' RETURNING inbox_seq, inbox_version`);
  const eqInbox = eq.prepare("INSERT INTO inbox (agent_id, seq, env_id, sender, created_at, body) VALUES ('sink', ?, ?, 'bench', ?, ?)");
  const eqEvent = eq.prepare("INSERT INTO events (scope, path, type, time, version, data) VALUES ('sink', '/inbox', 'modified', ?, ?, ?)");
  const eqTx = eq.transaction((id: string, body: string) => {
    const r = eqAgent.get(Date.now()) as { inbox_seq: number; inbox_version: number };
    eqInbox.run(r.inbox_seq, id, Date.now(), body);
    eqEvent.run(Date.now(), r.inbox_version, JSON.stringify({ envelope_id: id }));
  });

  let round = 0;
  const bodies = () => Array.from({ length: n }, (_, i) => envelope(round * n + i));
  // Warm up (statement caches, JIT).
  for (let i = 0; i < 300; i++) {
    await writeAll(a9.namespace, '/agents/sink/inbox', JSON.stringify({ payload: i }), cx);
    ins.run('warm');
    eqTx(`warm-${i}`, 'warm');
  }
  const before = { ...a9.runtime.queues.commitStats };
  let oursMs = 0;
  let rawMs = 0;
  let eqMs = 0;
  const oursRuns: number[] = [];
  const rawRuns: number[] = [];
  const eqRuns: number[] = [];
  for (; round < runs; round++) {
    const batch = bodies();
    const t = await timeAsync(() =>
      Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          for (let i = w; i < n; i += writers) await writeAll(a9.namespace, '/agents/sink/inbox', batch[i]!, cx);
        }),
      ),
    );
    oursRuns.push(t.ms);
    rawRuns.push(timeIt(() => batch.forEach((b) => ins.run(b))).ms);
    eqRuns.push(timeIt(() => batch.forEach((b, i) => eqTx(`r${round}-${i}`, b))).ms);
  }
  oursMs = await medianMs(runs, () => oursRuns.shift()!);
  rawMs = await medianMs(runs, () => rawRuns.shift()!);
  eqMs = await medianMs(runs, () => eqRuns.shift()!);
  const txs = a9.runtime.queues.commitStats.transactions - before.transactions;
  const queued = a9.runtime.store.getAgent('sink')!.queue_depth;
  await a9.close();
  db.close();
  eq.close();
  if (queued !== n * runs + 300) throw new Error(`queued ${queued}, expected ${n * runs + 300}`);

  const who = writers === 1 ? 'one writer' : `${writers} concurrent writers`;
  const name = `durable enqueue through the namespace, ${who}, ${n} envelopes x ${runs} (median; synchronous=${SYNC})`;
  const rate = (ms: number) => (n / ms) * 1000;
  const figures: Figure[] = [
    {
      name,
      unit: 'env/s',
      value: rate(oursMs),
      baselineName: 'raw better-sqlite3: one INSERT (one transaction) per envelope',
      baseline: rate(rawMs),
      higherIsBetter: true,
      bar: '>= 0.5x',
      ...(writers === 1
        ? {
            missedBecause:
              'one writer waits for each envelope to commit before it writes the next, so no two writes can share a commit; ' +
              'each commit writes the envelope, its id index, the agent row and a change event, the baseline one row (see the next line for the same rows raw)',
          }
        : {}),
      note: `each write returns only after its envelope committed; ${txs} transactions for ${n * runs} writes (${((n * runs) / Math.max(1, txs)).toFixed(1)} per commit)`,
    },
  ];
  if (writers === 1) {
    figures.push({
      name,
      unit: 'env/s',
      value: rate(oursMs),
      baselineName: 'raw better-sqlite3: the same rows per envelope in one transaction (envelope + unique id index, agent row, change event + scope index)',
      baseline: rate(eqMs),
      higherIsBetter: true,
    });
  }
  return figures;
}

async function tickThroughput(tmp: string, agents: number, rounds: number): Promise<Figure[]> {
  const a9 = await Agent9.open({ home: join(tmp, 'ticks'), scheduler: false, storage: { synchronous: SYNC } });
  const ids = Array.from({ length: agents }, (_, i) => `a${i}`);
  for (const id of ids) a9.runtime.agents.create({ name: id, program: 'echo' }, '/agents/new');
  // The first tick initialises each agent; not measured.
  await Promise.all(ids.map((id) => a9.runtime.tick(id, { type: 'init' })));
  let ticksMs = 0;
  let delivered = 0;
  const commitsBefore = { ...a9.runtime.engine.commits.stats };
  for (let r = 0; r < rounds; r++) {
    for (const id of ids) await writeAll(a9.namespace, `/agents/${id}/inbox`, `round ${r}`, cx);
    const t = await timeAsync(() => Promise.all(ids.map((id) => a9.runtime.tick(id, { type: 'message' }))));
    ticksMs += t.ms;
    delivered += t.result.reduce((k, rep) => k + rep.delivered.length, 0);
  }
  const commits = a9.runtime.engine.commits.stats.transactions - commitsBefore.transactions;
  await a9.close();
  if (delivered !== agents * rounds) throw new Error(`delivered ${delivered} of ${agents * rounds}`);

  const total = agents * rounds;
  const db = rawDb(join(tmp, 'raw-ticks.db'));
  db.exec(`CREATE TABLE agents (id TEXT PRIMARY KEY, tick_count INTEGER, last_tick_at INTEGER, queue_depth INTEGER);
    CREATE TABLE state (agent_id TEXT PRIMARY KEY, data TEXT);
    CREATE TABLE inbox (agent_id TEXT, seq INTEGER, body TEXT, PRIMARY KEY (agent_id, seq)) WITHOUT ROWID;
    CREATE TABLE outbox (agent_id TEXT, seq INTEGER, body TEXT, PRIMARY KEY (agent_id, seq)) WITHOUT ROWID;`);
  const insAgent = db.prepare('INSERT INTO agents VALUES (?, 0, 0, 0)');
  const insInbox = db.prepare('INSERT INTO inbox VALUES (?, ?, ?)');
  for (const id of ids) insAgent.run(id);
  for (const id of ids) for (let r = 0; r < rounds; r++) insInbox.run(id, r, envelope(r));
  const head = db.prepare('SELECT seq, body FROM inbox WHERE agent_id = ? ORDER BY seq LIMIT 1');
  const ack = db.prepare('DELETE FROM inbox WHERE agent_id = ? AND seq = ?');
  const save = db.prepare('INSERT INTO state VALUES (?, ?) ON CONFLICT (agent_id) DO UPDATE SET data = excluded.data');
  const out = db.prepare('INSERT INTO outbox VALUES (?, ?, ?)');
  const bump = db.prepare('UPDATE agents SET tick_count = tick_count + 1, last_tick_at = ?, queue_depth = queue_depth - 1 WHERE id = ?');
  const rawTick = db.transaction((id: string, r: number) => {
    const row = head.get(id) as { seq: number; body: string };
    ack.run(id, row.seq);
    save.run(id, JSON.stringify({ echoed: r + 1 }));
    out.run(id, r, row.body);
    bump.run(Date.now(), id);
  });
  const raw = timeIt(() => {
    for (let r = 0; r < rounds; r++) for (const id of ids) rawTick(id, r);
  });
  const minimal = db.prepare('UPDATE agents SET tick_count = tick_count + 1 WHERE id = ?');
  const minimalMs = timeIt(() => {
    for (let r = 0; r < rounds; r++) for (const id of ids) minimal.run(id);
  }).ms;
  db.close();

  const name = `${agents} agents x ${rounds} echo ticks (one message each)`;
  const rate = (ms: number) => (total / ms) * 1000;
  return [
    {
      name,
      unit: 'ticks/s',
      value: rate(ticksMs),
      baselineName: `${total} raw transactions with a tick's rows`,
      baseline: rate(raw.ms),
      higherIsBetter: true,
      note: `ours per tick: lock, read agent + inbox head + seen check + state, run echo, then commit state, seen cache, ack, outbox envelope, agent row and 5 trace/change events atomically; the ticks of an agent round run concurrently (as the scheduler runs them) and ${commits} group commits carried the ${total} ticks`,
    },
    {
      name,
      unit: 'ticks/s',
      value: rate(ticksMs),
      baselineName: `${total} raw one-statement transactions`,
      baseline: rate(minimalMs),
      higherIsBetter: true,
    },
  ];
}

/** Runs the idle-agents child and returns what it printed (JSON). */
function child(args: string[]): Promise<Record<string, number>> {
  const script = fileURLToPath(new URL('./runtime-idle-child.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`idle child ${args.join(' ')} exited ${code}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}

async function idleAgents(tmp: string, n: number): Promise<Figure[]> {
  const home = join(tmp, 'idle');
  const created = await child(['create', home, String(n)]);
  const empty = await child(['measure', join(tmp, 'idle-empty')]);
  const full = await child(['measure', home]);
  const perAgent = ((full['rss_mb']! - empty['rss_mb']!) * 1024) / n;
  return [
    {
      name: `${n} registered idle agents: server RSS`,
      unit: 'MB',
      value: full['rss_mb']!,
      baselineName: 'the same server process with 0 agents',
      baseline: empty['rss_mb']!,
      higherIsBetter: false,
      bar: '< 300 MB',
      note: `${perAgent.toFixed(2)} KiB per agent (RSS difference / ${n}); JS heap ${full['heap_mb']!.toFixed(1)} MB vs ${empty['heap_mb']!.toFixed(1)} MB; creating them took ${(created['ms']! / 1000).toFixed(1)} s (${created['rss_mb']!.toFixed(0)} MB RSS while creating)`,
    },
  ];
}

export const runtimeCase: BenchCase = {
  name: 'runtime',
  async run({ tmp, quick }) {
    return [
      ...(await enqueueRate(tmp, quick ? 1000 : 5000, 1, quick ? 3 : 5)),
      ...(await enqueueRate(tmp, quick ? 1000 : 5000, 16, quick ? 3 : 5)),
      ...(await tickThroughput(tmp, 1000, quick ? 3 : 10)),
      ...(await idleAgents(tmp, quick ? 2000 : 10_000)),
    ];
  },
};
