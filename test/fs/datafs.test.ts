import { afterAll, describe, expect, it } from 'vitest';
import { readAll, writeAll } from '../../src/fs/ops.js';
import { Storage } from '../../src/runtime/storage/index.js';
import { Namespace } from '../../src/fs/namespace.js';
import { CHUNK_SIZE } from '../../src/runtime/storage/datafiles.js';
import { admin, bytes, cleanup, expectCode, openStorage, tempDir, text } from '../helpers.js';

afterAll(cleanup);

const tree = (storage: Storage, name = 'mem') => storage.dataTree(name, { scope: 'd', prefix: '/memory' });

describe('data files', () => {
  it('offset writes, holes, truncate and append behave like POSIX', async () => {
    const fs = tree(openStorage());
    const h = await fs.open('/f', { write: true, read: true, create: true }, admin);
    await h.write(bytes('hello world'), 0);
    await h.write(bytes('W'), 6);
    expect(text(await h.read(100, 0))).toBe('hello World');
    await h.write(bytes('!'), 20); // a hole reads as zeros
    const all = await h.read(100, 0);
    expect(all.length).toBe(21);
    expect([...all.subarray(11, 20)]).toEqual(new Array(9).fill(0));
    await h.truncate!(5);
    expect(text(await h.read(100, 0))).toBe('hello');
    await h.close();
    const a = await fs.open('/f', { write: true, append: true }, admin);
    await a.write(bytes(' there'), 0); // O_APPEND ignores the offset
    await a.close();
    expect(text(await readAll(fs, '/f', admin))).toBe('hello there');
    await fs.truncate('/f', 2);
    expect(text(await readAll(fs, '/f', admin))).toBe('he');
  });

  it('holes and short chunks inside a read across chunks read as zeros, never as stale memory', async () => {
    const fs = tree(openStorage());
    // Dirty the allocator's pool so that unzeroed memory would show.
    for (let i = 0; i < 64; i++) Buffer.allocUnsafe(CHUNK_SIZE * 4).fill(0xee);
    const h = await fs.open('/sparse', { write: true, read: true, create: true }, admin);
    await h.write(bytes('head'), 0); // a short first chunk
    await h.write(bytes('tail'), CHUNK_SIZE * 3 + 10); // chunks 1 and 2 are holes
    const all = await h.read(CHUNK_SIZE * 4, 0);
    expect(all.length).toBe(CHUNK_SIZE * 3 + 14);
    expect(text(all.subarray(0, 4))).toBe('head');
    expect(all.subarray(4, CHUNK_SIZE * 3 + 10).every((b) => b === 0)).toBe(true);
    expect(text(all.subarray(CHUNK_SIZE * 3 + 10))).toBe('tail');
    const middle = await h.read(CHUNK_SIZE * 2, CHUNK_SIZE / 2);
    expect(middle.every((b) => b === 0)).toBe(true);
    await h.close();
  });

  it('readInto (the FUSE read path) fills the caller\u2019s memory through a mount, read ahead or not', async () => {
    const storage = openStorage();
    const ns = new Namespace({ scope: 'd', events: storage.events });
    ns.mount('/memory', tree(storage));
    const size = CHUNK_SIZE * 4 + 77;
    const data = new Uint8Array(size).map((_, i) => (i * 13) & 0xff);
    await writeAll(ns, '/memory/f', data, admin);
    await writeAll(ns, '/memory/f', data, admin);
    const h = await ns.open('/memory/f', { read: true }, admin);
    expect(h.readInto).toBeTypeOf('function');
    const block = CHUNK_SIZE * 2;
    const target = new Uint8Array(block).fill(0xee);
    const got: number[] = [];
    for (let off = 0; ; off += block) {
      const n = await h.readInto!(target, off);
      if (n === 0) break;
      expect(Buffer.compare(target.subarray(0, n), data.subarray(off, off + n))).toBe(0);
      got.push(n);
      await new Promise((r) => setImmediate(r)); // lets the next block be read ahead
    }
    expect(got).toEqual([block, block, 77]);
    // A file changed after the block was read ahead is read again, not served stale.
    const n1 = await h.readInto!(target, 0);
    expect(n1).toBe(block);
    await new Promise((r) => setImmediate(r));
    const w = await ns.open('/memory/f', { write: true }, admin);
    await w.write(bytes('changed'), block);
    await w.close();
    expect(await h.readInto!(target, block)).toBe(block);
    expect(text(target.subarray(0, 7))).toBe('changed');
    await h.close();
  });

  it('large files live in chunks: offset writes across chunk boundaries round-trip', async () => {
    const fs = tree(openStorage());
    const size = CHUNK_SIZE * 3 + 1234;
    const data = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
    await writeAll(fs, '/big', data, admin);
    expect((await readAll(fs, '/big', admin)).length).toBe(size);
    expect(Buffer.compare(await readAll(fs, '/big', admin), data)).toBe(0);
    const h = await fs.open('/big', { read: true, write: true }, admin);
    const patch = new Uint8Array(100).fill(9);
    await h.write(patch, CHUNK_SIZE - 50);
    data.set(patch, CHUNK_SIZE - 50);
    const mid = await h.read(300, CHUNK_SIZE - 100);
    expect(Buffer.compare(mid, data.subarray(CHUNK_SIZE - 100, CHUNK_SIZE + 200))).toBe(0);
    await h.truncate!(CHUNK_SIZE + 10);
    expect(Buffer.compare(await h.read(size, 0), data.subarray(0, CHUNK_SIZE + 10))).toBe(0);
    await h.close();
  });

  it('directories: mkdir, ENOTEMPTY, EEXIST, rename over files and moving subtrees', async () => {
    const fs = tree(openStorage());
    await fs.mkdir!('/d', 0o755, admin);
    await expectCode(fs.mkdir!('/d', 0o755, admin), 'EEXIST', '/d');
    await writeAll(fs, '/d/a', 'A', admin);
    await fs.mkdir!('/d/sub', 0o700, admin);
    await writeAll(fs, '/d/sub/deep', 'deep', admin);
    await expectCode(fs.remove!('/d', admin, { dir: true }), 'ENOTEMPTY', '/d');
    await expectCode(fs.open('/d/a', { write: true, create: true, exclusive: true }, admin), 'EEXIST');
    await expectCode(writeAll(fs, '/nodir/x', 'x', admin), 'ENOENT', '/nodir/x');
    await expectCode(writeAll(fs, '/d/a/x', 'x', admin), 'ENOTDIR');
    // rename a file over an existing one
    await writeAll(fs, '/d/b', 'B', admin);
    await fs.rename!('/d/b', '/d/a', admin);
    expect(text(await readAll(fs, '/d/a', admin))).toBe('B');
    await expectCode(fs.stat('/d/b', admin), 'ENOENT');
    // move a whole subtree
    await fs.rename!('/d', '/e', admin);
    expect(text(await readAll(fs, '/e/sub/deep', admin))).toBe('deep');
    expect((await fs.readdir('/e', admin)).map((x) => x.name)).toEqual(['a', 'sub']);
    await expectCode(fs.stat('/d/sub/deep', admin), 'ENOENT');
    await expectCode(fs.rename!('/e', '/e/sub/x', admin), 'EINVAL');
    expect((await fs.stat('/e/sub', admin)).mode).toBe(0o700);
  });

  it('keeps mode, ownership and timestamps, and bumps the version on every change', async () => {
    const fs = tree(openStorage());
    const cx = { principal: { id: 'u', admin: false, uid: 1000, gid: 100 } };
    const h = await fs.open('/f', { write: true, create: true, mode: 0o600 }, cx);
    await h.close();
    const st = await fs.stat('/f', cx);
    expect([st.mode, st.uid, st.gid, st.version]).toEqual([0o600, 1000, 100, 1]);
    await fs.setattr!('/f', { mode: 0o640, uid: 0, mtime: 1_000_000 }, cx);
    const st2 = await fs.stat('/f', cx);
    expect([st2.mode, st2.uid, st2.gid, st2.mtime]).toEqual([0o640, 0, 100, 1_000_000]);
    expect(st2.version).toBeGreaterThan(st.version);
    await writeAll(fs, '/f', 'x', cx);
    expect((await fs.stat('/f', cx)).version).toBeGreaterThan(st2.version);
  });

  it('replacing a whole file: small over large leaves no stale chunk, versions and sizes follow, a directory is EISDIR', async () => {
    const storage = openStorage();
    const fs = tree(storage);
    const big = new Uint8Array(CHUNK_SIZE * 2 + 10).fill(7);
    const first = await writeAll(fs, '/f', big, admin);
    const small = await writeAll(fs, '/f', 'tiny', admin);
    expect(small!.size).toBe(4);
    expect(small!.version).toBe(first!.version + 1);
    expect(text(await readAll(fs, '/f', admin))).toBe('tiny');
    // Grown again: what lies past the new content reads as zeros, not as the old chunks.
    await fs.truncate('/f', CHUNK_SIZE * 2 + 10, admin);
    const grown = await readAll(fs, '/f', admin);
    expect(text(grown.subarray(0, 4))).toBe('tiny');
    expect(grown.subarray(4).every((b) => b === 0)).toBe(true);
    const empty = await writeAll(fs, '/f', '', admin);
    expect(empty!.size).toBe(0);
    expect((await readAll(fs, '/f', admin)).length).toBe(0);
    await writeAll(fs, '/f', 'again', admin);
    expect(text(await readAll(fs, '/f', admin))).toBe('again');
    await fs.mkdir!('/d', 0o755, admin);
    await expectCode(writeAll(fs, '/d', 'x', admin), 'EISDIR', '/d');
    // A replaced file is one row: nothing is left in the chunk table for it.
    const chunks = storage.db.prepare("SELECT count(*) FROM data_chunks WHERE node = (SELECT id FROM data_nodes WHERE tree = 'mem' AND path = '/f')").pluck().get();
    expect(chunks).toBe(0);
  });

  it('whole-file writes of one turn share one commit; each learns its own outcome; a failed one changes nothing', async () => {
    const storage = openStorage();
    const fs = tree(storage);
    await writeAll(fs, '/kept', 'before', admin);
    const before = { ...storage.dataFileCommits };
    const writes = [
      ...Array.from({ length: 20 }, (_, i) => writeAll(fs, `/f${i}`, `n${i}`, admin)),
      writeAll(fs, '/missing/f', 'x', admin),
      writeAll(fs, '/kept', 'stale', admin, { ifVersion: 99 }),
      writeAll(fs, '/kept', 'after', admin),
    ];
    const outcomes = await Promise.allSettled(writes);
    expect(outcomes.slice(0, 20).every((o) => o.status === 'fulfilled')).toBe(true);
    expect(outcomes[20]).toMatchObject({ status: 'rejected', reason: { code: 'ENOENT' } });
    expect(outcomes[21]).toMatchObject({ status: 'rejected', reason: { code: 'ESTALE' } });
    expect(outcomes[22]!.status).toBe('fulfilled');
    expect(storage.dataFileCommits.jobs - before.jobs).toBe(23);
    expect(storage.dataFileCommits.transactions - before.transactions).toBe(1);
    expect(text(await readAll(fs, '/f7', admin))).toBe('n7');
    expect(text(await readAll(fs, '/kept', admin))).toBe('after');
    await expectCode(readAll(fs, '/missing/f', admin), 'ENOENT');
  });

  it('If-Match style writes: ifVersion guards with ESTALE, 0 means must not exist', async () => {
    const fs = tree(openStorage());
    const st = await writeAll(fs, '/f', 'one', admin, { ifVersion: 0 });
    await expectCode(writeAll(fs, '/f', 'two', admin, { ifVersion: 0 }), 'ESTALE', '/f');
    await expectCode(writeAll(fs, '/f', 'two', admin, { ifVersion: st!.version + 5 }), 'ESTALE');
    await writeAll(fs, '/f', 'two', admin, { ifVersion: st!.version });
    expect(text(await readAll(fs, '/f', admin))).toBe('two');
  });

  it('persists after closing and reopening the database', async () => {
    const dir = tempDir();
    let storage = Storage.open(dir);
    let fs = tree(storage);
    await fs.mkdir!('/notes', 0o755, admin);
    await writeAll(fs, '/notes/today.md', '# today\n', admin);
    const big = new Uint8Array(CHUNK_SIZE * 2 + 5).fill(7);
    await writeAll(fs, '/blob', big, admin);
    storage.close();
    storage = Storage.open(dir);
    fs = tree(storage);
    expect(text(await readAll(fs, '/notes/today.md', admin))).toBe('# today\n');
    expect(Buffer.compare(await readAll(fs, '/blob', admin), big)).toBe(0);
    expect((await fs.readdir('/', admin)).map((e) => e.name)).toEqual(['blob', 'notes']);
    storage.close();
  });

  it('lists exactly the direct children, whatever the names sort like', async () => {
    const fs = tree(openStorage());
    for (const d of ['/a', '/a/b', '/a/b/c', '/a-x', '/a.y', '/a0']) await fs.mkdir!(d, 0o755, admin);
    for (const f of ['/a/b/c/f', '/a/b/g', '/a/h', '/a-x/i', '/z', '/é']) await writeAll(fs, f, 'x', admin);
    expect((await fs.readdir('/', admin)).map((e) => e.name)).toEqual(['a', 'a-x', 'a.y', 'a0', 'z', 'é']);
    expect((await fs.readdir('/a', admin)).map((e) => e.name)).toEqual(['b', 'h']);
    expect((await fs.readdir('/a/b', admin)).map((e) => e.name)).toEqual(['c', 'g']);
    await expectCode(fs.remove!('/a-x', admin, { dir: true }), 'ENOTEMPTY');
    await fs.remove!('/a.y', admin, { dir: true });
  });

  it('trees are separate', async () => {
    const storage = openStorage();
    const a = tree(storage, 'a');
    const b = tree(storage, 'b');
    await writeAll(a, '/x', 'a', admin);
    await expectCode(readAll(b, '/x', admin), 'ENOENT', '/x');
  });
});
