/**
 * agentctl file and token verbs as a subprocess against a real server. With AGENT9_HOME pointing at the
 * server's data directory, agentctl finds the URL and the admin token with no flags at all.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/fs/errors.js';
import { cleanup } from '../helpers.js';
import { registerAgents, startFixtureServer, type FixtureServer } from '../http/helpers.js';
import { AGENTCTL, agentctl, ensureBuilt, type RunOptions } from './helpers.js';

let s: FixtureServer;
let env: Record<string, string>;

beforeAll(async () => {
  await ensureBuilt();
  s = await startFixtureServer();
  registerAgents(s.storage, 'bob');
  env = { AGENT9_HOME: s.home };
}, 240_000);

afterAll(async () => {
  await s.close();
  cleanup();
});

/** A port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const run = (args: string[], options: RunOptions = {}) => agentctl(args, { env, ...options, ...(options.env ? { env: { ...env, ...options.env } } : {}) });

describe('file verbs', () => {
  it('write (stdin and words), cat, append, stat', async () => {
    expect((await run(['write', '/data/note'], { input: 'first line\n' })).code).toBe(0);
    expect((await run(['cat', '/data/note'])).stdout).toBe('first line\n');
    expect((await run(['write', 'data/words', 'hello', 'world'])).code).toBe(0);
    expect((await run(['cat', '/data/words'])).stdout).toBe('hello world\n');
    expect((await run(['append', '/data/note'], { input: 'second\n' })).code).toBe(0);
    expect((await run(['cat', '/data/note', '/data/words'])).stdout).toBe('first line\nsecond\nhello world\n');
    const st = await run(['stat', '/data/note']);
    expect(st.stdout).toMatch(/type\s+file \(data\)/);
    expect(st.stdout).toMatch(/size\s+18/);
    expect(st.stdout).toMatch(/mode\s+-rw-r--r-- \(0644\)/);
    const json = JSON.parse((await run(['--json', 'stat', '/data/note'])).stdout) as { size: number; version: number; kind: string };
    expect(json).toMatchObject({ size: 18, kind: 'data' });
    expect(json.version).toBeGreaterThan(1);
  });

  it('a name with a control character is EINVAL (exit 7), naming the path printably', async () => {
    const r = await run(['write', '/data/bad\nname', 'x']);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain('EINVAL');
    expect(r.stderr).toContain('/data/bad\\nname');
    expect((await run(['ls', '-1', '/data'])).stdout).not.toContain('bad');
  });

  it('write --if-match and --create-only refuse a stale or existing file with ESTALE', async () => {
    await run(['write', '/data/guard'], { input: 'a' });
    const stale = await run(['write', '--if-match', '7', '/data/guard'], { input: 'b' });
    expect(stale.code).toBe(ERROR_TABLE.ESTALE.exit);
    expect(stale.stderr).toBe('agentctl: ESTALE: /data/guard: version is 1, not "7"\n');
    expect((await run(['write', '--if-match', '1', '/data/guard'], { input: 'c' })).code).toBe(0);
    expect((await run(['write', '--create-only', '/data/guard'], { input: 'd' })).code).toBe(ERROR_TABLE.ESTALE.exit);
    expect((await run(['cat', '/data/guard'])).stdout).toBe('c');
    await run(['write', '--mode', '0600', '/data/private'], { input: 'p' });
    expect((await run(['stat', '/data/private'])).stdout).toContain('-rw------- (0600)');
  });

  it('ls shows a table, -1 names, --json the listing', async () => {
    await run(['mkdir', '/data/dir']);
    await run(['write', '/data/dir/b'], { input: 'bb' });
    await run(['write', '/data/dir/a'], { input: 'a' });
    const table = await run(['ls', '/data/dir']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^MODE\s+KIND\s+SIZE\s+VERSION\s+MODIFIED\s+NAME$/);
    expect(lines[1]).toMatch(/^-rw-r--r--\s+data\s+1\s+1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+a$/);
    expect(lines[2]).toMatch(/\s+2\s+.*\sb$/);
    expect((await run(['ls', '-1', '/'])).stdout).toContain('data/\ngoals/\nmounts\n');
    const json = JSON.parse((await run(['--json', 'ls', '/data/dir'])).stdout) as { name: string; size: number }[];
    expect(json.map((e) => [e.name, e.size])).toEqual([['a', 1], ['b', 2]]);
  });

  it('colours the table on a terminal (a real pty through script(1)), never with NO_COLOR or in a pipe', async () => {
    const onTty = (extra: Record<string, string>) =>
      new Promise<string>((resolve, reject) => {
        const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(AGENTCTL)} ls /data/dir`;
        const child = spawn('script', ['-qec', cmd, '/dev/null'], {
          env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', TERM: 'xterm', ...env, ...extra },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
        child.on('error', reject);
        child.on('close', () => resolve(out));
      });
    await run(['mkdir', '-p', '/data/dir']);
    await run(['write', '/data/dir/a'], { input: 'a' });
    // eslint-disable-next-line no-control-regex
    const ansi = /\x1b\[[0-9;]*m/;
    const coloured = await onTty({});
    expect(coloured).toMatch(ansi);
    expect(coloured).toContain('NAME');
    expect(await onTty({ NO_COLOR: '1' })).not.toMatch(ansi);
    expect((await run(['ls', '/data/dir'], { env: { NO_COLOR: '' } })).stdout).not.toMatch(ansi);
  });

  it('call sends a request and prints the answer; errors carry their exit codes', async () => {
    expect((await run(['call', '/svc/echo', 'ping'])).stdout).toBe('echo:ping');
    expect((await run(['call', '/svc/echo'], { input: 'from stdin' })).stdout).toBe('echo:from stdin');
    const bad = await run(['call', '/svc/echo', '{broken']);
    expect(bad.code).toBe(ERROR_TABLE.EINVAL.exit);
    expect(bad.stderr).toMatch(/^agentctl: EINVAL: \/svc\/echo: malformed JSON/);
    const missing = await run(['cat', '/data/nope']);
    expect(missing.code).toBe(ERROR_TABLE.ENOENT.exit);
    expect(missing.stderr).toBe('agentctl: ENOENT: /data/nope: no such file or directory\n');
    expect((await run(['write', '/ro/x'], { input: 'x' })).code).toBe(ERROR_TABLE.EACCES.exit);
    expect((await run(['cat', '/data'])).code).toBe(ERROR_TABLE.EISDIR.exit);
  });

  it('append to a message file sends one message', async () => {
    await run(['append', '/svc/box', 'one', 'message']);
    await run(['append', '/svc/box'], { input: 'another\n' });
    expect(JSON.parse((await run(['cat', '/svc/box'])).stdout)).toEqual(['one message\n', 'another\n']);
  });

  it('mkdir -p, rm, rm -r, rm -f', async () => {
    expect((await run(['mkdir', '-p', '/data/x/y/z'])).code).toBe(0);
    expect((await run(['mkdir', '-p', '/data/x/y'])).code).toBe(0);
    expect((await run(['mkdir', '/data/x'])).code).toBe(ERROR_TABLE.EEXIST.exit);
    await run(['write', '/data/x/y/z/f'], { input: 'f' });
    const notEmpty = await run(['rm', '/data/x']);
    expect(notEmpty.code).toBe(ERROR_TABLE.ENOTEMPTY.exit);
    expect((await run(['rm', '-r', '/data/x'])).code).toBe(0);
    expect((await run(['stat', '/data/x'])).code).toBe(ERROR_TABLE.ENOENT.exit);
    expect((await run(['rm', '/data/x'])).code).toBe(ERROR_TABLE.ENOENT.exit);
    expect((await run(['rm', '-f', '/data/x'])).code).toBe(0);
  });

  it('tree draws the namespace; unreachable subtrees are marked', async () => {
    await run(['mkdir', '-p', '/data/t/u']);
    await run(['write', '/data/t/u/leaf'], { input: 'x' });
    const out = (await run(['tree', '/data/t'])).stdout;
    expect(out).toBe('/data/t\n└── u/\n    └── leaf\n');
    const root = (await run(['tree', '-L', '2', '/'])).stdout;
    expect(root).toContain('├── data/');
    expect(root).toContain('off/  [EACCES]');
    const json = JSON.parse((await run(['--json', 'tree', '/data/t'])).stdout) as { children: { name: string; children: { name: string }[] }[] };
    expect(json.children[0]!.children[0]!.name).toBe('leaf');
  });

  it('cat follows a stream file until it ends', async () => {
    const reading = run(['cat', '/svc/feed']);
    await new Promise((r) => setTimeout(r, 700));
    await s.req('/svc/feed-ctl', { method: 'POST', body: 'alpha\nbeta\nend' });
    const out = await reading;
    expect(out.code).toBe(0);
    expect(out.stdout).toBe('alpha\nbeta\n');
  });

  it('watch prints the next event; -f --from replays and follows; --json is one event per line', async () => {
    const before = s.storage.eventStore.lastId();
    const next = run(['watch', '/data/w']);
    await new Promise((r) => setTimeout(r, 700));
    await s.req('/data/w', { method: 'PUT', body: '1' });
    const one = await next;
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^\d+ {2}\d\d:\d\d:\d\d {2}created {3}\/data\/w {2}v1\n$/);
    await s.req('/data/w', { method: 'PUT', body: '2' });
    await s.req('/data/w', { method: 'DELETE' });
    const replay = await run(['--json', 'watch', '-f', '-n', '3', '--from', String(before), '/data/w']);
    const events = replay.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string; path: string });
    expect(events.map((e) => e.type)).toEqual(['created', 'modified', 'deleted']);
    expect((await run(['watch', '--from', 'soon', '/data'])).code).toBe(ERROR_TABLE.EINVAL.exit);
  });
});

describe('endpoint, token and errors', () => {
  it('--endpoint/AGENT9_URL and --token/AGENT9_TOKEN override what the data directory says', async () => {
    const clean = { AGENT9_HOME: '/nonexistent-agent9-home' };
    const noToken = await agentctl(['ls', '/'], { env: { ...clean, AGENT9_URL: s.url } });
    expect(noToken.code).toBe(ERROR_TABLE.EAUTH.exit);
    expect(noToken.stderr).toMatch(/^agentctl: EAUTH: \/: missing bearer token/);
    expect((await agentctl(['ls', '/'], { env: { ...clean, AGENT9_URL: s.url, AGENT9_TOKEN: s.token } })).code).toBe(0);
    expect((await agentctl(['--endpoint', s.url, '--token', s.token, 'ls', '/'], { env: clean })).code).toBe(0);
    const wrong = await agentctl(['--endpoint', s.url, '--token', 'nonsense', 'ls', '/'], { env: clean });
    expect(wrong.code).toBe(ERROR_TABLE.EAUTH.exit);
  });

  it('no server: EIO naming the address; a usage error exits EINVAL', async () => {
    const port = await closedPort();
    const down = await agentctl(['ls', '/'], { env: { AGENT9_HOME: '/nonexistent-agent9-home', AGENT9_URL: `http://127.0.0.1:${port}` } });
    expect(down.code).toBe(ERROR_TABLE.EIO.exit);
    expect(down.stderr).toBe(`agentctl: EIO: /: cannot reach the agent9 server at http://127.0.0.1:${port} (ECONNREFUSED)\n`);
    const bad = await run(['cat']);
    expect(bad.code).toBe(ERROR_TABLE.EINVAL.exit);
    expect(bad.stderr).toContain("missing required argument 'paths'");
    expect((await run(['--help'])).code).toBe(0);
  });
});

describe('token verbs', () => {
  it('create prints the secret alone on stdout; list shows scopes; revoke stops it at once', async () => {
    const created = await run(['token', 'create', '--path', '/data', '--read-only', '--ttl', '1h', '--name', 'ci']);
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^a9_[0-9a-f]{12}_[0-9a-f]{48}$/);
    expect(created.stderr).toMatch(/\/data read-only\s+expires/);
    const asScoped = { AGENT9_TOKEN: token };
    expect((await run(['cat', '/data/note'], { env: asScoped })).code).toBe(0);
    expect((await run(['write', '/data/note'], { env: asScoped, input: 'x' })).code).toBe(ERROR_TABLE.EACCES.exit);
    expect((await run(['cat', '/svc/count'], { env: asScoped })).code).toBe(ERROR_TABLE.EACCES.exit);
    expect((await run(['token', 'list'], { env: asScoped })).code).toBe(ERROR_TABLE.EACCES.exit);

    const list = await run(['token', 'list']);
    const id = token.split('_')[1]!;
    const row = list.stdout.split('\n').find((l) => l.startsWith(id))!;
    expect(row).toMatch(/ci\s+\/data read-only\s+active/);
    expect(list.stdout).toMatch(/admin\s+admin\s+active/);
    const json = JSON.parse((await run(['--json', 'token', 'list'])).stdout) as { id: string; read_only: boolean; token?: string }[];
    expect(json.find((t) => t.id === id)).toMatchObject({ read_only: true });
    expect(json.every((t) => t.token === undefined)).toBe(true);

    expect((await run(['token', 'revoke', id])).code).toBe(0);
    expect((await run(['cat', '/data/note'], { env: asScoped })).code).toBe(ERROR_TABLE.EAUTH.exit);
    expect((await run(['token', 'revoke', id])).code).toBe(ERROR_TABLE.ENOENT.exit);
  });

  it('an agent token; a bad ttl is refused before asking the server', async () => {
    const created = await run(['--json', 'token', 'create', '--agent', 'bob']);
    expect(JSON.parse(created.stdout)).toMatchObject({ agent: 'bob', admin: false });
    const bad = await run(['token', 'create', '--ttl', 'forever']);
    expect(bad.code).toBe(ERROR_TABLE.EINVAL.exit);
    expect(bad.stderr).toContain("bad duration 'forever'");
  });
});
