/**
 * Storage through the namespace against raw better-sqlite3 doing the equivalent inserts/selects (same
 * WAL + synchronous setting, same chunk size) and node:fs on tmpfs.
 */
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync, openSync, writeSync, readSync, closeSync } from 'node:fs';
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

async function smallFiles(tmp: string, shm: string, n: number): Promise<Figure[]> {
  const payload = new TextEncoder().encode('x'.repeat(100));

  const storage = Storage.open(join(tmp, 'ours'));
  const ns = new Namespace({ scope: 'bench', events: storage.events });
  mountWithAccess(ns, '/memory', storage.dataTree('bench:memory', { scope: 'bench', prefix: '/memory' }), ReadWrite);
  const ours = await timeAsync(async () => {
    for (let i = 0; i < n; i++) await writeAll(ns, `/memory/f${i}`, payload, cx);
    for (let i = 0; i < n; i++) await readAll(ns, `/memory/f${i}`, cx);
  });
  storage.close();

  const db = rawDb(join(tmp, 'raw.db'));
  db.exec('CREATE TABLE files (path TEXT PRIMARY KEY, data BLOB)');
  const ins = db.prepare('INSERT OR REPLACE INTO files (path, data) VALUES (?, ?)');
  const sel = db.prepare('SELECT data FROM files WHERE path = ?').pluck();
  const raw = timeIt(() => {
    for (let i = 0; i < n; i++) ins.run(`/memory/f${i}`, payload);
    for (let i = 0; i < n; i++) sel.get(`/memory/f${i}`);
  });
  db.close();

  // The equivalent durable work: each file row commits together with its change event (what makes it
  // watchable and resumable), as ours does.
  const db2 = rawDb(join(tmp, 'raw-events.db'));
  db2.exec(`CREATE TABLE files (path TEXT PRIMARY KEY, data BLOB);
    CREATE TABLE events (id INTEGER PRIMARY KEY, scope TEXT, path TEXT, type TEXT, time INTEGER);
    CREATE INDEX events_scope ON events (scope, id);`);
  const ins2 = db2.prepare('INSERT OR REPLACE INTO files (path, data) VALUES (?, ?)');
  const ev2 = db2.prepare("INSERT INTO events (scope, path, type, time) VALUES ('bench', ?, 'created', ?)");
  const sel2 = db2.prepare('SELECT data FROM files WHERE path = ?').pluck();
  const put2 = db2.transaction((p: string) => {
    ins2.run(p, payload);
    ev2.run(p, Date.now());
  });
  const rawEvents = timeIt(() => {
    for (let i = 0; i < n; i++) put2(`/memory/f${i}`);
    for (let i = 0; i < n; i++) sel2.get(`/memory/f${i}`);
  });
  db2.close();

  const tmpfs = timeIt(() => {
    for (let i = 0; i < n; i++) writeFileSync(join(shm, `f${i}`), payload);
    for (let i = 0; i < n; i++) readFileSync(join(shm, `f${i}`));
  });

  const name = `${n} small files write+read`;
  return [
    { name, unit: 'ms', value: ours.ms, baselineName: 'raw better-sqlite3: row + event per tx', baseline: rawEvents.ms, higherIsBetter: false, bar: '<= 1.5x' },
    { name, unit: 'ms', value: ours.ms, baselineName: 'raw better-sqlite3: one insert per file', baseline: raw.ms, higherIsBetter: false },
    { name, unit: 'ms', value: ours.ms, baselineName: 'node:fs on tmpfs', baseline: tmpfs.ms, higherIsBetter: false },
  ];
}

async function bigFile(tmp: string, shm: string, mib: number): Promise<Figure[]> {
  const piece = new Uint8Array(1024 * 1024).map((_, i) => i & 0xff);
  const total = mib * 1024 * 1024;

  const storage = Storage.open(join(tmp, 'ours-big'));
  const ns = new Namespace({ scope: 'bench', events: storage.events });
  mountWithAccess(ns, '/memory', storage.dataTree('bench:big', { scope: 'bench', prefix: '/memory' }), ReadWrite);
  const ours = await timeAsync(async () => {
    const w = await ns.open('/memory/big', { write: true, create: true, truncate: true }, cx);
    for (let off = 0; off < total; off += piece.length) await w.write(piece, off);
    await w.close();
    const r = await ns.open('/memory/big', { read: true }, cx);
    let got = 0;
    for (;;) {
      const b = await r.read(piece.length, got);
      if (b.length === 0) break;
      got += b.length;
    }
    await r.close();
    if (got !== total) throw new Error(`read ${got} of ${total}`);
  });
  storage.close();

  const db = rawDb(join(tmp, 'raw-big.db'));
  db.exec('CREATE TABLE chunks (node INTEGER, idx INTEGER, data BLOB, PRIMARY KEY (node, idx))');
  const ins = db.prepare('INSERT OR REPLACE INTO chunks (node, idx, data) VALUES (1, ?, ?)');
  const sel = db.prepare('SELECT data FROM chunks WHERE node = 1 AND idx BETWEEN ? AND ? ORDER BY idx').pluck();
  const per = piece.length / CHUNK_SIZE;
  const writeMiB = db.transaction((base: number) => {
    for (let j = 0; j < per; j++) ins.run(base + j, piece.subarray(j * CHUNK_SIZE, (j + 1) * CHUNK_SIZE));
  });
  const raw = timeIt(() => {
    for (let m = 0; m < mib; m++) writeMiB(m * per);
    let got = 0;
    for (let m = 0; m < mib; m++) {
      const parts = sel.all(m * per, m * per + per - 1) as Buffer[];
      got += Buffer.concat(parts).length;
    }
    if (got !== total) throw new Error(`raw read ${got}`);
  });
  db.close();

  const tmpfs = timeIt(() => {
    const file = join(shm, 'big');
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
  });

  const name = `${mib} MiB file write+read (1 MiB ops, ${CHUNK_SIZE / 1024} KiB chunks)`;
  return [
    { name, unit: 'ms', value: ours.ms, baselineName: 'raw better-sqlite3, same chunks', baseline: raw.ms, higherIsBetter: false, bar: '<= 2x' },
    { name, unit: 'ms', value: ours.ms, baselineName: 'node:fs on tmpfs', baseline: tmpfs.ms, higherIsBetter: false },
  ];
}

export const storageCase: BenchCase = {
  name: 'storage',
  async run({ tmp, shm, quick }) {
    const rssStart = process.memoryUsage().rss / 1024 / 1024;
    const figures = [...(await smallFiles(tmp, shm, quick ? 2000 : 10_000)), ...(await bigFile(tmp, shm, quick ? 16 : 64))];
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
