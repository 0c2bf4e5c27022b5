/**
 * Storage through the namespace against raw better-sqlite3 doing the equivalent inserts/selects (same
 * WAL + synchronous setting, same chunk size) and node:fs on tmpfs.
 */
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync, openSync, writeSync, readSync, closeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Storage } from '../../src/runtime/storage/index.js';
import { CHUNK_SIZE } from '../../src/runtime/storage/datafiles.js';
import { Namespace } from '../../src/fs/namespace.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { readAll, writeAll } from '../../src/fs/ops.js';
import type { Cx } from '../../src/fs/types.js';
import { timeAsync, timeIt, peakRssMb, type BenchCase, type Figure } from '../harness.js';

const cx: Cx = { principal: { id: 'bench', admin: true } };

function rawDb(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  return db;
}

/** Median of what `rounds` alternating runs of each contender gave (fresh files every run). */
async function alternate(rounds: number, contenders: Record<string, (round: number) => Promise<number> | number>): Promise<Record<string, number>> {
  const times: Record<string, number[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const [name, run] of Object.entries(contenders)) (times[name] ??= []).push(await run(r));
  }
  const out: Record<string, number> = {};
  for (const [name, ts] of Object.entries(times)) out[name] = ts.sort((a, b) => a - b)[Math.floor(ts.length / 2)]!;
  return out;
}

async function smallFiles(tmp: string, shm: string, n: number, rounds: number): Promise<Figure[]> {
  const payload = new TextEncoder().encode('x'.repeat(100));

  const ours = async (r: number) => {
    const storage = Storage.open(join(tmp, `ours-${r}`));
    const ns = new Namespace({ scope: 'bench', events: storage.events });
    mountWithAccess(ns, '/memory', storage.dataTree('bench:memory', { scope: 'bench', prefix: '/memory' }), ReadWrite);
    const t = await timeAsync(async () => {
      for (let i = 0; i < n; i++) await writeAll(ns, `/memory/f${i}`, payload, cx);
      for (let i = 0; i < n; i++) await readAll(ns, `/memory/f${i}`, cx);
    });
    storage.close();
    return t.ms;
  };

  const raw = (r: number) => {
    const db = rawDb(join(tmp, `raw-${r}.db`));
    db.exec('CREATE TABLE files (path TEXT PRIMARY KEY, data BLOB)');
    const ins = db.prepare('INSERT OR REPLACE INTO files (path, data) VALUES (?, ?)');
    const sel = db.prepare('SELECT data FROM files WHERE path = ?').pluck();
    const t = timeIt(() => {
      for (let i = 0; i < n; i++) ins.run(`/memory/f${i}`, payload);
      for (let i = 0; i < n; i++) sel.get(`/memory/f${i}`);
    });
    db.close();
    return t.ms;
  };

  // The equivalent durable work: each file row commits together with its change event (what makes it
  // watchable and resumable), as ours does; with `parent`, also the parent directory's mtime and version
  // (POSIX: creating an entry changes its directory), which ours writes too: the same rows as ours.
  const rawEvents = (r: number, parent: boolean) => {
    const db2 = rawDb(join(tmp, `raw-events-${parent}-${r}.db`));
    db2.exec(`CREATE TABLE files (path TEXT PRIMARY KEY, data BLOB, mtime INTEGER, version INTEGER);
      INSERT INTO files VALUES ('/memory', NULL, 0, 0);
      CREATE TABLE events (id INTEGER PRIMARY KEY, scope TEXT, path TEXT, type TEXT, time INTEGER);
      CREATE INDEX events_scope ON events (scope, id);`);
    const ins2 = db2.prepare('INSERT OR REPLACE INTO files (path, data, mtime, version) VALUES (?, ?, ?, 1)');
    const dir2 = db2.prepare("UPDATE files SET mtime = ?, version = version + 1 WHERE path = '/memory'");
    const ev2 = db2.prepare("INSERT INTO events (scope, path, type, time) VALUES ('bench', ?, 'created', ?)");
    const sel2 = db2.prepare('SELECT data FROM files WHERE path = ?').pluck();
    const put2 = db2.transaction((p: string) => {
      const now = Date.now();
      ins2.run(p, payload, now);
      if (parent) dir2.run(now);
      ev2.run(p, now);
    });
    const t = timeIt(() => {
      for (let i = 0; i < n; i++) put2(`/memory/f${i}`);
      for (let i = 0; i < n; i++) sel2.get(`/memory/f${i}`);
    });
    db2.close();
    return t.ms;
  };

  const tmpfs = (r: number) =>
    timeIt(() => {
      for (let i = 0; i < n; i++) writeFileSync(join(shm, `r${r}-f${i}`), payload);
      for (let i = 0; i < n; i++) readFileSync(join(shm, `r${r}-f${i}`));
    }).ms;

  const m = await alternate(rounds, {
    ours,
    sameRows: (r) => rawEvents(r, true),
    rawEvents: (r) => rawEvents(r, false),
    raw,
    tmpfs,
  });
  const name = `${n} small files write+read (median of ${rounds})`;
  return [
    {
      name,
      unit: 'ms',
      value: m['ours']!,
      baselineName: 'raw better-sqlite3, the rows ours writes: file row + parent dir mtime/version + change event, one tx per file',
      baseline: m['sameRows']!,
      higherIsBetter: false,
      bar: '<= 1.5x',
    },
    { name, unit: 'ms', value: m['ours']!, baselineName: 'raw better-sqlite3: file row + change event per tx', baseline: m['rawEvents']!, higherIsBetter: false },
    { name, unit: 'ms', value: m['ours']!, baselineName: 'raw better-sqlite3: one insert per file', baseline: m['raw']!, higherIsBetter: false },
    { name, unit: 'ms', value: m['ours']!, baselineName: 'node:fs on tmpfs', baseline: m['tmpfs']!, higherIsBetter: false },
  ];
}

async function bigFile(tmp: string, shm: string, mib: number, rounds: number): Promise<Figure[]> {
  const piece = new Uint8Array(1024 * 1024).map((_, i) => i & 0xff);
  const total = mib * 1024 * 1024;

  const ours = async (r: number) => {
    const storage = Storage.open(join(tmp, `ours-big-${r}`));
    const ns = new Namespace({ scope: 'bench', events: storage.events });
    mountWithAccess(ns, '/memory', storage.dataTree('bench:big', { scope: 'bench', prefix: '/memory' }), ReadWrite);
    const t = await timeAsync(async () => {
      const w = await ns.open('/memory/big', { write: true, create: true, truncate: true }, cx);
      for (let off = 0; off < total; off += piece.length) await w.write(piece, off);
      await w.close();
      const rd = await ns.open('/memory/big', { read: true }, cx);
      let got = 0;
      for (;;) {
        const b = await rd.read(piece.length, got);
        if (b.length === 0) break;
        got += b.length;
      }
      await rd.close();
      if (got !== total) throw new Error(`read ${got} of ${total}`);
    });
    storage.close();
    return t.ms;
  };

  const raw = (r: number) => {
    const db = rawDb(join(tmp, `raw-big-${r}.db`));
    db.exec('CREATE TABLE chunks (node INTEGER, idx INTEGER, data BLOB, PRIMARY KEY (node, idx))');
    const ins = db.prepare('INSERT OR REPLACE INTO chunks (node, idx, data) VALUES (1, ?, ?)');
    const sel = db.prepare('SELECT data FROM chunks WHERE node = 1 AND idx BETWEEN ? AND ? ORDER BY idx').pluck();
    const per = piece.length / CHUNK_SIZE;
    const writeMiB = db.transaction((base: number) => {
      for (let j = 0; j < per; j++) ins.run(base + j, piece.subarray(j * CHUNK_SIZE, (j + 1) * CHUNK_SIZE));
    });
    const t = timeIt(() => {
      for (let m = 0; m < mib; m++) writeMiB(m * per);
      let got = 0;
      for (let m = 0; m < mib; m++) {
        const parts = sel.all(m * per, m * per + per - 1) as Buffer[];
        got += Buffer.concat(parts).length;
      }
      if (got !== total) throw new Error(`raw read ${got}`);
    });
    db.close();
    return t.ms;
  };

  const tmpfs = (r: number) =>
    timeIt(() => {
      const file = join(shm, `big-${r}`);
      const fd = openSync(file, 'w');
      for (let off = 0; off < total; off += piece.length) writeSync(fd, piece, 0, piece.length, off);
      closeSync(fd);
      const rfd = openSync(file, 'r');
      const buf = Buffer.alloc(piece.length);
      let got = 0;
      for (;;) {
        const n = readSync(rfd, buf, 0, buf.length, got);
        if (n === 0) break;
        got += n;
      }
      closeSync(rfd);
      rmSync(file);
    }).ms;

  const m = await alternate(rounds, { ours, raw, tmpfs });
  const name = `${mib} MiB file write+read (1 MiB ops, ${CHUNK_SIZE / 1024} KiB chunks; median of ${rounds}, fresh database each)`;
  return [
    { name, unit: 'ms', value: m['ours']!, baselineName: 'raw better-sqlite3, same chunks', baseline: m['raw']!, higherIsBetter: false, bar: '<= 2x' },
    { name, unit: 'ms', value: m['ours']!, baselineName: 'node:fs on tmpfs', baseline: m['tmpfs']!, higherIsBetter: false },
  ];
}

export const storageCase: BenchCase = {
  name: 'storage',
  async run({ tmp, shm, quick }) {
    const rssStart = process.memoryUsage().rss / 1024 / 1024;
    const rounds = quick ? 1 : 3;
    const figures = [...(await smallFiles(tmp, shm, quick ? 2000 : 10_000, rounds)), ...(await bigFile(tmp, shm, quick ? 16 : 64, rounds))];
    figures.push({
      name: 'peak RSS of the storage bench',
      unit: 'MB',
      value: peakRssMb(),
      baselineName: 'node process at start',
      baseline: rssStart,
      higherIsBetter: false,
    });
    return figures;
  },
};
