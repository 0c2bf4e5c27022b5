/**
 * Fuzzing the HTTP mapping with fast-check: random methods, paths, query strings, headers, bodies and
 * tokens against a real server. Never a 5xx, never a crash, every error in the JSON shape, and no write
 * ever lands outside the place its URL and token allow.
 */
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isUnder, normalizePath } from '../../src/fs/paths.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { FIXTURE_SCOPE } from '../conformance/fixture.js';
import { cleanup } from '../helpers.js';
import { registerAgents, startFixtureServer, type FixtureServer } from './helpers.js';

let s: FixtureServer;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  s = await startFixtureServer({ bodyLimit: 64 * 1024 });
  registerAgents(s.storage, 'bob');
  mountWithAccess(s.ns, '/agents/bob', s.storage.dataTree('fuzz:bob', { scope: FIXTURE_SCOPE, prefix: '/agents/bob' }), ReadWrite);
  tokens['admin'] = s.token;
  for (const [name, spec] of Object.entries({
    sub: { paths: ['/data/sub'] },
    ro: { read_only: true },
    bob: { agent: 'bob' },
  })) {
    const res = await s.req('/runtime/tokens/new', { method: 'POST', body: JSON.stringify(spec) });
    expect(res.status, name).toBe(200);
    tokens[name] = ((await res.json()) as { token: string }).token;
  }
  await s.req('/data/sub/', { method: 'PUT' });
});

afterAll(async () => {
  await s.close();
  cleanup();
});

interface Sample {
  method: string;
  segments: string[];
  slash: boolean;
  query: string[];
  headers: Record<string, string>;
  body: Uint8Array | undefined;
  who: string;
}

const segment = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('data', 'sub', 'ro', 'off', 'paid', 'svc', 'box', 'echo', 'feed', 'policy', 'count', 'mounts', 'runtime', 'tokens', 'new', 'metrics', 'agents', 'bob', 'x', 'a.json') },
  { weight: 2, arbitrary: fc.constantFrom('..', '.', '', '%2e%2e', '%2E.', '%00', '%2F', '%', '%zz', '%c3%a9', '~', '*', '%20', 'a%2Fb', "'", '"') },
  { weight: 3, arbitrary: fc.string({ minLength: 1, maxLength: 12 }).map((t) => encodeURIComponent(t)) },
  { weight: 1, arbitrary: fc.constant('n'.repeat(300)) },
);

const sample: fc.Arbitrary<Sample> = fc.record({
  method: fc.constantFrom('GET', 'GET', 'HEAD', 'PUT', 'PUT', 'POST', 'POST', 'DELETE', 'MOVE', 'OPTIONS', 'PATCH', 'TRACE'),
  segments: fc.oneof(
    // Mostly paths that lead somewhere, so that writes also succeed and get checked.
    fc.tuple(fc.constantFrom('data', 'data', 'svc', 'ro', 'paid', 'agents', 'runtime'), fc.array(segment, { maxLength: 3 })).map(([a, rest]) => [a, ...rest]),
    fc.tuple(fc.constantFrom('data'), fc.constantFrom('sub', 'x', 'f.json'), fc.array(segment, { maxLength: 2 })).map(([a, b, rest]) => [a, b, ...rest]),
    fc.array(segment, { minLength: 0, maxLength: 5 }),
  ),
  slash: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  query: fc.oneof(
    { weight: 3, arbitrary: fc.constant([] as string[]) },
    { weight: 2, arbitrary: fc.array(fc.constantFrom('watch=1', 'append=1', 'from=0', 'from=-1', 'from=abc', 'mode=0600', 'mode=9', 'watch=0', 'x=%zz', 'append'), { maxLength: 3 }) },
  ),
  headers: fc.oneof({ weight: 2, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: fc.dictionary(
    fc.constantFrom('if-match', 'if-none-match', 'last-event-id', 'destination', 'content-type', 'accept', 'range'),
    fc.oneof(fc.constantFrom('*', '"1"', 'W/"1"', '"999", "1"', '/data/moved', '/ro/x', '../x', 'text/event-stream', 'application/json', 'bytes=0-1', '5', ''), fc.stringMatching(/^[\x20-\x7e]{0,20}$/)),
    { maxKeys: 3 },
  ) }),
  body: fc.option(
    fc.oneof(
      { weight: 4, arbitrary: fc.uint8Array({ maxLength: 512 }) },
      { weight: 4, arbitrary: fc.constantFrom('{}', '{"limit":2}', '{bad', 'tick', '[1,2]', 'hello').map((t) => new TextEncoder().encode(t)) },
      { weight: 1, arbitrary: fc.constant(new Uint8Array(70 * 1024)) },
    ),
    { nil: undefined },
  ),
  who: fc.constantFrom('admin', 'admin', 'sub', 'ro', 'bob', 'none', 'garbage'),
});

interface Outcome {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** Sends the request exactly as built; SSE and stream responses are cut after their headers. */
function send(x: Sample): Promise<Outcome | 'client-refused'> {
  const path = '/' + x.segments.join('/') + (x.slash ? '/' : '') + (x.query.length ? '?' + x.query.join('&') : '');
  const url = new URL(s.url);
  const headers: Record<string, string> = { ...x.headers };
  if (x.who === 'garbage') headers['authorization'] = 'Bearer not-a-token';
  else if (x.who !== 'none') headers['authorization'] = `Bearer ${tokens[x.who]}`;
  if (x.body) headers['content-length'] = String(x.body.length);
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = httpRequest({ host: url.hostname, port: url.port, method: x.method, path, headers }, (res) => {
        const type = String(res.headers['content-type'] ?? '');
        const long = type.startsWith('text/event-stream') || (res.statusCode === 200 && res.headers['x-agent9-kind'] === 'stream');
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
          if (long) res.destroy();
        });
        const done = () => resolve({ status: res.statusCode!, body, headers: res.headers });
        res.on('end', done);
        res.on('close', done);
        if (long) setTimeout(() => res.destroy(), 50);
      });
    } catch {
      resolve('client-refused');
      return;
    }
    req.on('error', (err) => (String(err).includes('socket hang up') ? resolve({ status: 0, body: '', headers: {} }) : reject(err)));
    req.end(x.body);
  });
}

function decodedPath(x: Sample): string | undefined {
  try {
    return normalizePath(decodeURIComponent('/' + x.segments.join('/')));
  } catch {
    return undefined;
  }
}

const WRITES = new Set(['PUT', 'POST', 'DELETE', 'MOVE']);

it('never a 5xx, never a crash, errors always JSON, writes only where URL and token allow', async () => {
  const writesSeen: { who: string; path: string; method: string }[] = [];
  await fc.assert(
    fc.asyncProperty(sample, async (x) => {
      const out = await send(x);
      if (out === 'client-refused') return;
      if (out.status === 0) throw new Error(`connection dropped for ${x.method} /${x.segments.join('/')}`);
      expect(out.status, `${x.method} /${x.segments.join('/')}: ${out.body}`).toBeLessThan(500);
      if (out.status >= 400) {
        expect(typeof out.headers['x-agent9-error']).toBe('string');
        if (x.method !== 'HEAD') {
          const parsed = JSON.parse(out.body) as { error: { code: string; message: string; path: string } };
          expect(parsed.error.code).toBe(out.headers['x-agent9-error']);
          expect(typeof parsed.error.message).toBe('string');
          expect(typeof parsed.error.path).toBe('string');
        }
      }
      if (WRITES.has(x.method) && out.status >= 200 && out.status < 300) {
        const p = decodedPath(x);
        expect(p, 'a write succeeded on a path the server should have refused').toBeDefined();
        writesSeen.push({ who: x.who, path: p!, method: x.method });
        if (x.who === 'sub') expect(isUnder(p!, '/data/sub'), p).toBe(true);
        expect(x.who === 'ro' || x.who === 'none' || x.who === 'garbage', `${x.who} wrote ${p}`).toBe(false);
      }
    }),
    { numRuns: 3000, seed: 4242, endOnFailure: true },
  );
  // Nothing ever landed in the read-only or disabled trees, and the budget held.
  const count = (tree: string) =>
    (s.storage.db.prepare("SELECT count(*) FROM data_nodes WHERE tree = ? AND path != '/'").pluck().get(tree) as number);
  expect(count('fixture:ro')).toBe(0);
  expect(count('fixture:off')).toBe(0);
  expect(count('fixture:paid')).toBeLessThanOrEqual(3);
  // Every stored path is a normalised absolute path.
  const paths = s.storage.db.prepare('SELECT path FROM data_nodes').pluck().all() as string[];
  for (const p of paths) expect(normalizePath(p)).toBe(p);
  // And the server still serves.
  expect((await s.req('/data/')).status).toBe(200);
  expect(writesSeen.length).toBeGreaterThan(10);
}, 120_000);
