/**
 * Without /dev/fuse, libfuse3 or our addon the mount says clearly why and nothing crashes. Each case runs a probe in
 * a private mount namespace (unshare -m) where the library or the device is hidden.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fuseUnavailableReason } from '../../src/fuse/index.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountPoint, q, sh } from './helpers.js';

const root = new URL('../../', import.meta.url).pathname;
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rmdir(d).catch(() => undefined);
  cleanup();
});

async function probe(hide: string): Promise<{ reason: string | null; mountError: { name: string; message: string } | null }> {
  const dir = await mountPoint();
  dirs.push(dir);
  const r = await sh(`unshare -m sh -c ${q(`${hide} && exec ${q(process.execPath)} --import ./test/support/ts-loader.mjs test/fuse/probe-mount.ts ${q(dir)}`)}`, {
    cwd: root,
    timeoutMs: 30_000,
  });
  if (r.code !== 0) throw new Error(`probe failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as never;
}

describe('FUSE missing', () => {
  it('without libfuse3: a clear reason, and mounting throws FuseUnavailableError', async () => {
    const lib = (await sh('readlink -f /lib/x86_64-linux-gnu/libfuse3.so.3')).stdout.trim();
    const out = await probe(`mount --bind /dev/null ${q(lib)}`);
    expect(out.reason).toMatch(/^libfuse3 cannot be loaded \(install it: apt-get install libfuse3-3\)/);
    expect(out.mountError?.name).toBe('FuseUnavailableError');
    expect(out.mountError?.message).toMatch(/^FUSE is not available: libfuse3 cannot be loaded/);
  });

  it('without the addon built: a clear reason naming the setup', async () => {
    const addon = join(root, 'native/build/Release/agent9_fuse.node');
    const out = await probe(`mount --bind /dev/null ${q(addon)}`);
    expect(out.reason).toMatch(/^the FUSE addon cannot be loaded \(build it: npm run setup\)/);
    expect(out.mountError?.name).toBe('FuseUnavailableError');
  });

  it('when /dev/fuse is not the FUSE device', async () => {
    const fake = join(tempDir(), 'not-a-device');
    await writeFile(fake, '');
    const out = await probe(`mount --bind ${q(fake)} /dev/fuse`);
    expect(out.reason).toBe('/dev/fuse is not the FUSE device (not a character device)');
    expect(out.mountError?.name).toBe('FuseUnavailableError');
  });

  it('when the device does not exist', async () => {
    expect(await fuseUnavailableReason('/nonexistent/fuse')).toMatch(/^\/nonexistent\/fuse does not exist \(load the fuse kernel module/);
  });

  it('on this machine FUSE is available', async () => {
    expect(await fuseUnavailableReason()).toBeUndefined();
  });
});
