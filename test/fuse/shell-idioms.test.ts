/**
 * Shell idioms on the server's own mount fail loudly (CONTRACT sections 4, 9, 15): command files check
 * each line at write(2), and writable views apply their JSON at the write that completes it, which
 * bash's builtin echo reports. Every command runs in a child process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmdir } from 'node:fs/promises';
import { mountServer, type FuseMount } from '../../src/fuse/index.js';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from '../http/served.js';
import { mountPoint, ok, q, sh } from './helpers.js';

let s: Served;
let mount: FuseMount;
let D: string; // the mount point
let A: string; // the demo agent's directory on it

beforeAll(async () => {
  s = await serveAgent9();
  mount = await mountServer(s.a9, await mountPoint(), { allowOther: true });
  D = mount.dir;
  A = `${D}/agents/demo`;
  await ok(`echo '{"name": "demo", "program": "echo"}' > ${q(D)}/agents/new`);
  await ok(`echo 'needle in memory' > ${q(A)}/memory/notes.txt`);
});

afterAll(async () => {
  if (mount) {
    await mount.unmount();
    await rmdir(mount.dir).catch(() => undefined);
  }
  await s?.close();
  cleanup();
});

const state = async () => (JSON.parse(await ok(`cat ${q(A)}/status`)) as { state: string }).state;

describe('command files check each line at write(2)', () => {
  it("`echo bogus > ctl` fails at the write, with bash's own message and status; nothing of a bad message runs", async () => {
    const bad = await sh(`echo bogus > ${q(A)}/ctl`);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/echo: write error: Invalid argument/);
    // A good line before a bad one in the same message does not run either.
    const mixed = await sh(`printf 'stop\\nbogus\\n' > ${q(A)}/ctl`);
    expect(mixed.code).not.toBe(0);
    expect(mixed.stderr).toMatch(/Invalid argument/);
    expect(await state()).not.toBe('terminated');
    // Good lines work as before; `start` then `tick` in one message is fine (state is not checked early).
    await ok(`echo stop > ${q(A)}/ctl`);
    expect(await state()).toBe('terminated');
    await ok(`printf 'start\\ntick by hand\\n' > ${q(A)}/ctl`);
    expect(await state()).toBe('active');
  });

  it('the other command files do the same: deadletter/ctl (unknown id: ENOENT), a job ctl, a writable view', async () => {
    const unknown = await sh(`echo 'replay nosuch' > ${q(A)}/deadletter/ctl`);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/write error: No such file or directory/);
    const usage = await sh(`echo 'frob' > ${q(A)}/deadletter/ctl`);
    expect(usage.stderr).toMatch(/write error: Invalid argument/);
    const job = JSON.parse(await ok(`exec 3<> ${q(A)}/compute/new; echo '{"model": "echo", "prompt": "hi"}' >&3; cat <&3`)) as { job_id: string };
    const jobCtl = await sh(`echo frob > ${q(A)}/compute/jobs/${job.job_id}/ctl`);
    expect(jobCtl.stderr).toMatch(/write error: Invalid argument/);
    // A writable view (a JSON document) is applied by the write that completes it: a bad field fails that write.
    const before = await ok(`cat ${q(A)}/inbox.policy`);
    const view = await sh(`echo '{"max_depth": 0}' > ${q(A)}/inbox.policy`);
    expect(view.code).toBe(1);
    expect(view.stderr).toMatch(/write error: Invalid argument/);
    expect(await ok(`cat ${q(A)}/inbox.policy`)).toBe(before);
    await ok(`echo '{"max_depth": 50}' > ${q(A)}/inbox.policy`);
    expect(JSON.parse(await ok(`cat ${q(A)}/inbox.policy`))).toMatchObject({ max_depth: 50 });
  });
});
