/**
 * A FUSE server that dies (SIGKILL) while shells use the mount: the shells get errors, never hang, and
 * the next start on the same directory recovers the mount point and the data; a process the server
 * started does not keep a dead mount alive.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountedType } from '../../src/fuse/kernel-mount.js';
import { agentctl, ensureBuilt, startServe } from '../cli/helpers.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountPoint, ok, PYTHON, q, sh, sleep, startFixtureServer, until, type ServerProcess } from './helpers.js';

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

/** The process is gone, or a zombie (dead, its descriptors closed, not yet reaped). */
function dead(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z';
  } catch {
    return true;
  }
}

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

    // Each shell says (in a file outside the mount) when it is where the test wants it: the reader
    // holds the stream open, the other shell stands inside the mount. Only then does the server die;
    // a fixed sleep raced with slow process start-up on a loaded machine. The shell inside lists the
    // directory only once the test says the server is dead: it used to wait a fixed second, and when
    // the reader took longer than that to get in place, it listed a live mount and exited 0.
    const ready = tempDir();
    const reader = sh(`exec 3< ${q(dir)}/svc/feed && touch ${q(ready)}/reader && cat <&3`, { timeoutMs: 20_000 });
    const inside = sh(`cd ${q(dir)}/data && touch ${q(ready)}/inside && while [ ! -e ${q(ready)}/dead ]; do sleep 0.05; done; ls && cat kept.txt`, {
      timeoutMs: 20_000,
    });
    await until(async () => existsSync(`${ready}/reader`) && existsSync(`${ready}/inside`), 15_000, 'both shells in place');
    server.kill('SIGKILL');
    expect(await server.exited).toBe('SIGKILL');
    await writeFile(join(ready, 'dead'), '');

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

  it('SIGKILL during writes: every byte fsync or close returned for is kept; the file is never corrupt', async () => {
    const home = tempDir();
    const dir = await mountPoint();
    dirs.push(dir);
    const server = await start(home, dir);
    // Byte p of the file is a function of p: any prefix can be checked, a torn or misplaced write cannot pass.
    const pattern = `def block(at, n):\n    return bytes(((p * 7) + (p >> 16)) & 255 for p in range(at, at + n))\n`;
    const marker = join(tempDir(), 'synced');
    const writer = sh(
      `${PYTHON} -u -c ${q(`import os, time\n${pattern}
open('${dir}/data/closed.bin', 'wb').write(block(0, 100000))
f = os.open('${dir}/data/synced.bin', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
at = 0
for i in range(48):
    at += os.write(f, block(at, 65536))
os.fsync(f)
print('synced', at, flush=True)
open('${marker}', 'w').write('synced')
while True:
    at += os.write(f, block(at, 65536))
    time.sleep(0.01)
`)}`,
      { timeoutMs: 20_000 },
    );
    // Killed as soon as fsync returned: the writes after it are still held (at most a second).
    await until(() => existsSync(marker), 15_000, 'the fsync');
    server.kill('SIGKILL');
    await server.exited;
    const w = await writer;
    expect(w.stdout).toMatch(/^synced 3145728\n/);
    await until(async () => (await mountedType(dir)) === undefined, 15_000, 'the dead mount to go away');

    await start(home, dir);
    const check = await ok(
      `${PYTHON} -c ${q(`import os\n${pattern}
for name, least in (('closed.bin', 100000), ('synced.bin', 3145728)):
    data = open('${dir}/data/' + name, 'rb').read()
    assert len(data) >= least, (name, len(data))
    assert data == block(0, len(data)), name + ' is corrupt'
    print(name, len(data) >= least)
`)}`,
    );
    expect(check).toBe('closed.bin True\nsynced.bin True\n');
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
    // Gone before the server dies: a helper still alive at that moment would unmount as it should.
    await until(() => dead(Number(helper)), 5000, 'the helper to die');
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

describe('agentctl serve --mount killed while a process it started lives on', () => {
  it('a daemon left by an exec program does not keep the dead mount: it goes away at once', async () => {
    await ensureBuilt();
    const home = tempDir();
    const dir = await mountPoint();
    dirs.push(dir);
    const marks = tempDir();
    const server = await startServe(home, ['--mount', dir]);
    let daemon: number | undefined;
    try {
      const env = { AGENT9_HOME: home };
      // The tick's command leaves a process of its own session running, as a program that starts a
      // server would (it waits until the daemon has left its process group, which goes when it exits).
      // The daemon inherits what the agent9 server let it inherit.
      const pid = `${marks}/pid`;
      const command = `setsid sh -c 'echo $$ > ${pid}.new && mv ${pid}.new ${pid}; exec sleep 300' </dev/null >/dev/null 2>&1 & while [ ! -e ${pid} ]; do sleep 0.05; done; echo started`;
      // Its first tick (at creation) runs it.
      expect((await agentctl(['agents', 'create', 'bob', '--command', command], { env })).code).toBe(0);
      await until(() => existsSync(pid), 15_000, 'the daemon');
      daemon = Number(readFileSync(pid, 'utf8').trim());
      expect(await mountedType(dir)).toBe('fuse.agent9');
      await server.stop('SIGKILL');
      await until(async () => (await mountedType(dir)) === undefined, 5000, 'the dead mount to go away while the daemon lives');
      expect(dead(daemon)).toBe(false);
    } finally {
      if (daemon) process.kill(daemon, 'SIGKILL');
      await server.stop('SIGKILL');
    }
  }, 60_000);
});
