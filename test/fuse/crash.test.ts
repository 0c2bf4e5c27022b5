/**
 * A FUSE server that dies (SIGKILL) while shells use the mount: the shells get errors, never hang, and
 * the next start on the same directory recovers the mount point and the data.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmdir } from 'node:fs/promises';
import { mountedType } from '../../src/fuse/mount.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountPoint, ok, q, sh, sleep, startFixtureServer, until, type ServerProcess } from './helpers.js';

const servers: ServerProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.kill('SIGKILL', true);
    await s.exited;
  }
  for (const d of dirs.splice(0)) {
    if ((await mountedType(d))?.startsWith('fuse')) await sh(`fusermount -u -z ${q(d)}`);
    await rmdir(d).catch(() => undefined);
  }
  cleanup();
});

async function start(home: string, dir: string): Promise<ServerProcess> {
  const s = await startFixtureServer(home, dir);
  servers.push(s);
  return s;
}

describe('the server dies while shells use the mount', () => {
  it('SIGKILL: a blocked reader and a shell inside the mount get errors; the mount goes away; a restart serves the data', async () => {
    const home = tempDir();
    const dir = await mountPoint();
    dirs.push(dir);
    const server = await start(home, dir);
    await ok(`echo kept > ${q(dir)}/data/kept.txt`);

    const reader = sh(`cat ${q(dir)}/svc/feed`, { timeoutMs: 15_000 });
    const inside = sh(`cd ${q(dir)}/data && sleep 1 && ls && cat kept.txt`, { timeoutMs: 15_000 });
    await sleep(400);
    server.kill('SIGKILL');
    expect(await server.exited).toBe('SIGKILL');

    const r = await reader;
    expect(r.timedOut).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Software caused connection abort|Transport endpoint is not connected/);
    const i = await inside;
    expect(i.timedOut).toBe(false);
    expect(i.code).not.toBe(0);
    expect(i.stderr).toMatch(/Transport endpoint is not connected|No such file or directory/);

    // The FUSE helper (auto_unmount) took the mount away.
    await until(async () => (await mountedType(dir)) === undefined, 5000, 'the dead mount to go away');

    await start(home, dir);
    expect(await ok(`cat ${q(dir)}/data/kept.txt`)).toBe('kept\n');
  });

  it('SIGKILL of the server and its unmount helper leaves a stale mount; the next start clears it', async () => {
    const home = tempDir();
    const dir = await mountPoint();
    dirs.push(dir);
    const server = await start(home, dir);
    await ok(`echo kept > ${q(dir)}/data/kept.txt`);
    // fusermount3's auto-unmount helper runs in its own session; kill it first, as a crash of both would.
    const helper = (await ok(`pgrep -f -- ${q(`^fusermount3 .*auto_unmount.* -- ${dir}$`)}`)).trim();
    expect(helper).toMatch(/^\d+$/);
    process.kill(Number(helper), 'SIGKILL');
    server.kill('SIGKILL');
    await server.exited;
    await sleep(200);
    const stale = await sh(`ls ${q(dir)}`, { timeoutMs: 5000 });
    expect(stale.timedOut).toBe(false);
    expect(stale.stderr).toMatch(/Transport endpoint is not connected/);
    expect(await mountedType(dir)).toMatch(/^fuse/);

    await start(home, dir);
    expect(await ok(`cat ${q(dir)}/data/kept.txt`)).toBe('kept\n');
  });

  it('SIGTERM unmounts cleanly', async () => {
    const home = tempDir();
    const dir = await mountPoint();
    dirs.push(dir);
    const server = await start(home, dir);
    expect(await mountedType(dir)).toBe('fuse.agent9');
    server.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(await mountedType(dir)).toBeUndefined();
  });

  it('a mount still served by a live server is not taken over', async () => {
    const home = tempDir();
    const dir = await mountPoint();
    dirs.push(dir);
    await start(home, dir);
    await expect(startFixtureServer(tempDir(), dir)).rejects.toThrow(/already mounted by a running FUSE server/);
  });
});
