/**
 * The accounting under the data quota, on a real SQLite database and a real work dir: the running
 * total (kept by triggers in each write's transaction) always equals the sum of the files, whatever
 * the operation; the work dir is walked when a tick ends, throttled, never per write.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryQuota, WORK_DIR_REFRESH_MS } from '../../src/runtime/quota.js';
import type { Cx } from '../../src/fs/types.js';
import { admin, bytes, cleanup, expectCode, openStorage, tempDir, text } from '../helpers.js';

afterAll(cleanup);

const cx: Cx = admin;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(limit: number) {
  const home = tempDir();
  const storage = openStorage(home);
  let current = limit;
  const quota = new MemoryQuota(storage, home, () => current, (id) => `memory:${id}`);
  const fs = (id: string) =>
    storage.dataTree(`memory:${id}`, { scope: id, prefix: '/memory' }, { space: () => quota.space(id) }, (s) => quota.store(id, s));
  const summed = (tree: string) =>
    storage.db
      .prepare("SELECT COALESCE(SUM(CASE WHEN type = 'file' THEN size ELSE 0 END), 0) AS bytes, COUNT(*) AS nodes FROM data_nodes WHERE tree = ?")
      .get(tree) as { bytes: number; nodes: number };
  const kept = (tree: string) => storage.db.prepare('SELECT bytes, nodes FROM data_usage WHERE tree = ?').get(tree) as { bytes: number; nodes: number } | undefined;
  return { home, storage, quota, fs, summed, kept, setLimit: (n: number) => (current = n) };
}

describe('the running total of memory bytes', () => {
  it('equals the sum of the files after every kind of change, in any tree', async () => {
    const t = setup(10_000_000);
    const a = t.fs('a');
    const b = t.fs('b');
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    await a.mkdir('/d', 0o755, cx);
    for (let i = 0; i < 400; i++) {
      const name = `/${rand(2) ? 'd/' : ''}f${rand(12)}`;
      const op = rand(7);
      try {
        if (op === 0) await a.writeFile(name, new Uint8Array(rand(70_000)), {}, cx);
        else if (op === 1) await a.writeFile(name, new Uint8Array(rand(5_000)), { append: true }, cx);
        else if (op === 2) await a.truncate(name, rand(150_000), cx);
        else if (op === 3) await a.remove(name, cx);
        else if (op === 4) await a.rename(name, `/${rand(2) ? 'd/' : ''}f${rand(12)}`, cx);
        else if (op === 5) {
          const h = await a.open(name, { write: true, create: true }, cx);
          await h.write(new Uint8Array(rand(20_000)), rand(100_000));
          await h.close();
        } else await b.writeFile(name.replace('/d/', '/'), new Uint8Array(rand(1000)), {}, cx);
      } catch (err) {
        if (!['ENOENT', 'EISDIR', 'ENOTDIR', 'ENOTEMPTY'].includes((err as { code: string }).code)) throw err;
      }
      expect(t.kept('memory:a')).toEqual(t.summed('memory:a'));
    }
    expect(t.kept('memory:b')).toEqual(t.summed('memory:b'));
    t.storage.dataFiles.dropTree('memory:a');
    expect(t.kept('memory:a')).toEqual({ bytes: 0, nodes: 0 });
    expect(t.kept('memory:b')!.bytes).toBeGreaterThan(0);
  });

  it('refuses growth past the limit and leaves the file as it was; shrinking always works', async () => {
    const t = setup(1000);
    const m = t.fs('q');
    await m.writeFile('/a', bytes('x'.repeat(600)), {}, cx);
    await expectCode(m.writeFile('/a', new Uint8Array(1001), {}, cx), 'EDQUOT', '/a');
    expect(text(await m.readFile('/a', cx))).toBe('x'.repeat(600));
    await expectCode(m.writeFile('/b', new Uint8Array(401), {}, cx), 'EDQUOT', '/b');
    await expectCode(m.stat('/b', cx), 'ENOENT');
    await expectCode(m.truncate('/a', 1001, cx), 'EDQUOT', '/a');
    const h = await m.open('/a', { write: true }, cx);
    await expectCode(h.write(new Uint8Array(100), 950), 'EDQUOT', '/a');
    await h.write(bytes('yy'), 0);
    await h.close();
    expect((await m.stat('/a', cx)).size).toBe(600);
    await m.writeFile('/b', new Uint8Array(400), {}, cx);
    expect(await m.statfs!('/', cx)).toEqual({ totalBytes: 1000, usedBytes: 1000, freeBytes: 0, files: 3 });
    t.setLimit(500);
    await expectCode(m.writeFile('/c', bytes('z'), {}, cx), 'EDQUOT', '/c');
    expect(await m.statfs!('/', cx)).toMatchObject({ totalBytes: 500, usedBytes: 1000, freeBytes: 0 });
    await m.truncate('/a', 10, cx);
    await m.rename('/b', '/a', cx);
    expect(await m.statfs!('/', cx)).toMatchObject({ usedBytes: 400, freeBytes: 100 });
  });
});

describe('the work dir count', () => {
  it('is walked when a tick ends (at most every few seconds), and counted against writes', async () => {
    const t = setup(1000);
    const work = join(t.home, 'work', 'w');
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'one'), new Uint8Array(500));
    expect((await t.quota.space('w')).usedBytes).toBe(500);
    // A tick right after a walk: the next walk waits until the last one is WORK_DIR_REFRESH_MS old.
    writeFileSync(join(work, 'two'), new Uint8Array(300));
    t.quota.tickDone('w');
    t.quota.tickDone('w');
    await sleep(100);
    expect(t.quota.usage('w').work_dir_bytes).toBe(500);
    await sleep(WORK_DIR_REFRESH_MS);
    // Walked by the tick's timer: this read sees it (a read only starts a walk, it never waits for one).
    expect(t.quota.usage('w').work_dir_bytes).toBe(800);
    const m = t.fs('w');
    await m.writeFile('/fits', new Uint8Array(200), {}, cx);
    const refused = await expectCode(m.writeFile('/over', new Uint8Array(1), {}, cx), 'EDQUOT', '/over');
    expect(refused.message).toBe('/over: data quota exceeded: this write would use 1001 bytes (memory 201 + work dir 800), over limits.memory_bytes 1000 (1000 used before it)');
  }, 20_000);
});
