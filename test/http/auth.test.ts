/** The auth matrix over real sockets: no token, wrong agent, read-only, expired, revoked, outside a prefix. */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { FIXTURE_SCOPE } from '../conformance/fixture.js';
import { cleanup } from '../helpers.js';
import { registerAgents, startFixtureServer, type FixtureServer } from './helpers.js';
import { SseParser } from '../../src/http/sse-parser.js';

let s: FixtureServer;

/** Stand-ins for agents' local namespaces: data trees at /agents/<id> of the served view. */
function mountAgentTree(server: FixtureServer, id: string): void {
  registerAgents(server.storage, id);
  const tree = server.storage.dataTree(`agent-tree:${id}`, { scope: FIXTURE_SCOPE, prefix: `/agents/${id}` });
  mountWithAccess(server.ns, `/agents/${id}`, tree, ReadWrite);
}

beforeAll(async () => {
  s = await startFixtureServer();
  mountAgentTree(s, 'bob');
  mountAgentTree(s, 'alice');
  await s.req('/agents/bob/notes', { method: 'PUT', body: 'bob private' });
  await s.req('/agents/alice/notes', { method: 'PUT', body: 'alice private' });
  await s.req('/data/shared', { method: 'PUT', body: 'shared' });
  await s.req('/svc/box', { method: 'POST', body: 'x' });
});

afterAll(async () => {
  await s.close();
  cleanup();
});

async function newToken(spec: Record<string, unknown>): Promise<{ token: string; id: string }> {
  const res = await s.req('/runtime/tokens/new', { method: 'POST', body: JSON.stringify(spec) });
  expect(res.status).toBe(200);
  return (await res.json()) as { token: string; id: string };
}

async function code(res: Response): Promise<string> {
  if (res.status < 400) return String(res.status);
  return ((await res.json()) as { error: { code: string } }).error.code;
}

describe('authentication', () => {
  it('no token, a malformed header, a made-up token: 401 EAUTH with WWW-Authenticate', async () => {
    const none = await s.req('/data/shared', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="agent9"');
    expect(await code(none)).toBe('EAUTH');
    const basic = await s.req('/data/shared', { token: null, headers: { authorization: 'Basic YTpi' } });
    expect(basic.status).toBe(401);
    const madeUp = await s.req('/data/shared', { token: 'a9_000000000000_' + '0'.repeat(48) });
    expect(madeUp.status).toBe(401);
    const tampered = await s.req('/data/shared', { token: s.token.slice(0, -1) + (s.token.endsWith('0') ? '1' : '0') });
    expect(tampered.status).toBe(401);
    // Even errors that would be 404 are 401 first: nothing is revealed without a token.
    expect((await s.req('/nothing/here', { token: null })).status).toBe(401);
    expect((await s.req('/data/shared?watch=1', { token: null })).status).toBe(401);
  });

  it('the admin token is in the data directory with mode 0600, and the next start reuses it', async () => {
    const file = join(s.home, 'admin.token');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(s.token);
    const again = await startFixtureServer({ home: join(s.home, 'other') });
    try {
      expect(again.token).not.toBe(s.token);
      expect((await again.req('/data/', { token: s.token })).status).toBe(401);
    } finally {
      await again.close();
    }
  });

  it('tokens are stored hashed: the secret is nowhere in the database', async () => {
    const { token, id } = await newToken({ name: 'hashed' });
    const secret = token.split('_')[2]!;
    const row = s.storage.db.prepare('SELECT * FROM tokens WHERE id = ?').get(id) as Record<string, unknown>;
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row['hash']).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('scopes', () => {
  it('an agent-scoped token sees that agent at /, and nothing of other agents', async () => {
    const { token } = await newToken({ agent: 'bob' });
    expect(await (await s.req('/notes', { token })).text()).toBe('bob private');
    expect((await s.req('/notes2', { token, method: 'PUT', body: 'mine' })).status).toBe(201);
    expect(await (await s.req('/agents/bob/notes2')).text()).toBe('mine');
    // The wrong agent: alice is not in bob's view at all, whatever the path.
    const other = await s.req('/agents/alice/notes', { token });
    expect(other.status).toBe(404);
    expect((await s.req('/data/shared', { token })).status).toBe(404);
    const rows = (await (await s.req('/', { token })).json()) as { name: string }[];
    expect(rows.map((r) => r.name).sort()).toEqual(['notes', 'notes2']);
    // Errors name paths as the token sees them.
    const missing = (await (await s.req('/nope', { token })).json()) as { error: { path: string; message: string } };
    expect(missing.error.path).toBe('/nope');
    expect(missing.error.message).not.toContain('/agents/bob');
    // The compatibility routes go through the same view.
    expect((await s.req('/agents/alice/send', { token, method: 'POST', body: 'hi' })).status).toBe(404);
  });

  it('an agent-scoped token watches its own tree with agent-relative paths', async () => {
    const { token } = await newToken({ agent: 'bob' });
    const ac = new AbortController();
    const res = await s.req('/?watch=1', { token, signal: ac.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const parser = new SseParser();
    await s.req('/agents/alice/notes', { method: 'PUT', body: 'not for bob' });
    await s.req('/agents/bob/watched', { method: 'PUT', body: 'for bob' });
    const decoder = new TextDecoder();
    let got: { type: string; path: string } | undefined;
    while (!got) {
      const { value } = await reader.read();
      const msgs = parser.push(decoder.decode(value, { stream: true }));
      if (msgs.length) got = JSON.parse(msgs[0]!.data) as { type: string; path: string };
    }
    ac.abort();
    expect(got).toMatchObject({ type: 'created', path: '/watched' });
  });

  it('a read-only token reads but every write is 403', async () => {
    const { token } = await newToken({ read_only: true });
    expect((await s.req('/data/shared', { token })).status).toBe(200);
    expect((await s.req('/data/', { token })).status).toBe(200);
    expect((await s.req('/data/shared', { token, method: 'HEAD' })).headers.get('x-agent9-mode')).toBe('0444');
    for (const [method, path, body] of [
      ['PUT', '/data/shared', 'x'],
      ['POST', '/data/shared?append=1', 'x'],
      ['POST', '/svc/box', 'x'],
      ['POST', '/svc/echo', 'x'],
      ['DELETE', '/data/shared', undefined],
      ['PUT', '/data/newdir/', undefined],
      ['MOVE', '/data/shared', undefined],
    ] as const) {
      const res = await s.req(path, { token, method, ...(body ? { body } : {}), headers: { destination: '/data/elsewhere' } });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(await code(res)).toBe('EACCES');
    }
    expect(await (await s.req('/data/shared')).text()).toBe('shared');
  });

  it('a path-prefix token reaches only its subtrees; their ancestors list only the way down', async () => {
    const { token } = await newToken({ paths: ['/data'] });
    expect((await s.req('/data/shared', { token })).status).toBe(200);
    expect((await s.req('/data/mine', { token, method: 'PUT', body: 'x' })).status).toBe(201);
    const outside = await s.req('/svc/box', { token });
    expect(outside.status).toBe(403);
    expect(await code(outside)).toBe('EACCES');
    expect((await s.req('/svc/box', { token, method: 'POST', body: 'x' })).status).toBe(403);
    expect((await s.req('/mounts', { token })).status).toBe(403);
    const root = (await (await s.req('/', { token })).json()) as { name: string }[];
    expect(root.map((r) => r.name)).toEqual(['data']);
    // A name that merely starts like the prefix is outside it.
    const { token: narrow } = await newToken({ paths: ['/data/sub'] });
    await s.req('/data/subway', { method: 'PUT', body: 'x' });
    expect((await s.req('/data/subway', { token: narrow })).status).toBe(403);
  });

  it('a non-admin token cannot write admin-only files or manage tokens', async () => {
    const { token } = await newToken({ paths: ['/svc', '/runtime'] });
    expect((await s.req('/svc/policy', { token })).status).toBe(200);
    const policy = await s.req('/svc/policy', { token, method: 'PUT', body: '{"limit": 9}' });
    expect(policy.status).toBe(403);
    expect((await s.req('/runtime/tokens/', { token })).status).toBe(403);
    expect((await s.req('/runtime/tokens/new', { token, method: 'POST', body: '{}' })).status).toBe(403);
  });
});

describe('expiry and revocation', () => {
  it('an expired token is 401', async () => {
    const { token } = await newToken({ ttl: '300ms' });
    expect((await s.req('/data/shared', { token })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 400));
    const res = await s.req('/data/shared', { token });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('expired');
    const listed = (await (await s.req('/runtime/tokens/')).json()) as { name: string }[];
    expect(listed.length).toBeGreaterThan(0);
  });

  it('a revoked token is 401 at once, also for a watch it opens afterwards', async () => {
    const { token, id } = await newToken({ name: 'to revoke' });
    expect((await s.req('/data/shared', { token })).status).toBe(200);
    expect((await s.req(`/runtime/tokens/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await s.req('/data/shared', { token })).status).toBe(401);
    expect((await s.req('/data/?watch=1', { token })).status).toBe(401);
    expect((await s.req(`/runtime/tokens/${id}`, { method: 'DELETE' })).status).toBe(404);
  });

  it('token requests are validated', async () => {
    for (const body of ['{"agent": "Bad Name"}', '{"ttl": "soon"}', '{"paths": ["relative"]}', '{"bogus": 1}', '[1', '{"ttl": -5}']) {
      const res = await s.req('/runtime/tokens/new', { method: 'POST', body });
      expect(res.status, body).toBe(400);
      expect(await code(res)).toBe('EINVAL');
    }
  });

  it('a revoked admin token is replaced with a fresh one at the next start', async () => {
    const home = join(s.home, 'replace');
    const first = await startFixtureServer({ home });
    const id = first.token.split('_')[1]!;
    await first.req(`/runtime/tokens/${id}`, { method: 'DELETE' });
    await first.close();
    const second = await startFixtureServer({ home });
    try {
      expect(second.token).not.toBe(first.token);
      expect(readFileSync(join(home, 'admin.token'), 'utf8').trim()).toBe(second.token);
      expect((await second.req('/data/')).status).toBe(200);
    } finally {
      await second.close();
    }
    // A garbled file is replaced too.
    writeFileSync(join(home, 'admin.token'), 'garbage\n');
    const third = await startFixtureServer({ home });
    try {
      expect(third.token).toMatch(/^a9_/);
    } finally {
      await third.close();
    }
  });
});
