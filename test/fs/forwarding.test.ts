/**
 * The forwarding base: every FileService operation reaches the inner service through every wrapper
 * (access levels, rooted views, restrictions), with paths mapped both ways, and an operation the inner
 * service lacks is ENOSYS naming the path.
 */
import { describe, expect, it } from 'vitest';
import { FsError } from '../../src/fs/errors.js';
import type { Cx, FileService, Handle, Stat } from '../../src/fs/types.js';
import { GuardedService, ReadWrite } from '../../src/mounts/access.js';
import { RestrictedService, RootedService } from '../../src/mounts/scope.js';
import { admin } from '../helpers.js';

const STAT: Stat = { type: 'file', kind: 'data', size: 1, mode: 0o644, mtime: 1, ctime: 1, version: 1 };
const HANDLE: Handle = { kind: 'data', read: async () => new Uint8Array(), write: async (d) => d.length, flush: async () => {}, close: async () => {} };

/** An inner service that records which operation reached it with which path. */
function recorder(calls: string[]): FileService {
  const rec = (op: string) => async (path: string) => {
    calls.push(`${op} ${path}`);
    if (path.endsWith('/fail')) throw new FsError('EIO', path, 'failed');
    return op === 'readdir' ? [] : op === 'open' ? HANDLE : op === 'readFile' ? new Uint8Array() : op === 'readStat' ? { stat: STAT } : STAT;
  };
  type Op = (...args: never[]) => unknown;
  const service: Record<string, Op> = {
    stat: rec('stat'),
    readdir: rec('readdir'),
    open: rec('open'),
    mkdir: rec('mkdir'),
    remove: rec('remove'),
    rename: async (from: string, to: string) => void calls.push(`rename ${from} ${to}`),
    truncate: rec('truncate'),
    setattr: rec('setattr'),
    readFile: rec('readFile'),
    readStat: rec('readStat'),
    writeFile: rec('writeFile'),
    watch: (path: string) => {
      calls.push(`watch ${path}`);
      return (async function* () {})();
    },
  };
  return service as unknown as FileService;
}

async function every(fs: FileService, cx: Cx): Promise<void> {
  await fs.stat('/a', cx);
  await fs.readdir('/a', cx);
  await fs.open('/a', { read: true }, cx);
  await fs.mkdir!('/a', 0o755, cx);
  await fs.remove!('/a', cx);
  await fs.rename!('/a', '/b', cx);
  await fs.truncate!('/a', 0, cx);
  await fs.setattr!('/a', { mode: 0o600 }, cx);
  await fs.readFile!('/a', cx);
  await fs.readStat!('/a', cx);
  await fs.writeFile!('/a', new Uint8Array(), {}, cx);
  for await (const _ of fs.watch!('/a', undefined, cx)) void _;
}

const OPS = ['stat', 'readdir', 'open', 'mkdir', 'remove', 'rename', 'truncate', 'setattr', 'readFile', 'readStat', 'writeFile', 'watch'];

describe('forwarding', () => {
  const wrappers: [string, (inner: FileService) => FileService, string][] = [
    ['an access level', (inner) => new GuardedService(inner, ReadWrite), '/a'],
    ['a rooted view', (inner) => new RootedService(inner, '/agents/x'), '/agents/x/a'],
    ['a restriction', (inner) => new RestrictedService(inner, { prefixes: ['/a', '/b'] }), '/a'],
  ];

  for (const [name, wrap, innerPath] of wrappers) {
    it(`${name} forwards every operation, paths mapped inward`, async () => {
      const calls: string[] = [];
      await every(wrap(recorder(calls)), admin);
      expect(calls.map((c) => c.split(' ')[0])).toEqual(OPS);
      expect(calls[0]).toBe(`stat ${innerPath}`);
      expect(calls[5]).toBe(`rename ${innerPath} ${innerPath.replace(/a$/, 'b')}`);
    });

    it(`${name} reports errors of the inner service with this view's paths`, async () => {
      const fs = wrap(recorder([]));
      await expect(fs.stat('/a/fail', admin)).rejects.toMatchObject({ code: 'EIO', path: '/a/fail' });
    });

    it(`${name}: an operation the inner service lacks is ENOSYS naming the path`, async () => {
      const bare: FileService = { stat: async () => STAT, readdir: async () => [], open: async () => HANDLE };
      const fs = wrap(bare);
      for (const call of [() => fs.mkdir!('/a', 0o755, admin), () => fs.remove!('/a', admin), () => fs.truncate!('/a', 0, admin), () => fs.setattr!('/a', {}, admin)]) {
        await expect(call()).rejects.toMatchObject({ code: 'ENOSYS', path: '/a' });
      }
    });
  }
});
