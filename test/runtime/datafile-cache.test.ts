/** The data-file store's hot-read cache never serves stale data: own writes, other connections, callers' copies. */
import { afterAll, describe, expect, it } from 'vitest';
import { Storage } from '../../src/runtime/storage/index.js';
import { admin, cleanup, tempDir, text } from '../helpers.js';

afterAll(cleanup);

const cx = admin;
const settle = () => new Promise((r) => setImmediate(r));

describe('hot reads', () => {
  it('every kind of change through the store is seen by the next read', async () => {
    const storage = Storage.open(tempDir());
    const fs = storage.dataTree('t', { scope: 's', prefix: '/' });
    await fs.writeFile('/a', new TextEncoder().encode('one'), {}, cx);
    expect(text(await fs.readFile('/a', cx))).toBe('one');
    expect(text(await fs.readFile('/a', cx))).toBe('one');
    await fs.writeFile('/a', new TextEncoder().encode('two!'), {}, cx);
    expect(text(await fs.readFile('/a', cx))).toBe('two!');
    expect((await fs.stat('/a', cx)).size).toBe(4);
    const h = await fs.open('/a', { write: true }, cx);
    await h.write(new TextEncoder().encode('T'), 0);
    await h.close();
    expect(text(await fs.readFile('/a', cx))).toBe('Two!');
    await fs.truncate('/a', 2, cx);
    expect(text(await fs.readFile('/a', cx))).toBe('Tw');
    await fs.setattr('/a', { mode: 0o600 }, cx);
    expect((await fs.stat('/a', cx)).mode).toBe(0o600);
    await fs.rename('/a', '/b', cx);
    await expect(fs.readFile('/a', cx)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(text(await fs.readFile('/b', cx))).toBe('Tw');
    await fs.remove('/b', cx);
    await expect(fs.stat('/b', cx)).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.writeFile('/b', new TextEncoder().encode('new'), {}, cx);
    expect(text(await fs.readFile('/b', cx))).toBe('new');
    expect((await fs.stat('/b', cx)).version).toBe(1);
    storage.close();
  });

  it('changing the bytes a read returned does not change the file', async () => {
    const storage = Storage.open(tempDir());
    const fs = storage.dataTree('t', { scope: 's', prefix: '/' });
    await fs.writeFile('/a', new TextEncoder().encode('abc'), {}, cx);
    const first = await fs.readFile('/a', cx);
    (await fs.readFile('/a', cx)).fill(0x21);
    first.fill(0x21);
    expect(text(await fs.readFile('/a', cx))).toBe('abc');
    storage.close();
  });

  it('a commit by another connection is seen from the next turn of the event loop', async () => {
    const dir = tempDir();
    const one = Storage.open(dir);
    const two = Storage.open(dir);
    const a = one.dataTree('t', { scope: 's', prefix: '/' });
    const b = two.dataTree('t', { scope: 's', prefix: '/' });
    await a.writeFile('/f', new TextEncoder().encode('from one'), {}, cx);
    expect(text(await a.readFile('/f', cx))).toBe('from one');
    await b.writeFile('/f', new TextEncoder().encode('from two'), {}, cx);
    await settle();
    expect(text(await a.readFile('/f', cx))).toBe('from two');
    expect((await a.stat('/f', cx)).version).toBe(2);
    await b.remove('/f', cx);
    await settle();
    await expect(a.readFile('/f', cx)).rejects.toMatchObject({ code: 'ENOENT' });
    two.close();
    one.close();
  });
});
