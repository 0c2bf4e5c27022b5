/**
 * /containers through the FUSE mount, with shell commands in child processes (the test process serves
 * the mount): a session from the `new` call file, its output with cat, the workdir as a real tree
 * (mkdir, echo >, >>, ls -l, cat, mv, rm, rmdir), an exec, stdin, ctl, and escapes refused.
 */
import { rmdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountServer, type FuseMount } from '../../src/fuse/index.js';
import { Agent9 } from '../../src/server/agent9.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountPoint, ok, q, sh } from '../fuse/helpers.js';
import { removeLabelled, requireEngine } from './engine.js';

let provider: DockerProvider;
let a9: Agent9;
let mount: FuseMount;
let C: string;

beforeAll(async () => {
  provider = await requireEngine();
  a9 = await Agent9.open({ home: tempDir(), scheduler: false });
  mount = await mountServer(a9, await mountPoint());
  await ok(`exec 3<> ${q(mount.dir)}/agents/new; cat >&3; cat <&3`, { input: JSON.stringify({ name: 'bob', program: 'echo' }) });
  C = `${mount.dir}/agents/bob/containers`;
});

afterAll(async () => {
  if (mount) {
    await mount.unmount();
    await rmdir(mount.dir).catch(() => undefined);
  }
  const instance = a9?.containers?.instanceId;
  await a9?.close();
  if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  cleanup();
});

/** Writes a request to a call file and prints the answer, as a shell does: `exec 3<>f; cat >&3; cat <&3`. */
async function call(path: string, request: unknown): Promise<Record<string, unknown>> {
  const body = typeof request === 'string' ? request : JSON.stringify(request);
  return JSON.parse(await ok(`exec 3<> ${q(path)}; cat >&3; cat <&3`, { input: body })) as Record<string, unknown>;
}

describe('/containers on the mount', () => {
  it('lists its files', async () => {
    expect((await ok(`ls ${q(C)}`)).split('\n').filter(Boolean)).toEqual(['new', 'policy', 'providers', 'sessions', 'usage']);
    expect(await ok(`cat ${q(C)}/providers/docker/health`)).toContain('"status": "available"');
  });

  it('runs a session from the new call file; cat follows its output to the end', async () => {
    const answer = await call(`${C}/new`, { image: 'agent9/busybox', commands: ['echo hello; sleep 0.3; echo oops >&2; exit 4'] });
    const sid = answer['session_id'] as string;
    const out = await ok(`cat ${q(C)}/sessions/${sid}/output`, { timeoutMs: 20_000 });
    expect(out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { stream: string; data: string }).data)).toEqual(['hello\n', 'oops\n']);
    await a9.containers!.waitFor(sid);
    const result = JSON.parse(await ok(`cat ${q(C)}/sessions/${sid}/result`)) as Record<string, unknown>;
    expect(result).toMatchObject({ status: 'complete', exit_code: 4, stdout: 'hello\n', stderr: 'oops\n' });
    expect((await ok(`ls ${q(C)}/sessions`)).split('\n')).toContain(sid);
    expect(await ok(`cat ${q(C)}/sessions/${sid}/exec/1/stdout`)).toBe('hello\n');
    // A result that is not ready yet is EAGAIN to a non-blocking read ("Resource temporarily unavailable");
    // a blocking `cat` waits for it (result-wait.test.ts).
    const slow = (await call(`${C}/new`, { image: 'agent9/busybox', commands: ['sleep 2'] }))['session_id'] as string;
    const early = await sh(`dd if=${q(C)}/sessions/${slow}/result iflag=nonblock status=none`);
    expect(early.code).not.toBe(0);
    expect(early.stderr).toContain('Resource temporarily unavailable');
    await ok(`echo kill > ${q(C)}/sessions/${slow}/ctl`);
  });

  it('echo > new reports a refusal on the write itself (bash ignores errors of close)', async () => {
    const blocked = await sh(`echo '{"image": "agent9/not-allowed"}' > ${q(C)}/new`);
    expect(blocked.code).not.toBe(0);
    expect(blocked.stderr).toMatch(/Permission denied|Invalid argument|No such file/);
    await ok(`echo '{"day": 1}' > ${q(mount.dir)}/agents/bob/budget`);
    try {
      const broke = await sh(`echo '{"image": "agent9/busybox", "commands": ["true"]}' > ${q(C)}/new`);
      expect(broke.code).not.toBe(0);
      expect(broke.stderr).toContain('Disk quota exceeded');
    } finally {
      await ok(`echo '{"day": null}' > ${q(mount.dir)}/agents/bob/budget`);
    }
  });

  it('serves the workdir as a real tree to shell tools', async () => {
    const sid = (await call(`${C}/new`, { image: 'agent9/python', kind: 'interactive' }))['session_id'] as string;
    const F = `${C}/sessions/${sid}/files`;
    await ok(`mkdir ${q(F)}/src && echo 'print("hi from the mount")' > ${q(F)}/src/main.py && echo 'print(1+1)' >> ${q(F)}/src/main.py`);
    expect(await ok(`cat ${q(F)}/src/main.py`)).toBe('print("hi from the mount")\nprint(1+1)\n');
    expect(await ok(`ls ${q(F)}/src`)).toBe('main.py\n');
    expect(await ok(`stat -c '%F %s' ${q(F)}/src/main.py`)).toBe('regular file 38\n');

    const ex = await call(`${C}/sessions/${sid}/exec/new`, 'python3 src/main.py');
    expect(await ok(`cat ${q(C)}/sessions/${sid}/exec/${ex['exec_id']}/stdout`)).toBe('hi from the mount\n2\n');

    // What a command writes shows on the mount.
    await call(`${C}/sessions/${sid}/exec/new`, { command: 'mkdir -p out && seq 1 3 > out/n.txt', wait: true });
    expect(await ok(`cat ${q(F)}/out/n.txt`)).toBe('1\n2\n3\n');
    await ok(`mv ${q(F)}/out/n.txt ${q(F)}/n.txt && rmdir ${q(F)}/out && rm ${q(F)}/src/main.py && rmdir ${q(F)}/src`);
    expect(await ok(`ls -A ${q(F)}`)).toBe('n.txt\n');
    const notEmpty = await sh(`mkdir ${q(F)}/d && touch ${q(F)}/d/x && rmdir ${q(F)}/d`);
    expect(notEmpty.stderr).toContain('Directory not empty');

    // Escapes: a symlink out of the workdir is refused; `..` stays inside the mount's own tree.
    await call(`${C}/sessions/${sid}/exec/new`, { command: 'ln -s /etc etc', wait: true });
    const viaLink = await sh(`cat ${q(F)}/etc/passwd`);
    expect(viaLink.code).not.toBe(0);
    expect(viaLink.stderr).toContain('Invalid argument');
    expect((await sh(`cat ${q(F)}/../../../../../etc/hostname`)).code).not.toBe(0);

    await ok(`echo stop > ${q(C)}/sessions/${sid}/ctl`);
    expect(await ok(`cat ${q(C)}/sessions/${sid}/status`)).toContain('"status": "stopped"');
  });

  it('feeds stdin and kills through the exec files', async () => {
    const sid = (await call(`${C}/new`, { image: 'agent9/busybox', kind: 'interactive' }))['session_id'] as string;
    const E = `${C}/sessions/${sid}/exec`;
    const ex = await call(`${E}/new`, { command: 'cat; echo done', stdin: true });
    const base = `${E}/${ex['exec_id']}`;
    await ok(`echo first > ${q(base)}/stdin && echo second > ${q(base)}/stdin && echo eof > ${q(base)}/ctl`);
    expect(await ok(`cat ${q(base)}/stdout`)).toBe('first\nsecond\ndone\n');

    const long = await call(`${E}/new`, { command: 'sleep 300' });
    await ok(`echo kill > ${q(E)}/${long['exec_id']}/ctl`);
    await ok(`cat ${q(E)}/${long['exec_id']}/output`);
    expect(await ok(`cat ${q(E)}/${long['exec_id']}/result`)).toContain('"status": "killed"');
    await ok(`echo kill > ${q(C)}/sessions/${sid}/ctl`);
  });
});
