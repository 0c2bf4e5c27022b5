/**
 * `agentctl serve --demo` in a child process with the real runtime, driven by agentctl subprocesses
 * and plain HTTP: agent verbs, logs, agent-scoped tokens, the compatibility routes, shutdown.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/fs/errors.js';
import { tempDir } from '../helpers.js';
import { AGENTCTL, agentctl, agentctlBackground, servedForTests, startServe } from './helpers.js';

const suite = servedForTests('agent9-serve-', ['--demo']);
const run = suite.run;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(100);
  }
}

async function statusOf(id: string): Promise<{ state: string; tick_count: number; queue_depth: number }> {
  return JSON.parse((await run(['--json', 'status', id])).stdout) as { state: string; tick_count: number; queue_depth: number };
}

describe('serve', () => {
  it('starts with the demo agent and prints a curl line that works as printed', async () => {
    expect(suite.server.stderr()).toContain(`agent9 serving ${suite.server.url}`);
    const line = suite.server.stderr().split('\n').find((l) => l.startsWith('try: curl'))!;
    expect(line).toContain(`${suite.server.url}/agents/demo/status`);
    const res = await fetch(`${suite.server.url}/agents/demo/status`, { headers: { authorization: `Bearer ${suite.server.token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: 'demo', program: 'echo' });
    // The admin token file is private.
    const { statSync } = await import('node:fs');
    expect(statSync(join(suite.server.home, 'admin.token')).mode & 0o777).toBe(0o600);
  });

  it('a second server on the same data directory is refused; a remote address needs --allow-remote', async () => {
    const second = await run(['serve', '--port', '0']);
    expect(second.code).toBe(ERROR_TABLE.EBUSY.exit);
    expect(second.stderr).toContain(`another agent9 server is serving ${suite.server.home} (pid ${suite.server.pid} at ${suite.server.url})`);
    const remote = await agentctl(['serve', '--host', '0.0.0.0', '--port', '0'], { env: { AGENT9_HOME: tempDir() } });
    expect(remote.code).toBe(ERROR_TABLE.EPERM.exit);
    expect(remote.stderr).toContain('--allow-remote');
    const home = tempDir();
    const allowed = await startServe(home, ['--host', '0.0.0.0', '--allow-remote']);
    expect(allowed.stderr()).toContain('warning: listening on 0.0.0.0');
    expect(await allowed.stop('SIGTERM')).toBe(0);
  });
});

describe('restart right after a crash', () => {
  it('a server killed with SIGKILL, still a zombie, is replaced at once; a live one is still refused', async () => {
    const home = tempDir('agent9-zombie-');
    // The shell starts the server, then becomes `sleep`, which never reaps it: after SIGKILL the
    // server stays a zombie, as under a supervisor that has not yet called wait().
    const parent = spawn('sh', ['-c', `"${process.execPath}" "${AGENTCTL}" serve --port 0 --log-level warn >/dev/null 2>&1 & echo $!; exec sleep 600`], {
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', AGENT9_HOME: home },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))));
      await until(async () => (existsSync(join(home, 'server.json')) ? true : undefined), 30_000);
      const refused = await run(['serve', '--port', '0'], { env: { AGENT9_HOME: home } });
      expect(refused.code).toBe(ERROR_TABLE.EBUSY.exit);
      process.kill(pid, 'SIGKILL');
      await until(async () => (readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z' ? true : undefined));
      const restarted = await startServe(home);
      expect(restarted.pid).not.toBe(pid);
      expect(await restarted.stop('SIGTERM')).toBe(0);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('a server.json naming a live process that is not a server (a reused pid) does not stop a start', async () => {
    const home = tempDir('agent9-reused-');
    writeFileSync(join(home, 'server.json'), JSON.stringify({ url: 'http://127.0.0.1:1', pid: process.pid, started_at: 0 }));
    const s = await startServe(home);
    expect(await s.stop('SIGTERM')).toBe(0);
  });
});

describe('agent verbs', () => {
  it('agents list, send, status: the echo program answers into its outbox', async () => {
    const list = await run(['agents', 'list']);
    expect(list.stdout).toMatch(/^ID\s+STATE\s+PROGRAM\s+TICKS/);
    expect(list.stdout).toMatch(/\ndemo\s+active\s+echo\s+\d+/);
    const before = (await statusOf('demo')).tick_count;
    expect((await run(['send', 'demo', 'hello', 'demo'])).code).toBe(0);
    await until(async () => ((await statusOf('demo')).tick_count > before ? true : undefined));
    const outbox = (await run(['ls', '-1', '/agents/demo/outbox'])).stdout.trim().split('\n');
    const last = (await run(['cat', `/agents/demo/outbox/${outbox[outbox.length - 1]}`])).stdout;
    expect(last).toContain('hello demo');
    const human = (await run(['status', 'demo'])).stdout;
    expect(human).toMatch(/^demo\n {2}state {6}active\n {2}program {4}echo\n/);
    expect((await run(['send', 'nobody', 'x'])).code).toBe(ERROR_TABLE.ENOENT.exit);
    expect((await run(['send', 'Bad Name', 'x'])).code).toBe(ERROR_TABLE.EINVAL.exit);
  });

  it('tick, hibernate and wake go through ctl', async () => {
    const before = (await statusOf('demo')).tick_count;
    expect((await run(['tick', 'demo', 'by-test'])).code).toBe(0);
    await until(async () => ((await statusOf('demo')).tick_count > before ? true : undefined));
    expect((await run(['hibernate', 'demo'])).code).toBe(0);
    expect((await statusOf('demo')).state).toBe('dormant');
    expect((await run(['wake', 'demo'])).code).toBe(0);
    expect((await statusOf('demo')).state).toBe('active');
  });

  it('create, edit, export, delete, import', async () => {
    const created = await run(['agents', 'create', 'bob', '--command', 'cat > /dev/null; echo done', '--env', 'COLOR=blue']);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^bob\n/);
    expect((await run(['agents', 'create', 'bob'])).code).toBe(ERROR_TABLE.EEXIST.exit);
    const edited = JSON.parse((await run(['--json', 'agents', 'edit', 'bob', '--env', 'COLOR=red', '--env', 'SIZE=2'])).stdout) as {
      env: Record<string, string>;
      program: { type: string };
    };
    expect(edited.env).toEqual({ COLOR: 'red', SIZE: '2' });
    expect(edited.program.type).toBe('exec');
    expect((await run(['agents', 'edit', 'bob'])).code).toBe(ERROR_TABLE.EINVAL.exit);
    await run(['write', '/agents/bob/memory/note.txt', 'remember', 'this']);

    const file = join(tempDir(), 'bob.json');
    expect((await run(['agents', 'export', 'bob', '-o', file])).code).toBe(0);
    expect(existsSync(file)).toBe(true);
    expect((await run(['agents', 'delete', 'bob'])).code).toBe(0);
    expect((await run(['status', 'bob'])).code).toBe(ERROR_TABLE.ENOENT.exit);
    const imported = await run(['--json', 'agents', 'import', file]);
    expect(imported.code).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ id: 'bob', program: 'exec' });
    expect((await run(['cat', '/agents/bob/memory/note.txt'])).stdout).toBe('remember this\n');
    const copy = await run(['--json', 'agents', 'import', file, '--as', 'bob2']);
    expect(JSON.parse(copy.stdout)).toMatchObject({ id: 'bob2' });
    const names = (JSON.parse((await run(['--json', 'agents', 'list'])).stdout) as { id: string }[]).map((a) => a.id);
    expect(names).toEqual(expect.arrayContaining(['bob', 'bob2', 'demo']));
    await run(['agents', 'delete', 'bob', 'bob2']);
  });

  it('logs prints recent trace events; -f follows new ones and stops on SIGINT', async () => {
    const recent = await run(['logs', 'demo', '-n', '3']);
    expect(recent.code).toBe(0);
    expect(recent.stdout.trim().split('\n').length).toBe(3);
    expect(recent.stdout).toMatch(/tick_(start|end)/);
    const follow = agentctlBackground(['logs', 'demo', '-f', '-n', '0'], suite.env);
    await sleep(800);
    await run(['send', 'demo', 'follow me']);
    await until(async () => (follow.output().includes('tick_end') ? true : undefined));
    const done = await follow.stop('SIGINT');
    expect(done.code).toBe(130);
    expect(done.stdout).toMatch(/tick_start\s+\{"tick":\d+,"cause":"message"/);
  });

  it('watch -f of an agent sees its inbox and outbox change', async () => {
    const watch = agentctlBackground(['--json', 'watch', '-f', '/agents/demo'], suite.env);
    await sleep(800);
    await run(['send', 'demo', 'watched']);
    await until(async () => (watch.output().includes('/agents/demo/outbox/') ? true : undefined));
    const done = await watch.stop('SIGTERM');
    expect(done.code).toBe(143);
    const events = done.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; path: string });
    expect(events.some((e) => e.path.startsWith('/agents/demo/outbox/') && e.type === 'created')).toBe(true);
  });
});

describe('tokens on the real runtime', () => {
  it('an agent-scoped token sees its agent at /, nothing else; read-only refuses writes', async () => {
    await run(['agents', 'create', 'carol']);
    const token = (await run(['token', 'create', '--agent', 'demo'])).stdout.trim();
    const asDemo = { env: { AGENT9_TOKEN: token } };
    const root = (await run(['ls', '-1', '/'], asDemo)).stdout;
    expect(root).toContain('status\n');
    expect(root).toContain('inbox\n');
    expect(JSON.parse((await run(['cat', '/status'], asDemo)).stdout)).toMatchObject({ id: 'demo' });
    expect((await run(['ls', '/agents'], asDemo)).code).toBe(ERROR_TABLE.ENOENT.exit);
    expect((await run(['status', 'carol'], asDemo)).code).toBe(ERROR_TABLE.ENOENT.exit);
    expect((await run(['cat', '/runtime/status'], asDemo)).code).toBe(ERROR_TABLE.ENOENT.exit);
    // It may send itself a message, but not drive its own ctl (admin only).
    expect((await run(['append', '/inbox', 'from myself'], asDemo)).code).toBe(0);
    expect((await run(['write', '/ctl', 'tick'], asDemo)).code).toBe(ERROR_TABLE.EACCES.exit);

    const ro = (await run(['token', 'create', '--read-only'])).stdout.trim();
    const asReader = { env: { AGENT9_TOKEN: ro } };
    expect((await run(['agents', 'list'], asReader)).code).toBe(0);
    expect((await run(['send', 'carol', 'x'], asReader)).code).toBe(ERROR_TABLE.EACCES.exit);
    expect((await run(['agents', 'create', 'dave'], asReader)).code).toBe(ERROR_TABLE.EACCES.exit);
    await run(['agents', 'delete', 'carol']);
  });

  it('an exec program reaches the server with AGENT9_URL and a token scoped to its own agent', async () => {
    const script =
      "fetch(process.env.AGENT9_URL + '/status', { headers: { authorization: 'Bearer ' + process.env.AGENT9_TOKEN } })" +
      ".then((r) => r.json()).then((s) => console.log('I am ' + s.id))";
    const command = `cat > /dev/null; ${JSON.stringify(process.execPath)} -e ${JSON.stringify(script)}`;
    expect((await run(['agents', 'create', 'frank', '--command', command])).code).toBe(0);
    await run(['tick', 'frank']);
    const text = await until(async () => {
      const names = (await run(['ls', '-1', '/agents/frank/outbox'])).stdout.trim();
      if (!names) return undefined;
      return (await run(['cat', `/agents/frank/outbox/${names.split('\n')[0]}`])).stdout;
    });
    expect(text).toContain('I am frank');
    const tokens = JSON.parse((await run(['--json', 'token', 'list'])).stdout) as { name: string; agent: string | null }[];
    expect(tokens.find((t) => t.name === 'exec frank')).toMatchObject({ agent: 'frank' });
    await run(['agents', 'delete', 'frank']);
  });

  it('the compatibility routes work over plain HTTP', async () => {
    const auth = { authorization: `Bearer ${suite.server.token}` };
    const list = (await (await fetch(`${suite.server.url}/agents`, { headers: auth })).json()) as { id: string; state: string }[];
    expect(list.find((a) => a.id === 'demo')).toMatchObject({ state: 'active' });
    const created = await fetch(`${suite.server.url}/agents`, { method: 'POST', headers: auth, body: '{"name": "erin", "program": "echo"}' });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ id: 'erin' });
    expect((await fetch(`${suite.server.url}/agents/erin/send`, { method: 'POST', headers: auth, body: 'hi erin' })).status).toBe(201);
    expect((await fetch(`${suite.server.url}/agents/erin/tick`, { method: 'POST', headers: auth })).status).toBe(200);
    expect((await fetch(`${suite.server.url}/agents/erin/send`, { method: 'POST', headers: auth, body: '' })).status).toBe(400);
    expect((await fetch(`${suite.server.url}/agents/nobody/tick`, { method: 'POST', headers: auth })).status).toBe(404);
    expect((await fetch(`${suite.server.url}/agents/erin`, { method: 'DELETE', headers: auth })).status).toBe(204);
    expect((await fetch(`${suite.server.url}/agents/erin/status`, { headers: auth })).status).toBe(404);
    const metrics = await (await fetch(`${suite.server.url}/runtime/metrics`, { headers: auth })).text();
    expect(metrics).toMatch(/^agent9_agents\{state="active"\} \d+$/m);
    expect(metrics).toMatch(/^agent9_ticks_total \d+$/m);
    expect(metrics).toContain('# TYPE agent9_ticks_total counter');
    expect(metrics).toMatch(/^agent9_inbox_queued \d+$/m);
    expect(metrics).toMatch(/^agent9_http_request_duration_seconds_bucket/m);
  });
});

describe('shutdown', () => {
  it('SIGTERM ends watches cleanly, exits 0 and removes server.json; a restart keeps everything', async () => {
    const home = tempDir('agent9-stop-');
    const s = await startServe(home, ['--demo']);
    const ac = new AbortController();
    const res = await fetch(`${s.url}/agents/demo?watch=1`, { headers: { authorization: `Bearer ${s.token}` }, signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    expect(await s.stop('SIGTERM')).toBe(0);
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
    }
    expect(existsSync(join(home, 'server.json'))).toBe(false);
    const again = await startServe(home);
    try {
      expect(again.token).toBe(s.token);
      const status = await fetch(`${again.url}/agents/demo/status`, { headers: { authorization: `Bearer ${again.token}` } });
      expect(status.status).toBe(200);
    } finally {
      expect(await again.stop('SIGINT')).toBe(0);
    }
  });
});
