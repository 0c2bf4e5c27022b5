/**
 * The node kinds of a data tree in the store itself (no transport): hard links as one node under
 * several names (whichever name goes, in any order, by remove or rename), events under every name,
 * directory link counts, files removed while open (and what a crash leaves of them), symbolic links
 * resolved within the tree, path limits counted from the tree's root, and memory.max_file_bytes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readAll, writeAll } from '../../src/fs/ops.js';
import { Namespace } from '../../src/fs/namespace.js';
import { maxFileBytesFromConfig } from '../../src/runtime/quota.js';
import { admin, bytes, cleanup, collect, expectCode, openStorage, tempDir, text } from '../helpers.js';
import type { Storage } from '../../src/runtime/storage/index.js';

afterAll(cleanup);

/** A data tree mounted at /memory of a namespace (its events in scope `a`). */
function memory(storage: Storage = openStorage()) {
  const ns = new Namespace({ scope: 'a', events: storage.events });
  ns.mount('/memory', storage.dataTree('memory:a', { scope: 'a', prefix: '/memory' }));
  const read = async (p: string) => text(await readAll(ns, p, admin));
  return { ns, storage, read, stat: (p: string) => ns.stat(p, admin), write: (p: string, d: string) => writeAll(ns, p, d, admin) };
}

describe('hard links in the store', () => {
  it('one node under every name, whichever name goes first, by remove or by rename over it', async () => {
    const m = memory();
    await m.write('/memory/a', 'content');
    await m.ns.link('/memory/a', '/memory/b', admin);
    await m.ns.link('/memory/b', '/memory/c', admin);
    const ino = (await m.stat('/memory/a')).ino;
    expect([(await m.stat('/memory/b')).ino, (await m.stat('/memory/c')).nlink]).toEqual([ino, 3]);
    // The name holding the node's row goes: the node lives on under the others.
    await m.ns.remove('/memory/a', admin);
    expect([await m.read('/memory/b'), (await m.stat('/memory/c')).nlink, (await m.stat('/memory/c')).ino]).toEqual(['content', 2, ino]);
    // A rename between two names of one file does nothing (POSIX).
    await m.ns.rename('/memory/b', '/memory/c', admin);
    expect((await m.ns.readdir('/memory', admin)).map((e) => e.name).sort()).toEqual(['b', 'c']);
    // Another file renamed over one name: that name goes, the node keeps the other.
    await m.write('/memory/other', 'other');
    await m.ns.rename('/memory/other', '/memory/b', admin);
    expect([await m.read('/memory/b'), await m.read('/memory/c'), (await m.stat('/memory/c')).nlink]).toEqual(['other', 'content', 1]);
    await m.ns.remove('/memory/c', admin);
    expect(m.storage.db.prepare("SELECT count(*) FROM data_nodes WHERE tree = 'memory:a' AND path <> '/'").pluck().get()).toBe(1);
  });

  it('a change through one name is an event under every name, with the one version all names show', async () => {
    const m = memory();
    await m.ns.mkdir('/memory/d', 0o755, admin);
    await m.write('/memory/f', 'one');
    await m.ns.link('/memory/f', '/memory/d/g', admin);
    const events = m.ns.watch('/memory', undefined, admin);
    const seen = collect(events, 2);
    await writeAll(m.ns, '/memory/d/g', 'two', admin, { append: true });
    const got = await seen;
    expect(got.map((e) => [e.type, e.path]).sort()).toEqual([
      ['modified', '/memory/d/g'],
      ['modified', '/memory/f'],
    ]);
    const version = (await m.stat('/memory/f')).version;
    expect(got.every((e) => e.version === version)).toBe(true);
    expect((await m.stat('/memory/d/g')).version).toBe(version);
    expect(await m.read('/memory/f')).toBe('onetwo');
  });

  it('refuses a directory (EPERM), a taken name (EEXIST) and a missing file (ENOENT), naming the path', async () => {
    const m = memory();
    await m.ns.mkdir('/memory/d', 0o755, admin);
    await m.write('/memory/f', 'x');
    await expectCode(m.ns.link('/memory/d', '/memory/d2', admin), 'EPERM', '/memory/d');
    await expectCode(m.ns.link('/memory/f', '/memory/d', admin), 'EEXIST', '/memory/d');
    await expectCode(m.ns.link('/memory/nothing', '/memory/n', admin), 'ENOENT', '/memory/nothing');
  });
});

describe('directory link counts', () => {
  it('2 and the subdirectories, through mkdir, rmdir, and renames within and across directories', async () => {
    const m = memory();
    const nlink = async (p: string) => (await m.stat(p)).nlink;
    for (const d of ['/memory/a', '/memory/a/x', '/memory/a/y', '/memory/b', '/memory/b/empty']) await m.ns.mkdir(d, 0o755, admin);
    await m.write('/memory/a/file', 'f');
    expect([await nlink('/memory'), await nlink('/memory/a'), await nlink('/memory/b')]).toEqual([4, 4, 3]);
    await m.ns.rename('/memory/a/x', '/memory/b/x', admin);
    expect([await nlink('/memory/a'), await nlink('/memory/b')]).toEqual([3, 4]);
    await m.ns.rename('/memory/a/y', '/memory/a/z', admin);
    expect(await nlink('/memory/a')).toBe(3);
    // A directory over an empty one: the destination's parent keeps its count, the source's loses one.
    await m.ns.rename('/memory/b/x', '/memory/a/z', admin);
    expect([await nlink('/memory/a'), await nlink('/memory/b')]).toEqual([3, 3]);
    await m.ns.rename('/memory/a/z', '/memory/b/empty', admin);
    expect([await nlink('/memory/a'), await nlink('/memory/b')]).toEqual([2, 3]);
    await m.ns.remove('/memory/b/empty', admin, { dir: true });
    expect([await nlink('/memory/b'), await nlink('/memory')]).toEqual([2, 4]);
  });
});

describe('files removed while open', () => {
  it('stay readable and writable through their handles, out of every listing, and go at the last close', async () => {
    const m = memory();
    await m.write('/memory/f', 'before');
    const a = await m.ns.open('/memory/f', { read: true, write: true }, admin);
    const b = await m.ns.open('/memory/f', { read: true }, admin);
    await m.ns.remove('/memory/f', admin);
    await expectCode(m.stat('/memory/f'), 'ENOENT');
    expect(await m.ns.readdir('/memory', admin)).toEqual([]);
    await a.write(bytes(' and after'), 6);
    expect(text(await b.read(100, 0))).toBe('before and after');
    expect((await a.stat!()).nlink).toBe(0);
    // The name is free for a new file meanwhile.
    await m.write('/memory/f', 'new');
    await a.close();
    expect(text(await b.read(100, 0))).toBe('before and after');
    await b.close();
    expect(m.storage.db.prepare("SELECT count(*) FROM data_nodes WHERE tree = 'memory:a' AND path <> '/'").pluck().get()).toBe(1);
    expect(await m.read('/memory/f')).toBe('new');
  });

  it('one still open when the server stops is gone at the next start', async () => {
    const dir = tempDir();
    const first = memory(openStorage(dir));
    await first.write('/memory/f', 'x'.repeat(100_000));
    const h = await first.ns.open('/memory/f', { read: true }, admin);
    await first.ns.remove('/memory/f', admin);
    void h;
    first.storage.close();
    const again = openStorage(dir);
    expect(again.db.prepare("SELECT count(*) FROM data_nodes WHERE tree = 'memory:a' AND path <> '/'").pluck().get()).toBe(0);
    expect(again.db.prepare('SELECT count(*) FROM data_chunks').pluck().get()).toBe(0);
  });
});

describe('symbolic links in the store', () => {
  it('realpath follows them within the tree only: relative, .., chains, dangling; absolute and upward ones are EINVAL, loops ELOOP', async () => {
    const m = memory();
    await m.ns.mkdir('/memory/d', 0o755, admin);
    await m.write('/memory/d/f', 'x');
    await m.ns.symlink('/memory/to-d', 'd', admin);
    await m.ns.symlink('/memory/d/back', '../to-d/f', admin);
    await m.ns.symlink('/memory/chain', 'd/back', admin);
    await m.ns.symlink('/memory/dangling', 'd/later', admin);
    await m.ns.symlink('/memory/abs', '/etc', admin);
    await m.ns.symlink('/memory/up', '../inbox', admin);
    await m.ns.symlink('/memory/loop', 'loop', admin);
    const real = (p: string, last = true) => m.ns.realpath(p, last, admin);
    expect(await real('/memory/to-d/back')).toBe('/memory/d/f');
    expect(await real('/memory/chain')).toBe('/memory/d/f');
    expect(await real('/memory/chain', false)).toBe('/memory/chain');
    expect(await real('/memory/dangling')).toBe('/memory/d/later');
    await expectCode(real('/memory/abs/passwd'), 'EINVAL', '/memory/abs');
    await expectCode(real('/memory/up'), 'EINVAL', 'outside the data tree');
    await expectCode(real('/memory/loop'), 'ELOOP');
    await expectCode(real('/memory/nothing/x'), 'ENOENT');
    await expectCode(real('/memory/d/f/x'), 'ENOTDIR');
    // Services never follow them themselves: a link opened is ELOOP, its own stat is the link's.
    await expectCode(m.ns.open('/memory/chain', { read: true }, admin), 'ELOOP');
    expect(await m.stat('/memory/chain')).toMatchObject({ type: 'symlink', target: 'd/back', size: 6 });
    expect(await m.ns.readlink('/memory/chain', admin)).toBe('d/back');
    await expectCode(m.ns.readlink('/memory/d/f', admin), 'EINVAL');
  });

  it('a target is 1 to 4095 bytes without NUL', async () => {
    const m = memory();
    await expectCode(m.ns.symlink('/memory/e', '', admin), 'ENOENT');
    await expectCode(m.ns.symlink('/memory/n', 'a\0b', admin), 'EINVAL');
    await expectCode(m.ns.symlink('/memory/long', 'x'.repeat(4096), admin), 'ENAMETOOLONG');
    expect((await m.ns.symlink('/memory/ok', 'x'.repeat(4095), admin)).size).toBe(4095);
  });
});

describe('limits', () => {
  it('a path counts 4096 bytes from its tree\u2019s root, below any mount point', async () => {
    const storage = openStorage();
    const ns = new Namespace({ scope: 'a', events: storage.events });
    const deep = '/agents/some-agent-with-a-long-name/memory';
    ns.mount(deep, storage.dataTree('memory:b', { scope: 'a', prefix: deep }));
    // 4096 bytes from the tree's root: '/' + 4095.
    const segs = ['a'.repeat(255), 'b'.repeat(255), 'c'.repeat(255)];
    let rel = '';
    for (let i = 0; 4096 - rel.length - 1 > 255; i++) {
      rel += '/' + segs[i % 3];
      await ns.mkdir(deep + rel, 0o755, admin);
    }
    const name = 'f'.repeat(4096 - rel.length - 1);
    await writeAll(ns, `${deep}${rel}/${name}`, 'deep', admin);
    expect(text(await readAll(ns, `${deep}${rel}/${name}`, admin))).toBe('deep');
    await expectCode(writeAll(ns, `${deep}${rel}/${name}x`, 'too deep', admin), 'ENAMETOOLONG');
  });

  it('memory.max_file_bytes of config.json, checked at start', () => {
    const home = tempDir();
    expect(maxFileBytesFromConfig(home)).toBe(1024 ** 3);
    writeFileSync(join(home, 'config.json'), JSON.stringify({ memory: { max_file_bytes: 12345 } }));
    expect(maxFileBytesFromConfig(home)).toBe(12345);
    for (const bad of [{ max_file_bytes: 0 }, { max_file_bytes: 1.5 }, { max_file_bytes: '1G' }, { max_file_bytes: 2 ** 51 }, { maxfile: 1 }, 7]) {
      writeFileSync(join(home, 'config.json'), JSON.stringify({ memory: bad }));
      expect(() => maxFileBytesFromConfig(home)).toThrow(/config\.json: memory/);
    }
  });
});
