/**
 * limits.memory_bytes on a real FUSE mount, the way users meet it: `dd`, `echo >>` and `truncate` past
 * the quota fail with "Disk quota exceeded" (also as a non-root user), `df` and `stat -f` show the
 * limit and the use, lowering the limit deletes nothing, and an exec program's work dir counts.
 * Every command runs in a child shell (the mount is served by this process).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmdir } from 'node:fs/promises';
import { Agent9 } from '../../src/server/agent9.js';
import { mountServer, type FuseMount } from '../../src/fuse/index.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountPoint, ok, q, sh, until } from './helpers.js';

const MiB = 1024 * 1024;
let a9: Agent9;
let mount: FuseMount;
let D: string;

beforeAll(async () => {
  a9 = await Agent9.open({ home: tempDir() });
  mount = await mountServer(a9, await mountPoint(), { allowOther: true });
  D = mount.dir;
});

afterAll(async () => {
  await mount?.unmount();
  if (mount) await rmdir(mount.dir).catch(() => undefined);
  await a9?.close();
  cleanup();
});

const createAgent = (spec: object) => ok(`exec 3<> ${q(D)}/agents/new; cat >&3; cat <&3`, { input: JSON.stringify(spec) });

interface MemoryStatus {
  limit_bytes: number;
  used_bytes: number;
  free_bytes: number;
  memory_bytes: number;
  work_dir_bytes: number;
}
const memoryStatus = async (id: string) => (JSON.parse(await ok(`cat ${q(D)}/agents/${id}/status`)) as { memory: MemoryStatus }).memory;

/** `stat -f`: block size, blocks, free blocks, available blocks. */
async function statf(path: string): Promise<{ bsize: number; blocks: number; bfree: number; bavail: number }> {
  const [bsize, blocks, bfree, bavail] = (await ok(`stat -f -c '%S %b %f %a' ${q(path)}`)).trim().split(' ').map(Number);
  return { bsize: bsize!, blocks: blocks!, bfree: bfree!, bavail: bavail! };
}

/** `df -B1`: size, used, available in bytes. */
async function df(path: string, asUser = ''): Promise<{ size: number; used: number; avail: number }> {
  const out = await ok(`${asUser} df -B1 --output=size,used,avail ${q(path)} | tail -n 1`);
  const [size, used, avail] = out.trim().split(/\s+/).map(Number);
  return { size: size!, used: used!, avail: avail! };
}

describe('the data quota on a FUSE mount', () => {
  it('dd, echo >> and truncate past limits.memory_bytes fail with "Disk quota exceeded"; df shows it; rm frees it', async () => {
    await createAgent({ name: 'q', program: 'echo', limits: { memory_bytes: MiB } });
    const M = `${D}/agents/q/memory`;
    expect(await df(M)).toEqual({ size: MiB, used: 0, avail: MiB });

    // 128 KiB per write: 8 fill the quota exactly, the 9th is refused and leaves the file at 1 MiB.
    const dd = await sh(`dd if=/dev/zero of=${q(M)}/a bs=128k count=12`);
    expect(dd.code).not.toBe(0);
    expect(dd.stderr).toMatch(/Disk quota exceeded/);
    expect((await ok(`stat -c %s ${q(M)}/a`)).trim()).toBe(String(MiB));
    expect(await df(M)).toEqual({ size: MiB, used: MiB, avail: 0 });
    expect(await statf(M)).toEqual({ bsize: 4096, blocks: 256, bfree: 0, bavail: 0 });

    const append = await sh(`echo more >> ${q(M)}/a`);
    expect(append.stderr).toMatch(/Disk quota exceeded/);
    const grow = await sh(`truncate -s 2M ${q(M)}/b`);
    expect(grow.stderr).toMatch(/Disk quota exceeded/);
    // A new empty file and a directory take no bytes.
    await ok(`touch ${q(M)}/empty && mkdir ${q(M)}/dir`);
    expect((await ok(`stat -c %s ${q(M)}/a`)).trim()).toBe(String(MiB));

    const status = await memoryStatus('q');
    expect(status).toMatchObject({ limit_bytes: MiB, used_bytes: MiB, free_bytes: 0, memory_bytes: MiB, work_dir_bytes: 0 });

    // Renames never add bytes: moving the full file works at the limit, and so does replacing it by
    // the empty one (rename over), which frees its bytes.
    await ok(`mv ${q(M)}/a ${q(M)}/dir/full`);
    expect(await df(M)).toMatchObject({ used: MiB, avail: 0 });
    await ok(`mv ${q(M)}/empty ${q(M)}/dir/full`);
    expect(await df(M)).toMatchObject({ used: 0, avail: MiB });

    // Shrinking and removing always work.
    await ok(`head -c 1M /dev/zero > ${q(M)}/a`);
    await ok(`truncate -s 512K ${q(M)}/a`);
    expect(await df(M)).toMatchObject({ used: 512 * 1024, avail: 512 * 1024 });
    await ok(`rm ${q(M)}/a`);
    expect(await df(M)).toMatchObject({ used: 0, avail: MiB });
    await ok(`printf 'fits now' > ${q(M)}/a`);
    expect(await ok(`cat ${q(M)}/a`)).toBe('fits now');
  });

  it('other paths report the disk, not a quota', async () => {
    const inbox = await df(`${D}/agents/q/inbox`);
    expect(inbox.size).toBeGreaterThan(16 * MiB);
    expect(inbox.size).not.toBe(MiB);
  });

  it('lowering the limit below the use refuses growth and deletes nothing', async () => {
    await createAgent({ name: 'low', program: 'echo', limits: { memory_bytes: MiB } });
    const M = `${D}/agents/low/memory`;
    await ok(`head -c 600000 /dev/urandom > ${q(M)}/f`);
    await ok(`echo '{"limits": {"memory_bytes": 300000}}' > ${q(D)}/agents/low/config`);
    expect((await ok(`stat -c %s ${q(M)}/f`)).trim()).toBe('600000');
    expect((await sh(`echo x >> ${q(M)}/f`)).stderr).toMatch(/Disk quota exceeded/);
    expect((await sh(`echo x > ${q(M)}/g`)).stderr).toMatch(/Disk quota exceeded/);
    expect(await df(M)).toMatchObject({ size: Math.ceil(300000 / 4096) * 4096, avail: 0 });
    // Rewriting the same size does not grow it; shrinking does.
    await ok(`truncate -s 100000 ${q(M)}/f`);
    await ok(`echo x >> ${q(M)}/f`);
    expect((await ok(`stat -c %s ${q(M)}/f`)).trim()).toBe('100002');
  });

  it('holds for a non-root user too (allow_other, setpriv nobody)', async () => {
    await createAgent({ name: 'nb', program: 'echo', limits: { memory_bytes: 256 * 1024 } });
    const M = `${D}/agents/nb/memory`;
    await ok(`mkdir ${q(M)}/shared && chmod 0777 ${q(M)}/shared`);
    const nobody = 'setpriv --reuid=65534 --regid=65534 --clear-groups';
    const dd = await sh(`${nobody} dd if=/dev/zero of=${q(M)}/shared/x bs=64k count=8`);
    expect(dd.stderr).toMatch(/Disk quota exceeded/);
    // The creator owns what it creates (the binding passes the caller).
    expect((await ok(`${nobody} stat -c '%s %u' ${q(M)}/shared/x`)).trim()).toBe(`${256 * 1024} 65534`);
    expect(await df(M, nobody)).toEqual({ size: 256 * 1024, used: 256 * 1024, avail: 0 });
    await ok(`${nobody} rm ${q(M)}/shared/x`);
  });

  it("an exec program's work dir counts against the quota once its tick ends", async () => {
    const program = { type: 'exec', command: 'head -c 700000 /dev/zero > junk.bin; echo {}' };
    await createAgent({ name: 'w', program, limits: { memory_bytes: MiB } });
    await ok(`echo tick > ${q(D)}/agents/w/ctl`);
    await until(async () => (await memoryStatus('w')).work_dir_bytes === 700000, 10_000, 'the work dir to be counted');
    const M = `${D}/agents/w/memory`;
    expect(await df(M)).toMatchObject({ size: MiB, used: 700416, avail: MiB - 700416 });
    const dd = await sh(`dd if=/dev/zero of=${q(M)}/m bs=128k count=4`);
    expect(dd.stderr).toMatch(/Disk quota exceeded/);
    // 2 x 128 KiB fit next to the 700,000 bytes of the work dir, the third does not.
    expect((await ok(`stat -c %s ${q(M)}/m`)).trim()).toBe(String(256 * 1024));
    expect(await memoryStatus('w')).toMatchObject({ used_bytes: 700000 + 256 * 1024, memory_bytes: 256 * 1024, work_dir_bytes: 700000 });
  });
});
