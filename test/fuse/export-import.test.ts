/**
 * Export and import on the mount, with shell commands in child processes: `cat` of `export` reads the
 * spooled bundle, and the bundle written to `import` (one handle: write, then read the answer) is
 * staged as the writes arrive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent9 } from '../../src/server/agent9.js';
import { mountServer, type FuseMount } from '../../src/fuse/index.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountPoint, ok, q, sh } from './helpers.js';

let a9: Agent9;
let mount: FuseMount;
let D: string;

beforeAll(async () => {
  a9 = await Agent9.open({ home: tempDir(), compute: false, containers: false });
  mount = await mountServer(a9, await mountPoint());
  D = mount.dir;
});

afterAll(async () => {
  await mount?.unmount();
  await rmdir(mount.dir).catch(() => undefined);
  await a9?.close();
  cleanup();
});

describe('export and import through FUSE', () => {
  it('cat export > file; rmdir; write the file to import and read the answer: the agent is back, memory files intact', async () => {
    const scratch = tempDir();
    await ok(`exec 3<> ${q(D)}/agents/new; echo '{"name": "fz", "program": "echo"}' >&3; cat <&3 >/dev/null`);
    await ok(`head -c 3000000 /dev/urandom > ${q(scratch)}/blob && cp ${q(scratch)}/blob ${q(D)}/agents/fz/memory/blob.bin`);
    const bundle = join(scratch, 'fz.bundle');
    await ok(`cat ${q(D)}/agents/fz/export > ${q(bundle)}`);
    expect(await ok(`head -c 200 ${q(bundle)}`)).toContain('"version":2');
    // Open only while being read: the spool directory is empty again.
    expect(await ok(`ls -A ${q(join(a9.home, 'tmp', 'export'))}`)).toBe('');
    await ok(`rmdir ${q(D)}/agents/fz`);
    const status = JSON.parse(await ok(`exec 3<> ${q(D)}/agents/import; cat ${q(bundle)} >&3; cat <&3`)) as { id: string };
    expect(status.id).toBe('fz');
    await ok(`cmp ${q(scratch)}/blob ${q(D)}/agents/fz/memory/blob.bin`);
    // A bundle cut short imports nothing, and says so on the write or the read.
    await ok(`head -n 3 ${q(bundle)} > ${q(scratch)}/cut`);
    const cut = await sh(`exec 3<> ${q(D)}/agents/import; { echo '{"id": "fz-cut"}'; cat ${q(scratch)}/cut; } >&3; cat <&3`);
    expect(cut.code).not.toBe(0);
    expect(await ok(`ls ${q(D)}/agents`)).not.toContain('fz-cut');
  }, 60_000);
});
