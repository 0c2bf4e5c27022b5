/**
 * Read-ahead of data files: a handle read sequentially reads its next block ahead, and serves it only
 * while the file is unchanged; any change in between (a write elsewhere, a truncate, a removal) is read
 * fresh.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { admin, bytes, cleanup, openStorage, text } from '../helpers.js';
import type { DataFs } from '../../src/fs/datafs.js';

afterAll(cleanup);

function tree(): { fs: DataFs; pending: (() => void)[]; reads: () => number } {
  const storage = openStorage();
  const pending: (() => void)[] = [];
  let reads = 0;
  const store = storage.dataFiles;
  const read = store.read.bind(store);
  store.read = (...args) => {
    reads++;
    return read(...args);
  };
  const fs = storage.dataTree('t', { scope: 'test', prefix: '/' }, { readAhead: (work) => pending.push(work) });
  return { fs, pending, reads: () => reads };
}

const runPending = (pending: (() => void)[]) => {
  while (pending.length) pending.shift()!();
};

describe('read-ahead of data files', () => {
  it('sequential reads are served from the block read ahead', async () => {
    const { fs, pending, reads } = tree();
    await fs.writeFile('/f', bytes('0123456789abcdef'), {}, admin);
    const h = await fs.open('/f', { read: true }, admin);
    expect(text(await h.read(4, 0))).toBe('0123');
    expect(pending).toHaveLength(0); // not sequential yet
    expect(text(await h.read(4, 4))).toBe('4567');
    expect(pending).toHaveLength(1);
    runPending(pending);
    const before = reads();
    expect(text(await h.read(4, 8))).toBe('89ab');
    expect(reads()).toBe(before); // from the block read ahead
    runPending(pending);
    expect(text(await h.read(4, 12))).toBe('cdef');
    runPending(pending); // at the end: nothing to read ahead
    expect(text(await h.read(4, 16))).toBe('');
    await h.close();
  });

  it('a change between reading ahead and reading is never served stale', async () => {
    const { fs, pending } = tree();
    await fs.writeFile('/f', bytes('aaaabbbbccccdddd'), {}, admin);
    const h = await fs.open('/f', { read: true }, admin);
    await h.read(4, 0);
    await h.read(4, 4);
    runPending(pending); // 'cccc' read ahead
    const w = await fs.open('/f', { write: true }, admin);
    await w.write(bytes('XXXX'), 8);
    await w.close();
    expect(text(await h.read(4, 8))).toBe('XXXX');
    runPending(pending); // 'dddd' read ahead
    await fs.truncate('/f', 13, admin);
    expect(text(await h.read(4, 12))).toBe('d');
    await h.close();
  });

  it('a file removed while open reads on through the handle, as without read-ahead', async () => {
    const { fs, pending } = tree();
    await fs.writeFile('/f', bytes('aaaabbbbcccc'), {}, admin);
    const h = await fs.open('/f', { read: true }, admin);
    await h.read(4, 0);
    await h.read(4, 4);
    runPending(pending);
    await fs.remove('/f', admin);
    expect(text(await h.read(4, 8))).toBe('cccc');
    expect(text(await h.read(4, 12))).toBe('');
    await h.close();
  });

  it('a read elsewhere in the file is read directly', async () => {
    const { fs, pending } = tree();
    await fs.writeFile('/f', bytes('aaaabbbbccccdddd'), {}, admin);
    const h = await fs.open('/f', { read: true }, admin);
    await h.read(4, 0);
    await h.read(4, 4);
    runPending(pending);
    expect(text(await h.read(4, 12))).toBe('dddd');
    expect(text(await h.read(4, 8))).toBe('cccc');
    await h.close();
  });
});
