/** A service that never answers gives the shell ETIMEDOUT after the deadline, never a hang. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Namespace } from '../../src/fs/namespace.js';
import { SyntheticFs, dir, view } from '../../src/fs/synthetic.js';
import type { Cx, DirEntry, FileService, Handle, OpenFlags, Stat } from '../../src/fs/types.js';
import { mountService, ok, q, sh, until } from './helpers.js';

const never = <T>() => new Promise<T>(() => undefined);
let lateClosed = 0;

/** stat of /stuck never answers; open of /late answers after 1 s (when the shell has given up). */
const slow: FileService = {
  serviceName: 'slow',
  async stat(path: string): Promise<Stat> {
    if (path === '/stuck') return never();
    const now = Date.now();
    if (path === '/') return { type: 'dir', kind: 'dir', size: 0, mode: 0o755, mtime: now, ctime: now, version: 0 };
    return { type: 'file', kind: 'view', size: 1, mode: 0o444, mtime: now, ctime: now, version: 1 };
  },
  async readdir(): Promise<DirEntry[]> {
    return [];
  },
  async open(path: string, _flags: OpenFlags, _cx: Cx): Promise<Handle> {
    if (path !== '/late') return never();
    await new Promise((r) => setTimeout(r, 1000));
    return {
      kind: 'view',
      read: async () => new Uint8Array(0),
      write: async () => 0,
      flush: async () => undefined,
      close: async () => {
        lateClosed++;
      },
    };
  },
};

let m: Awaited<ReturnType<typeof mountService>>;
const reported: string[] = [];

beforeAll(async () => {
  const ns = new Namespace();
  ns.mount('/slow', slow);
  ns.mount('/fine', new SyntheticFs(dir({ hello: view(() => 'hi\n') })));
  m = await mountService(ns, { opTimeoutMs: 400, onError: (op, path) => reported.push(`${op} ${path}`) });
});

afterAll(async () => {
  await m?.close();
});

describe('deadlines', () => {
  it('a stat that never answers fails with ETIMEDOUT; the rest of the mount keeps working', async () => {
    const r = await sh(`stat ${q(m.dir)}/slow/stuck`, { timeoutMs: 10_000 });
    expect(r.timedOut).toBe(false);
    expect(r.stderr).toMatch(/Connection timed out/);
    expect(reported).toContain('lookup /slow/stuck');
    expect(await ok(`cat ${q(m.dir)}/fine/hello`)).toBe('hi\n');
  });

  it('an open that answers after the deadline is closed, not leaked', async () => {
    const r = await sh(`cat ${q(m.dir)}/slow/late`, { timeoutMs: 10_000 });
    expect(r.stderr).toMatch(/Connection timed out/);
    await until(() => lateClosed === 1, 5000, 'the late handle to be closed');
    expect(m.mount.adapter.openHandles).toBe(0);
  });
});
