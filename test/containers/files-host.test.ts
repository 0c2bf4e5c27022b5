/**
 * files/ acts from the host, on the container's workdir: links are followed as long as they stay in it,
 * however they are written; it acts with the session user's permissions (the server is root and applies
 * them itself): what it creates belongs to that user, what that user may not read, write, remove, chmod
 * or chown is refused as the kernel would refuse it. An engine on another machine gets ENOSYS.
 */
import { describe, expect, it } from 'vitest';
import { readAll, writeAll } from '../../src/fs/ops.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import type { ContainerProvider } from '../../src/services/containers/providers/types.js';
import { admin, expectCode, text } from '../helpers.js';
import { BUSYBOX, removeLabelled } from './engine.js';
import { AGENT, makeRig, onEngineRig, type Rig } from './setup.js';

let provider: DockerProvider;
let rig: Rig;

onEngineRig((p, r) => {
  provider = p;
  rig = r;
});

async function session(r: Rig, extra: Record<string, unknown>): Promise<string> {
  const sid = (await r.call('/containers/new', { image: BUSYBOX, kind: 'interactive', ...extra }))['session_id'] as string;
  await r.engine.containerOf(AGENT, sid, '/');
  return sid;
}

async function sh(sid: string, command: string, user?: string): Promise<string> {
  const r = await rig.call(`/containers/sessions/${sid}/exec/new`, { command, wait: true, ...(user ? { user } : {}) });
  expect(r['exit_code']).toBe(0);
  return r['stdout'] as string;
}

describe('links in the workdir', () => {
  it('follows those that stay inside, however written, and refuses the rest', async () => {
    const sid = await session(rig, {});
    const F = `/containers/sessions/${sid}/files`;
    await sh(
      sid,
      'echo in > inside; mkdir d; ln -s /workspace/inside abs; ln -s ../workspace/inside up; ln -s d/../inside deep; ' +
        'ln -s abs chain; ln -s loop loop; ln -s ../tmp out; ln -s .. parent; ln -s . self; ln -s nowhere dang; ln -s /workspace/d absdir; ln -s absdir/../inside back',
    );
    for (const name of ['inside', 'abs', 'up', 'deep', 'chain', 'self/inside', 'back']) {
      expect(text(await readAll(rig.ns, `${F}/${name}`, admin))).toBe('in\n');
    }
    await expectCode(readAll(rig.ns, `${F}/loop`, admin), 'EINVAL', 'too many levels');
    await expectCode(readAll(rig.ns, `${F}/out/x`, admin), 'EINVAL', 'outside the workdir');
    await expectCode(rig.ns.readdir(`${F}/parent`, admin), 'EINVAL', 'outside the workdir');
    expect((await rig.ns.readdir(`${F}/self`, admin)).map((e) => e.name)).toContain('inside');
    // A dangling link is itself (as `ls -l` shows it); writing through it makes its target.
    expect(await rig.ns.stat(`${F}/dang`, admin)).toMatchObject({ type: 'file', size: 'nowhere'.length });
    await writeAll(rig.ns, `${F}/dang`, 'made\n', admin);
    expect(await sh(sid, 'cat nowhere; readlink dang')).toBe('made\nnowhere\n');
    // Links pointing out are listed as themselves; removing one removes the link.
    const listed = await rig.ns.readdir(F, admin);
    expect(listed.find((e) => e.name === 'out')?.stat).toMatchObject({ type: 'file', size: '../tmp'.length });
    expect(listed.find((e) => e.name === 'absdir')?.stat.type).toBe('dir');
    await rig.ns.remove(`${F}/absdir`, admin);
    expect(await sh(sid, 'ls -d d absdir 2>&1; true')).toContain('absdir: No such file');
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('never follows a session that moves its workdir away and puts a link or a directory in its place', async () => {
    const sid = await session(rig, { workdir: '/tmp/a/w' });
    const F = `/containers/sessions/${sid}/files`;
    await writeAll(rig.ns, `${F}/note`, 'in the workdir\n', admin);
    expect(await sh(sid, 'cat /tmp/a/w/note')).toBe('in the workdir\n');
    // /tmp is the session's own: it can move the directory holding the workdir's mount away.
    await sh(sid, 'cd / && mv /tmp/a /tmp/moved && mkdir /tmp/a && ln -s /etc /tmp/a/w');
    await expectCode(readAll(rig.ns, `${F}/passwd`, admin), 'EINVAL', 'a link the session made');
    await sh(sid, 'rm /tmp/a/w && mkdir /tmp/a/w && echo decoy > /tmp/a/w/note');
    await expectCode(readAll(rig.ns, `${F}/note`, admin), 'ENOENT', 'not where its container mounted it');
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });
});

describe("files/ as the session's user", () => {
  it('gives what it makes to the user and refuses what the user may not do', async () => {
    const sid = await session(rig, { user: '1000:1000' });
    const F = `/containers/sessions/${sid}/files`;
    // Root (an exec as user 0) opens the workdir to everyone (sticky, as /tmp; the engine makes it
    // root's, 755), and leaves a secret, a locked directory and a readable file in it.
    await sh(sid, 'chmod 1777 . && mkdir -p locked && echo s > secret && chmod 600 secret && echo r > locked/readme && chmod 755 locked', '0');

    await writeAll(rig.ns, `${F}/mine.txt`, 'mine\n', admin);
    await rig.ns.mkdir(`${F}/dir`, 0o750, admin);
    await writeAll(rig.ns, `${F}/dir/inner`, 'x', admin, { append: true });
    expect(await sh(sid, "stat -c '%n %u:%g %a' mine.txt dir dir/inner")).toBe('mine.txt 1000:1000 644\ndir 1000:1000 750\ndir/inner 1000:1000 644\n');
    expect(await rig.ns.stat(`${F}/mine.txt`, admin)).toMatchObject({ uid: 1000, gid: 1000, size: 5 });

    expect(text(await readAll(rig.ns, `${F}/locked/readme`, admin))).toBe('r\n');
    await expectCode(readAll(rig.ns, `${F}/secret`, admin), 'EACCES', `${F}/secret`);
    await expectCode(writeAll(rig.ns, `${F}/locked/new`, 'x', admin), 'EACCES', 'locked/new');
    await expectCode(writeAll(rig.ns, `${F}/locked/readme`, 'x', admin), 'EACCES', 'locked/readme');
    await expectCode(rig.ns.remove(`${F}/locked/readme`, admin), 'EACCES');
    await expectCode(rig.ns.mkdir(`${F}/locked/sub`, 0o755, admin), 'EACCES');
    await expectCode(rig.ns.rename(`${F}/locked/readme`, `${F}/stolen`, admin), 'EACCES', 'locked/readme');
    await expectCode(rig.ns.setattr(`${F}/secret`, { mode: 0o666 }, admin), 'EPERM', 'owner');
    await expectCode(rig.ns.setattr(`${F}/mine.txt`, { uid: 0 }, admin), 'EPERM');
    // Its own files it may change: mode and times.
    const st = await rig.ns.setattr(`${F}/mine.txt`, { mode: 0o600, mtime: 1_000_000_000_000 }, admin);
    expect(st).toMatchObject({ mode: 0o600, mtime: 1_000_000_000_000 });
    // A file of its own that it made read-only is read-only to it, as to `echo >` in the container.
    await rig.ns.setattr(`${F}/mine.txt`, { mode: 0o400 }, admin);
    await expectCode(writeAll(rig.ns, `${F}/mine.txt`, 'again', admin), 'EACCES');
    expect(await sh(sid, 'cat secret locked/readme; ls locked', '0')).toBe('s\nr\nreadme\n');
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('writing over a file keeps its owner (root writes a file of the user)', async () => {
    const sid = await session(rig, {});
    const F = `/containers/sessions/${sid}/files`;
    await sh(sid, 'echo old > theirs && chown 1000:1000 theirs && chmod 640 theirs');
    await writeAll(rig.ns, `${F}/theirs`, 'new\n', admin);
    expect(await sh(sid, "stat -c '%u:%g %a' theirs; cat theirs")).toBe('1000:1000 640\nnew\n');
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('refuses files/ with ENOSYS when the engine runs on another machine', async () => {
    // Such an engine reports its own machine's pids; here that number is some other process (ours).
    const remote: ContainerProvider = Object.assign(Object.create(provider) as DockerProvider, { initPid: async () => process.pid });
    const other = makeRig({ providers: [remote] });
    try {
      const sid = await session(other, {});
      const F = `/containers/sessions/${sid}/files`;
      await expectCode(readAll(other.ns, `${F}/x`, admin), 'ENOSYS', 'on this machine');
      await expectCode(other.ns.readdir(F, admin), 'ENOSYS');
      // Everything else of the session works.
      const r = await other.call(`/containers/sessions/${sid}/exec/new`, { command: 'echo still here', wait: true });
      expect(r['stdout']).toBe('still here\n');
      await writeAll(other.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
    } finally {
      await other.engine.close();
      await removeLabelled(provider, { 'agent9.instance': other.engine.instanceId });
    }
  });
});
