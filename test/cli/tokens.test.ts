/**
 * Tokens never outlive or exceed their grant, tried the way an attacker would: `agentctl serve` in a
 * child process with the real runtime, `agentctl token ...` as subprocesses, and watches and streams
 * over plain HTTP on loopback.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/fs/errors.js';
import { tempDir } from '../helpers.js';
import { agentctl, servedForTests, startServe } from './helpers.js';

const suite = servedForTests('agent9-tokens-');
const run = suite.run;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface TokenRow {
  id: string;
  token: string;
  agent: string | null;
  admin: boolean;
  expires_at: number | null;
}

/** `agentctl --json token create ARGS` (as the admin token, or as `as`). */
async function mint(args: string[], as?: string): Promise<TokenRow> {
  const made = await run(['--json', 'token', 'create', ...args], as ? { env: { AGENT9_TOKEN: as } } : {});
  expect(made.code, made.stderr).toBe(0);
  return JSON.parse(made.stdout) as TokenRow;
}

/** A long-lived response (a watch or a stream read) read as it comes; `ended` resolves at its end. */
interface OpenResponse {
  text(): string;
  /** When the body ended (ms since the epoch), or undefined if it was still open after `ms`. */
  endedWithin(ms: number): Promise<number | undefined>;
}

async function open(path: string, token: string): Promise<OpenResponse> {
  const ac = new AbortController();
  const res = await fetch(suite.server.url + path, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
  expect(res.status, path).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const ended = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
    } catch {
      /* aborted below */
    }
    return Date.now();
  })();
  return {
    text: () => text,
    async endedWithin(ms) {
      const at = await Promise.race([ended, sleep(ms).then(() => undefined)]);
      if (at === undefined) ac.abort();
      return at;
    },
  };
}

const get = (path: string, token: string) => fetch(suite.server.url + path, { headers: { authorization: `Bearer ${token}` } });

/** Waits until the server counts this many open watches and stream reads (its /runtime/metrics gauges). */
async function openCount(watchers: number, streams: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const text = await (await get('/runtime/metrics', suite.server.token)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    if (gauge('agent9_http_watchers') >= watchers && gauge('agent9_http_streams') >= streams) return;
    if (Date.now() > deadline) throw new Error(`never had ${watchers} watches and ${streams} streams open:\n${text}`);
    await sleep(100);
  }
}

describe('minting stays within the minting token', () => {
  it('a ttl-only token is admin, but what it mints expires no later than itself', async () => {
    const parent = await mint(['--ttl', '1h', '--name', 'short-lived admin']);
    expect(parent.admin).toBe(true);
    const child = await mint([], parent.token);
    expect(child.admin).toBe(true);
    expect(child.expires_at).toBe(parent.expires_at);
    const shorter = await mint(['--ttl', '30m'], parent.token);
    expect(shorter.expires_at).toBeLessThanOrEqual(parent.expires_at!);
    const longer = await run(['token', 'create', '--ttl', '2h'], { env: { AGENT9_TOKEN: parent.token } });
    expect(longer.code).toBe(ERROR_TABLE.EACCES.exit);
    expect(longer.stderr).toContain('ttl');
    expect(longer.stderr).toContain(`token ${parent.id}`);
  });

  it('a token with paths is not admin: it cannot mint at all', async () => {
    const scoped = await mint(['--path', '/agents', '--path', '/runtime']);
    const made = await run(['token', 'create', '--path', '/agents'], { env: { AGENT9_TOKEN: scoped.token } });
    expect(made.code).toBe(ERROR_TABLE.EACCES.exit);
    expect(made.stderr).toContain('only an admin token may manage tokens');
  });
});

describe('ttl bound', () => {
  it('a ttl above the bound (default 365d) is EINVAL naming it', async () => {
    const far = await run(['token', 'create', '--ttl', '366d']);
    expect(far.code).toBe(ERROR_TABLE.EINVAL.exit);
    expect(far.stderr).toContain('365d');
    expect((await run(['token', 'create', '--ttl', '365d'])).code).toBe(0);
  });

  it('config.json tokens.max_ttl sets the bound; a bad value stops the start naming the field', async () => {
    const home = tempDir('agent9-tokens-bound-');
    writeFileSync(join(home, 'config.json'), JSON.stringify({ tokens: { max_ttl: 'forever' } }));
    const refused = await agentctl(['serve', '--port', '0'], { env: { AGENT9_HOME: home } });
    expect(refused.code).toBe(ERROR_TABLE.EINVAL.exit);
    expect(refused.stderr).toContain('tokens.max_ttl');
    writeFileSync(join(home, 'config.json'), JSON.stringify({ tokens: { max_ttle: '1h' } }));
    const unknown = await agentctl(['serve', '--port', '0'], { env: { AGENT9_HOME: home } });
    expect(unknown.code).toBe(ERROR_TABLE.EINVAL.exit);
    expect(unknown.stderr).toContain('max_ttle');

    writeFileSync(join(home, 'config.json'), JSON.stringify({ tokens: { max_ttl: '1h' } }));
    const bounded = await startServe(home);
    try {
      const long = await agentctl(['token', 'create', '--ttl', '2h'], { env: { AGENT9_HOME: home } });
      expect(long.code).toBe(ERROR_TABLE.EINVAL.exit);
      expect(long.stderr).toContain('1h');
      expect((await agentctl(['token', 'create', '--ttl', '59m'], { env: { AGENT9_HOME: home } })).code).toBe(0);
    } finally {
      await bounded.stop('SIGKILL');
    }
  }, 60_000);
});

describe('agent tokens live and die with their agent', () => {
  it('a token for an agent that does not exist is ENOENT naming it', async () => {
    const made = await run(['token', 'create', '--agent', 'ghost']);
    expect(made.code).toBe(ERROR_TABLE.ENOENT.exit);
    expect(made.stderr).toContain("'ghost'");
    const listed = JSON.parse((await run(['--json', 'token', 'list'])).stdout) as TokenRow[];
    expect(listed.some((t) => t.agent === 'ghost')).toBe(false);
  });

  it('deleting an agent revokes its tokens and ends their watches; a new agent of that name starts clean', async () => {
    expect((await run(['agents', 'create', 'carol'])).code).toBe(0);
    const carol = await mint(['--agent', 'carol']);
    expect((await get('/status', carol.token)).status).toBe(200);
    const watch = await open('/?watch=1', carol.token);
    await sleep(200);
    expect((await run(['agents', 'delete', 'carol'])).code).toBe(0);
    // agentctl has exited, so the server has deleted the agent by now.
    const deletedAt = Date.now();
    const endedAt = await watch.endedWithin(3000);
    expect(endedAt, 'the watch is still open').toBeDefined();
    expect(endedAt! - deletedAt).toBeLessThan(1000);
    expect(watch.text()).toMatch(/event: error\ndata: .*"EAUTH"/);
    expect((await get('/status', carol.token)).status).toBe(401);

    expect((await run(['agents', 'create', 'carol'])).code).toBe(0);
    expect((await get('/status', carol.token)).status).toBe(401);
    const listed = JSON.parse((await run(['--json', 'token', 'list'])).stdout) as TokenRow[];
    expect(listed.filter((t) => t.agent === 'carol')).toEqual([]);
    await run(['agents', 'delete', 'carol']);
  });
});

describe('revocation and expiry end what is already open', () => {
  it('revoking a token ends its two watches and its stream within a second; 30 later events reach none', async () => {
    expect((await run(['agents', 'create', 'dora'])).code).toBe(0);
    const dora = await mint(['--agent', 'dora']);
    const opened = [await open('/?watch=1', dora.token), await open('/inbox?watch=1', dora.token), await open('/logs/trace', dora.token)];
    // agentctl following a watch and a stream with the token: both fail with EAUTH, neither reconnects.
    const asDora = { env: { AGENT9_TOKEN: dora.token }, timeoutMs: 60_000 };
    const following = [run(['watch', '-f', '/inbox'], asDora), run(['cat', '/logs/trace'], asDora)];
    await openCount(3, 2);
    await run(['send', 'dora', 'before']);
    await sleep(500);
    expect((await run(['token', 'revoke', dora.id])).code).toBe(0);
    const revokedAt = Date.now();
    const ends = await Promise.all(opened.map((o) => o.endedWithin(3000)));
    for (const [i, at] of ends.entries()) {
      expect(at, `response ${i} is still open`).toBeDefined();
      expect(at! - revokedAt, `response ${i}`).toBeLessThan(1000);
    }
    for (const watch of opened.slice(0, 2)) expect(watch.text()).toMatch(/event: error\ndata: .*"EAUTH".*revoked/);
    const seen = opened.map((o) => o.text());
    const admin = { authorization: `Bearer ${suite.server.token}` };
    for (let i = 0; i < 30; i++) {
      expect((await fetch(`${suite.server.url}/agents/dora/inbox`, { method: 'POST', headers: admin, body: `after ${i}` })).status).toBe(201);
    }
    await sleep(300);
    expect(opened.map((o) => o.text())).toEqual(seen);
    const [watching, catting] = await Promise.all(following);
    expect(watching!.code).toBe(ERROR_TABLE.EAUTH.exit);
    expect(watching!.stderr).toContain(`EAUTH: /inbox: token ${dora.id} was revoked`);
    expect(catting!.code).toBe(ERROR_TABLE.EAUTH.exit);
    expect(catting!.stdout).toContain('"type":"');
    await run(['agents', 'delete', 'dora']);
  }, 60_000);

  it('an expiring token ends its watch within a second of its expiry', async () => {
    expect((await run(['agents', 'create', 'erin'])).code).toBe(0);
    const erin = await mint(['--agent', 'erin', '--ttl', '2s']);
    const watch = await open('/?watch=1', erin.token);
    const endedAt = await watch.endedWithin(5000);
    expect(endedAt, 'the watch outlived its token').toBeDefined();
    expect(endedAt! - erin.expires_at!).toBeLessThan(1000);
    expect(endedAt! - erin.expires_at!).toBeGreaterThanOrEqual(0);
    expect(watch.text()).toMatch(/event: error\ndata: .*"EAUTH".*expired/);
    await run(['agents', 'delete', 'erin']);
  }, 30_000);
});
