/**
 * agentctl and FUSE, as users run them: `agentctl serve --mount DIR` (in the server process), the same
 * on a machine without libfuse3 (it fails with the reason; with --mount-optional it says so and serves HTTP), and `agentctl mount DIR [--agent ID]`
 * against a running server (through its HTTP API).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ERROR_TABLE } from '../../src/fs/errors.js';
import { rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { mountedType } from '../../src/fuse/kernel-mount.js';
import { AGENTCTL, agentctl, agentctlBackground, ensureBuilt, startServe } from '../cli/helpers.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountPoint, ok, q, sh, until } from './helpers.js';

const dirs: string[] = [];
const stops: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  for (const d of dirs) {
    if ((await mountedType(d))?.startsWith('fuse')) await sh(`fusermount -u -z ${q(d)}`);
    await rmdir(d).catch(() => undefined);
  }
  cleanup();
});

async function dir(): Promise<string> {
  const d = await mountPoint();
  dirs.push(d);
  return d;
}

const outboxTexts = async (base: string) => {
  const names = (await ok(`ls ${q(base)}/outbox`)).split('\n').filter(Boolean);
  const out: { text?: string; to?: string }[] = [];
  for (const n of names) {
    const e = JSON.parse(await ok(`cat ${q(base)}/outbox/${n}`)) as { payload: { text?: string }; to?: string };
    out.push({ ...e.payload, ...(e.to ? { to: e.to } : {}) });
  }
  return out;
};

describe('agentctl serve --mount', () => {
  it('serves HTTP and the mount; the demo agent answers through it; SIGTERM unmounts', async () => {
    const home = tempDir();
    const d = await dir();
    const server = await startServe(home, ['--demo', '--mount', d]);
    stops.push(() => server.stop());
    expect(server.stderr()).toContain(`mounted at ${d}`);
    expect((JSON.parse(await ok(`cat ${q(d)}/agents/demo/status`)) as { id: string }).id).toBe('demo');
    await ok(`echo "hello demo" > ${q(d)}/agents/demo/inbox`);
    await until(async () => (await outboxTexts(`${d}/agents/demo`)).some((e) => e.text === 'hello demo'), 10_000, 'the answer');
    // The same files over HTTP.
    const viaHttp = await agentctl(['cat', '/agents/demo/status'], { env: { AGENT9_HOME: home } });
    expect(viaHttp.code).toBe(0);
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(await mountedType(d)).toBeUndefined();
  });

  it('--agent mounts that agent\u2019s own view, acting as the agent; an unknown agent is ENOENT', async () => {
    const home = tempDir();
    const d = await dir();
    const server = await startServe(home, ['--demo', '--mount', d, '--agent', 'demo']);
    stops.push(() => server.stop());
    expect(server.stderr()).toContain(`agent demo's own view mounted at ${d}`);
    expect((JSON.parse(await ok(`cat ${q(d)}/status`)) as { id: string }).id).toBe('demo');
    // The agent's own view: no global /agents, and admin-only files refuse the agent.
    expect((await sh(`ls ${q(d)}/agents`)).code).not.toBe(0);
    const ctl = await sh(`echo tick > ${q(d)}/ctl`);
    expect(ctl.stderr).toContain('Permission denied');
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(await mountedType(d)).toBeUndefined();

    const unknown = await agentctl(['serve', '--port', '0', '--mount', d, '--agent', 'nobody'], { env: { AGENT9_HOME: tempDir() } });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('ENOENT');
    expect(unknown.stderr).toContain("no agent 'nobody'");
    const alone = await agentctl(['serve', '--port', '0', '--agent', 'demo'], { env: { AGENT9_HOME: tempDir() } });
    expect(alone.code).not.toBe(0);
    expect(alone.stderr).toContain('--agent says whose view --mount shows');
  });

  it('without libfuse3 it fails with the reason and serves nothing; with --mount-optional it says why and serves HTTP only', async () => {
    const lib = (await ok('readlink -f /lib/x86_64-linux-gnu/libfuse3.so.3')).trim();
    const serveWithoutFuse = (home: string, d: string, extra: string) => {
      const script = `mount --bind /dev/null ${q(lib)} && exec ${q(process.execPath)} ${q(AGENTCTL)} serve --port 0 --log-level warn --mount ${q(d)} ${extra}`;
      const child = spawn('unshare', ['-m', 'sh', '-c', script], {
        env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', AGENT9_HOME: home },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
      stops.push(async () => {
        child.kill('SIGTERM');
        await exited;
      });
      return { stderr: () => stderr, exited };
    };

    const strictHome = tempDir();
    const strict = serveWithoutFuse(strictHome, await dir(), '');
    expect(await strict.exited).toBe(ERROR_TABLE.ENOSYS.exit);
    expect(strict.stderr()).toMatch(/^agentctl: ENOSYS: .*: FUSE is not available: libfuse3 cannot be loaded .*--mount-optional\)\n$/);
    expect(strict.stderr()).not.toContain('agent9 serving');
    expect(existsSync(join(strictHome, 'server.json'))).toBe(false);

    const home = tempDir();
    const optional = serveWithoutFuse(home, await dir(), '--mount-optional');
    await until(() => optional.stderr().includes('agent9 serving'), 30_000, 'the server to start');
    expect(optional.stderr()).toMatch(/warning: FUSE is not available: libfuse3 cannot be loaded .*; serving HTTP only \(--mount-optional\)/);
    const info = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string };
    const r = await agentctl(['ls', '/agents'], { env: { AGENT9_HOME: home, AGENT9_URL: info.url } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('new');
  });

  it('a mount point that cannot be made stops the start with the reason, and the data directory is free again', async () => {
    const home = tempDir();
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'not a directory\n');
    const r = await agentctl(['serve', '--port', '0', '--mount', file], { env: { AGENT9_HOME: home }, timeoutMs: 30_000 });
    expect(r.code).toBe(ERROR_TABLE.ENOTDIR.exit);
    expect(r.stderr).toContain(`agentctl: ENOTDIR: ${file}: not a directory`);
    expect(r.stderr).toContain('--mount-optional');
    expect(r.stderr).not.toContain('agent9 serving');
    // Where the file system refuses the name (Node's own recursive mkdir never returns there).
    const proc = await agentctl(['serve', '--port', '0', '--mount', '/proc/agent9-mount'], { env: { AGENT9_HOME: home }, timeoutMs: 30_000 });
    expect(proc.code).toBe(ERROR_TABLE.ENOENT.exit);
    expect(proc.stderr).toContain('agentctl: ENOENT: /proc/agent9-mount: cannot make the mount point');
    // Nothing is left holding the directory: the next start works.
    const next = await startServe(home);
    expect(await next.stop('SIGTERM')).toBe(0);
  });
});

describe('agentctl mount', () => {
  let home: string;
  let server: Awaited<ReturnType<typeof startServe>>;

  beforeAll(async () => {
    home = tempDir();
    server = await startServe(home, ['--demo']);
    stops.push(() => server.stop());
  });

  it('mounts a running server’s global view through HTTP; Ctrl-C unmounts', async () => {
    const d = await dir();
    const m = agentctlBackground(['mount', d], { AGENT9_HOME: home });
    await until(async () => (await mountedType(d)) === 'fuse.agent9', 20_000, 'the mount');
    expect((await ok(`ls ${q(d)}/agents`)).split('\n')).toEqual(expect.arrayContaining(['demo', 'new']));
    await ok(`echo "over http" > ${q(d)}/agents/demo/inbox`);
    await until(async () => (await outboxTexts(`${d}/agents/demo`)).some((e) => e.text === 'over http'), 10_000, 'the answer');
    const r = await m.stop('SIGINT');
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(`mounted at ${d}`);
    expect(await mountedType(d)).toBeUndefined();
  });

  it('--agent mounts the agent’s own view, acting as the agent; its token is revoked at unmount', async () => {
    const d = await dir();
    const tokensBefore = (await agentctl(['ls', '/runtime/tokens'], { env: { AGENT9_HOME: home } })).stdout;
    const m = agentctlBackground(['mount', d, '--agent', 'demo'], { AGENT9_HOME: home });
    await until(async () => (await mountedType(d)) === 'fuse.agent9', 20_000, 'the mount');
    expect((await ok(`ls ${q(d)}`)).split('\n')).toEqual(expect.arrayContaining(['inbox', 'outbox', 'status', 'ctl']));
    const denied = await sh(`printf 'tick\\n' | cat > ${q(d)}/ctl`);
    expect(denied.stderr).toMatch(/Permission denied/);
    await ok(`echo "as myself" > ${q(d)}/inbox`);
    await until(async () => (await outboxTexts(d)).some((e) => e.text === 'as myself'), 10_000, 'the answer');
    expect((await outboxTexts(d)).find((e) => e.text === 'as myself')!.to).toBe('demo');
    expect((await m.stop('SIGTERM')).code).toBe(143);
    expect(await mountedType(d)).toBeUndefined();
    const tokensAfter = (await agentctl(['ls', '/runtime/tokens'], { env: { AGENT9_HOME: home } })).stdout;
    expect(tokensAfter.split('\n').length).toBe(tokensBefore.split('\n').length);
  });

  it('an unknown agent or an unreachable server is a clear error, and nothing is mounted', async () => {
    const d = await dir();
    const unknown = await agentctl(['mount', d, '--agent', 'nobody'], { env: { AGENT9_HOME: home } });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/ENOENT/);
    const away = await agentctl(['mount', d], { env: { AGENT9_HOME: tempDir(), AGENT9_URL: 'http://127.0.0.1:9' } });
    expect(away.code).toBe(14);
    expect(away.stderr).toMatch(/cannot reach the agent9 server/);
    expect(await mountedType(d)).toBeUndefined();
  });
});
