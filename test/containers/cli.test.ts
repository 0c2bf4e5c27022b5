/** agentctl containers run|exec|ls|stop as subprocesses against `agentctl serve` in another process. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup, openStorage, tempDir } from '../helpers.js';
import { agentctl, ensureBuilt, startServe, type ServeProcess } from '../cli/helpers.js';
import { removeLabelled, requireEngine } from './engine.js';

let provider: DockerProvider;
let serve: ServeProcess;
let env: Record<string, string>;
let home: string | undefined;

beforeAll(async () => {
  provider = await requireEngine();
  await ensureBuilt();
  home = tempDir();
  serve = await startServe(home, ['--demo']);
  env = { AGENT9_HOME: home };
}, 240_000);

afterAll(async () => {
  await serve?.stop('SIGTERM');
  // Whatever a failed test left running: the containers labelled with this server's instance.
  if (home) {
    const storage = openStorage(home);
    const instance = storage.metaGet('containers.instance');
    if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  }
  cleanup();
});

describe('agentctl containers', () => {
  it('run streams stdout and stderr apart and exits with the command exit code', async () => {
    const r = await agentctl(['containers', 'run', '--agent', 'demo', 'agent9/busybox', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], { env });
    expect(r).toMatchObject({ code: 3, stdout: 'out\n' });
    expect(r.stderr).toContain('err\n');
    const py = await agentctl(['containers', 'run', '-a', 'demo', '--memory', '64', 'agent9/python', '--', 'python3', '-c', 'print(6*7)'], { env });
    expect(py).toMatchObject({ code: 0, stdout: '42\n' });
  });

  it('run reports a memory kill as 137 and a refused request with its error code', async () => {
    const oom = await agentctl(['containers', 'run', '-a', 'demo', '--memory', '32', 'agent9/busybox', '--', 'sh', '-c', 'x=$(head -c 100000000 /dev/zero | tr "\\0" a)'], { env });
    expect(oom.code).toBe(137);
    expect(oom.stderr).toContain('out of memory');
    const noImage = await agentctl(['containers', 'run', '-a', 'demo', 'no/such', '--', 'true'], { env });
    expect(noImage.code).toBe(7);
    expect(noImage.stderr).toContain('EINVAL');
    const noAgent = await agentctl(['containers', 'run', 'agent9/busybox', '--', 'true'], { env });
    expect(noAgent.code).toBe(7);
    expect(noAgent.stderr).toContain('--agent');
  });

  it('exec, ls and stop work on a running session', async () => {
    const started = await agentctl(['containers', 'run', '-a', 'demo', '--detach', 'agent9/busybox', '--', 'sleep', '300'], { env });
    expect(started.code).toBe(0);
    const sid = started.stdout.trim();
    expect(sid).toMatch(/^[a-z0-9]{12}$/);
    const ex = await agentctl(['containers', 'exec', '-a', 'demo', sid, '--', 'sh', '-c', 'echo in; exit 5'], { env });
    expect(ex).toMatchObject({ code: 5, stdout: 'in\n' });
    const piped = await agentctl(['containers', 'exec', '-a', 'demo', '--stdin', sid, '--', 'wc', '-c'], { env, input: 'twelve bytes' });
    expect(piped.stdout.trim()).toBe('12');
    const ls = await agentctl(['containers', 'ls', '-a', 'demo'], { env });
    expect(ls.stdout).toContain(sid);
    expect(ls.stdout).toContain('running');
    const lsJson = JSON.parse((await agentctl(['--json', 'containers', 'ls', '-a', 'demo', '--all'], { env })).stdout) as { session_id: string }[];
    expect(lsJson.length).toBeGreaterThanOrEqual(3);
    const stop = await agentctl(['containers', 'stop', '-a', 'demo', sid], { env });
    expect(stop).toMatchObject({ code: 0, stdout: `${sid} stopped\n` });
    expect((await agentctl(['containers', 'ls', '-a', 'demo'], { env })).stdout).not.toContain(sid);
    const late = await agentctl(['containers', 'exec', '-a', 'demo', sid, '--', 'true'], { env });
    expect(late.code).toBe(7);
  });

  it('a server killed with SIGKILL restarts with its sessions accounted for and its orphans removed', async () => {
    const home2 = tempDir();
    const env2 = { AGENT9_HOME: home2 };
    let server = await startServe(home2, ['--demo']);
    let instance: string | undefined;
    try {
      const keep = JSON.parse((await agentctl(['call', '/agents/demo/containers/new', JSON.stringify({ image: 'agent9/busybox', kind: 'interactive' })], { env: env2 })).stdout) as { session_id: string };
      const lost = (await agentctl(['containers', 'run', '-a', 'demo', '-d', 'agent9/busybox', '--', 'sh', '-c', 'echo begun; sleep 300'], { env: env2 })).stdout.trim();
      expect((await agentctl(['cat', `/agents/demo/containers/sessions/${keep.session_id}/status`], { env: env2 })).stdout).toContain('"status": "running"');
      expect(await server.stop('SIGKILL')).not.toBe(0);

      // What a crash between creating a container and recording it would leave: a container of this server, no record.
      const storage = openStorage(home2);
      instance = storage.metaGet('containers.instance')!;
      storage.close();
      const ghost = await provider.createSession({
        sessionId: 'ghost',
        image: 'agent9/busybox',
        env: {},
        workdir: '/workspace',
        memoryMb: 16,
        cpuCores: 0.1,
        pids: 8,
        diskMb: 4,
        network: false,
        networkMode: 'bridge',
        labels: { 'agent9.instance': instance, 'agent9.session': 'ghost0000000', 'agent9.agent': 'demo' },
      });

      server = await startServe(home2, ['--demo']);
      const all = JSON.parse((await agentctl(['--json', 'containers', 'ls', '-a', 'demo', '--all'], { env: env2 })).stdout) as { session_id: string; status: string; error: { message: string } | null }[];
      const byId = Object.fromEntries(all.map((r) => [r.session_id, r]));
      expect(byId[keep.session_id]?.status).toBe('running');
      expect(byId[lost]?.status).toBe('failed');
      expect(byId[lost]?.error?.message).toMatch(/server restarted/);
      expect((await agentctl(['cat', `/agents/demo/containers/sessions/${lost}/output`], { env: env2 })).stdout).toContain('begun');
      for (let i = 0; i < 50 && (await provider.inspect(ghost.containerId)) !== undefined; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await provider.inspect(ghost.containerId)).toBeUndefined();
      expect(await provider.list({ 'agent9.session': lost })).toEqual([]);
      // The adopted session still takes commands.
      const ex = await agentctl(['containers', 'exec', '-a', 'demo', keep.session_id, '--', 'echo', 'still here'], { env: env2 });
      expect(ex).toMatchObject({ code: 0, stdout: 'still here\n' });
      await agentctl(['containers', 'stop', '-a', 'demo', '--kill', keep.session_id], { env: env2 });
    } finally {
      await server.stop('SIGTERM');
      if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
    }
  }, 60_000);
});
