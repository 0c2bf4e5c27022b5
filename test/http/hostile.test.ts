/**
 * Hostile input against the real server: `agentctl serve` in a child process, requests over loopback
 * with an agent-scoped token, the real Docker engine behind /containers and a local test double of an
 * OpenAI endpoint behind /compute. Crafted image references once took the whole process down (the
 * engine answered a `..` path with a redirect and docker-modem threw inside a response callback); every
 * one must now be EINVAL naming `image`. Then random and crafted strings go into every field that
 * reaches the engine, a URL, a path or a shell: every answer is 2xx or a 4xx JSON error with a POSIX
 * code, and the server stays up.
 */
import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isErrorCode } from '../../src/fs/errors.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup, openStorage, tempDir } from '../helpers.js';
import { ensureBuilt, startServe, type ServeProcess } from '../cli/helpers.js';
import { BUSYBOX, removeLabelled, requireEngine } from '../containers/engine.js';
import { startFakeOpenAi, type FakeOpenAi } from '../compute/fake-openai.js';

const FAKE_KEY = 'sk-hostile-test-double-key';
let fake: FakeOpenAi;

let provider: DockerProvider;
let serve: ServeProcess;
let home: string;
let agentToken: string;

interface Answer {
  status: number;
  body: string;
  json: { error?: { code?: string; message?: string; path?: string } } & Record<string, unknown>;
}

/** One request with the path sent exactly as written. */
function send(method: string, path: string, body: string | undefined, token: string): Promise<Answer> {
  const url = new URL(serve.url);
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: url.hostname, port: url.port, method, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => {
        let json: Answer['json'] = {};
        try {
          json = JSON.parse(text) as Answer['json'];
        } catch {
          /* checked by the caller */
        }
        resolve({ status: res.statusCode ?? 0, body: text, json });
      });
    });
    r.on('error', reject);
    r.end(body);
  });
}

const asAgent = (method: string, path: string, body?: unknown) =>
  send(method, path, body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), agentToken);
const asAdmin = (method: string, path: string, body?: unknown) =>
  send(method, path, body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), serve.token);

/** The server still answers (a dead one refuses the connection). */
async function expectAlive(): Promise<void> {
  const res = await asAgent('GET', '/status');
  expect(res.status).toBe(200);
}

/** Words of a client library (docker-modem's "(HTTP code 400) ...", Node's "Invalid URL"), never ours. */
const LIBRARY_WORDS = /HTTP code|Invalid URL|ERR_[A-Z]|modem|dockerode/;

/** A 4xx JSON error with a POSIX code; for EINVAL the message names the field. */
function expectRefused(res: Answer, code: string, field?: string): void {
  expect(res.status, res.body).toBeGreaterThanOrEqual(400);
  expect(res.status, res.body).toBeLessThan(500);
  expect(res.json.error?.code, res.body).toBe(code);
  if (field !== undefined) expect(res.json.error?.message, res.body).toContain(`'${field}'`);
  expect(res.json.error?.message).not.toMatch(LIBRARY_WORDS);
}

/** A success (JSON or no body), or a 4xx JSON error `{error: {code, message, path}}` with a POSIX code: never a 5xx. */
function expectAnswered(res: Answer, what: unknown): void {
  const where = `${JSON.stringify(what)} -> ${res.status} ${res.body.slice(0, 500)}`;
  expect(res.status, where).toBeGreaterThanOrEqual(200);
  expect(res.status, where).toBeLessThan(500);
  if (res.body !== '' || res.status !== 204) expect(() => JSON.parse(res.body) as unknown, where).not.toThrow();
  if (res.status >= 300) {
    expect(isErrorCode(res.json.error?.code), where).toBe(true);
    expect(typeof res.json.error?.message, where).toBe('string');
    expect(typeof res.json.error?.path, where).toBe('string');
    expect(res.json.error?.message, where).not.toMatch(LIBRARY_WORDS);
  }
}

beforeAll(async () => {
  provider = await requireEngine();
  await ensureBuilt();
  fake = await startFakeOpenAi(FAKE_KEY);
  home = tempDir();
  // No model list: the endpoint takes any model name, so random names reach it over HTTP.
  writeFileSync(join(home, 'config.json'), JSON.stringify({ compute: { providers: { fake: { base_url: fake.url, api_key_env: 'FAKE_KEY' } } } }));
  serve = await startServe(home, [], { FAKE_KEY });
  const created = await asAdmin('POST', '/agents/new', { name: 'eve', program: 'echo' });
  expect(created.status, created.body).toBe(200);
  const minted = await asAdmin('POST', '/runtime/tokens/new', { agent: 'eve' });
  agentToken = (minted.json as { token: string }).token;
}, 240_000);

afterAll(async () => {
  await serve?.stop('SIGTERM');
  await fake?.close();
  const storage = openStorage(home);
  const instance = storage.metaGet('containers.instance');
  if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  cleanup();
});

/** Names that reached the engine API as path segments and made it redirect (or worse). */
const CRAFTED_IMAGES = [
  '../x',
  'a/../../b',
  '%2e%2e/x',
  '//host/x',
  'http://127.0.0.1:1/x',
  './x',
  'x/..',
  'x/../../../../v1.41/containers/json',
  'a//b',
  '/x',
  'x/',
  '..',
  '.',
  'x?all=1',
  'x#frag',
  'x%2F..%2Fy',
  'x\\..\\y',
  'x\ny',
  ' x',
];

/** Names the engine itself calls invalid (once a 502 with docker-modem's message). */
const ENGINE_INVALID_IMAGES = ['x y', 'UPPER/Case', 'a:b:c', 'x@sha256:zz', 'x:', 'x@', ':tag', 'x:-tag', 'a'.repeat(256), 'X', 'x__-y', 'x:' + 't'.repeat(129)];

describe('crafted image references', () => {
  it('are EINVAL naming image, and the server stays up', async () => {
    for (const image of [...CRAFTED_IMAGES, ...ENGINE_INVALID_IMAGES]) {
      const res = await asAgent('POST', '/containers/new', { image, commands: ['true'] });
      expectRefused(res, 'EINVAL', 'image');
      await expectAlive();
    }
    // The same as an interactive session, and through the global view with the admin token.
    expectRefused(await asAgent('POST', '/containers/new', { image: '../x' }), 'EINVAL', 'image');
    expectRefused(await asAdmin('POST', '/agents/eve/containers/new', { image: '%2e%2e/x' }), 'EINVAL', 'image');
    await expectAlive();
  });

  it('leave valid references working: a session still runs', async () => {
    for (const image of ['agent9/busybox', BUSYBOX, 'docker.io/agent9/busybox:latest', 'localhost:5000/a/b:c', 'x@sha256:' + 'a'.repeat(64)]) {
      const res = await asAgent('POST', '/containers/new', { image, commands: ['echo hi'], wait: true });
      if (image.includes('agent9/')) {
        expect(res.status, res.body).toBe(200);
        expect(res.json['stdout']).toBe('hi\n');
      } else {
        // Well formed, but not in the engine: EINVAL saying so, never a 502.
        expectRefused(res, 'EINVAL', 'image');
        expect(res.json.error?.message).toContain('not in the engine');
      }
    }
  });

  it('other fields the engine would misread are EINVAL naming them, before anything starts', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ env: { V: 'a\0b' } }, 'env.V'],
      [{ env: { '1X': 'v' } }, 'env.1X'],
      [{ commands: ['echo a\0b'] }, 'commands.0'],
      [{ commands: [['echo', 'a\0b']] }, 'commands.0.1'],
      [{ workdir: '/work\nspace' }, 'workdir'],
      [{ workdir: '/' + 'x'.repeat(256) }, 'workdir'],
      [{ workdir: '/a/../b' }, 'workdir'],
      [{ user: 'root;id' }, 'user'],
    ];
    for (const [fields, field] of cases) {
      const res = await asAgent('POST', '/containers/new', { image: BUSYBOX, commands: ['true'], ...fields });
      expectRefused(res, 'EINVAL', field);
    }
    const started = await asAgent('POST', '/containers/new', { image: BUSYBOX, kind: 'interactive' });
    const exec = `/containers/sessions/${started.json['session_id'] as string}/exec/new`;
    expectRefused(await asAgent('POST', exec, { command: 'pwd', workdir: '../../etc' }), 'EINVAL', 'workdir');
    expectRefused(await asAgent('POST', exec, { command: ['a\0'] }), 'EINVAL', 'command.0');
    expectRefused(await asAgent('POST', exec, 'echo a\0b'), 'EINVAL', 'command');
    // A relative workdir is below the session's.
    await asAgent('POST', exec, { command: 'mkdir -p sub/dir', wait: true });
    expect((await asAgent('POST', exec, { command: 'pwd', workdir: 'sub/dir', wait: true })).json).toMatchObject({ exit_code: 0, stdout: '/workspace/sub/dir\n' });
    await asAgent('POST', `/containers/sessions/${started.json['session_id'] as string}/ctl`, 'kill');
  });

  it('in the policy are EINVAL on write (default_image, allowed_images, blocked_images)', async () => {
    const policy = '/agents/eve/containers/policy';
    expectRefused(await asAdmin('PUT', policy, { default_image: '../x' }), 'EINVAL', 'default_image');
    expectRefused(await asAdmin('PUT', policy, { default_image: 'UPPER/Case' }), 'EINVAL', 'default_image');
    expectRefused(await asAdmin('PUT', policy, { allowed_images: ['agent9/*', 'x y'] }), 'EINVAL', 'allowed_images.1');
    expectRefused(await asAdmin('PUT', policy, { blocked_images: ['../*'] }), 'EINVAL', 'blocked_images.0');
    expectRefused(await asAdmin('PUT', policy, { network_mode: 'container:../x' }), 'EINVAL', 'network_mode');
    const ok = await asAdmin('PUT', policy, { allowed_images: ['agent9/*', '*:latest', 'localhost:5000/*'], blocked_images: ['agent9/python*'] });
    expect(ok.status, ok.body).toBeLessThan(300);
    const read = await asAdmin('GET', policy);
    expect(read.json).toMatchObject({ allowed_images: ['agent9/*', '*:latest', 'localhost:5000/*'], default_image: 'agent9/busybox:latest' });
    expect((await asAdmin('PUT', policy, {})).status).toBeLessThan(300);
  });
});

/** Strings that broke servers before: paths, URLs, shell syntax, NUL and other controls, long ones. */
const NASTY = [
  ...CRAFTED_IMAGES,
  ...ENGINE_INVALID_IMAGES,
  '',
  ' ',
  '\0',
  'a\0b',
  '\r\nx: y',
  '\u007f',
  '\u202e',
  '\ud800',
  '$(id)',
  '`id`',
  "'; kill -9 1; '",
  '${HOME}',
  '%00',
  '%0a',
  '/',
  '/proc',
  '/workspace/../etc',
  'root',
  '0:0',
  '65535:65535',
  'nobody',
  'a=b',
  'PATH',
  'LD_PRELOAD',
  'AGENT9_EXEC',
  '-rf',
  'container:x',
  'x'.repeat(300),
  '/' + 'y'.repeat(300),
];

const hostile = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 2, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z0-9._:/@-]{1,24}$/) },
  { weight: 1, arbitrary: fc.stringMatching(/^\/[A-Za-z0-9 ._-]{1,16}(\/[A-Za-z0-9._-]{1,8})?$/) },
);

/** A JSON value where a string is expected: mostly strings, sometimes the wrong type. */
const hostileValue = fc.oneof({ weight: 6, arbitrary: hostile }, { weight: 1, arbitrary: fc.constantFrom(null, 0, -1, 1e300, true, [], {}, ['x']) });

const RUNS = 25;

async function property<T>(arb: fc.Arbitrary<T>, send: (value: T) => Promise<Answer>, numRuns = RUNS): Promise<void> {
  await fc.assert(
    fc.asyncProperty(arb, async (value) => {
      expectAnswered(await send(value), value);
    }),
    { numRuns },
  );
  await expectAlive();
}

/** A session request; short-lived, so that valid ones end soon (over max_concurrent they get EAGAIN, a 4xx). */
const newSession = (body: Record<string, unknown>) => asAgent('POST', '/containers/new', { image: BUSYBOX, commands: ['true'], timeout_ms: 10_000, ...body });
/**
 * The same, answered once the session ended: for fields where most values are valid and must really
 * run. At max_concurrent it waits for earlier sessions to end, as a client told EAGAIN would.
 */
async function runSession(body: Record<string, unknown>): Promise<Answer> {
  for (let attempt = 0; ; attempt++) {
    const res = await newSession({ ...body, wait: true });
    if (res.status !== 429 || attempt === 40) return res;
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('random strings into every field', () => {
  let sid: string;

  beforeAll(async () => {
    // Few sessions at once, so valid requests do not pile up containers (over it: EAGAIN, a 4xx).
    expect((await asAdmin('PUT', '/agents/eve/containers/policy', { max_concurrent: 4, default_time_secs: 60 })).status).toBeLessThan(300);
    const started = await asAgent('POST', '/containers/new', { image: BUSYBOX, kind: 'interactive', limits: { max_time_secs: 900 } });
    expect(started.status, started.body).toBe(200);
    sid = started.json['session_id'] as string;
  }, 60_000);

  it('session requests: image, env names and values, workdir, user, commands, scope, provider, limits', async () => {
    await property(hostileValue, (image) => newSession({ image }));
    await property(hostile, (name) => newSession({ env: { [name]: 'v' } }));
    await property(hostileValue, (value) => runSession({ env: { V: value } }), 6);
    await property(hostileValue, (workdir) => newSession({ workdir }));
    await property(hostileValue, (user) => newSession({ user }));
    await property(
      fc.oneof(hostileValue, fc.array(hostile, { maxLength: 3 }), fc.array(fc.array(hostile, { minLength: 1, maxLength: 3 }), { maxLength: 2 })),
      (commands) => runSession({ commands }),
      6,
    );
    await property(fc.record({ org: hostileValue, repo: hostileValue }), (scope) => newSession({ budget_scope: scope }), 15);
    await property(fc.record({ provider: hostileValue, idempotency_key: hostileValue, kind: hostileValue }, { requiredKeys: [] }), (fields) => newSession(fields), 15);
    const limit = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 1e300, 2 ** 53, 0.001, '1', null));
    await property(
      fc.record({ max_time_secs: limit, max_memory_mb: limit, max_cpu_cores: limit, max_pids: limit, max_disk_mb: limit, exec_timeout_secs: limit }, { requiredKeys: [] }),
      (limits) => newSession({ limits, timeout_ms: undefined }),
      15,
    );
    await property(fc.record({ timeout_ms: limit, max_cost: limit, max_cost_usd: limit }, { requiredKeys: [] }), (fields) => newSession(fields), 15);
    // Whole bodies: random bytes and random JSON.
    await property(fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')), fc.json()), (body) => asAgent('POST', '/containers/new', body), 20);
  }, 120_000);

  it('exec requests: command, workdir, user, env, stdin, plain-text lines', async () => {
    // Commands that never end (cat with stdin kept open) are killed at their time limit.
    const exec = (body: unknown) =>
      asAgent('POST', `/containers/sessions/${sid}/exec/new`, typeof body === 'object' && body !== null ? { timeout_secs: 5, ...body } : body);
    await property(fc.oneof(hostileValue, fc.array(hostile, { minLength: 1, maxLength: 3 })), (command) => exec({ command }), 20);
    await property(hostileValue, (workdir) => exec({ command: 'pwd', workdir }), 20);
    await property(hostileValue, (user) => exec({ command: 'id', user }), 20);
    await property(hostile, (name) => exec({ command: 'true', env: { [name]: 'v' } }), 20);
    await property(hostileValue, (value) => exec({ command: 'true', env: { V: value } }), 20);
    await property(hostileValue, (stdin) => exec({ command: 'cat', stdin }), 10);
    await property(hostile, (line) => exec(line), 20);
    // The session is still there and runs commands.
    const res = await exec({ command: ['echo', 'still here'], wait: true });
    expect(res.status, res.body).toBe(200);
    expect(res.json['stdout']).toBe('still here\n');
  }, 120_000);

  it('compute requests: model, provider, prompt, messages, stop, scope', async () => {
    const job = (body: Record<string, unknown>) => asAgent('POST', '/compute/new', { prompt: 'hi', ...body });
    await property(hostileValue, (model) => job({ model }));
    await property(hostileValue, (provider) => job({ model: 'echo', provider }));
    await property(hostileValue, (prompt) => job({ model: 'echo', prompt }));
    await property(fc.record({ role: hostileValue, content: hostileValue, name: hostileValue }, { requiredKeys: ['role', 'content'] }), (message) => job({ model: 'fake-chat', prompt: undefined, messages: [message] }), 15);
    await property(fc.oneof(hostileValue, fc.array(hostile, { maxLength: 3 })), (stop) => job({ model: 'fake-chat', stop }), 15);
    await property(fc.record({ org: hostileValue, issue: hostileValue }), (budget_scope) => job({ model: 'echo', budget_scope }), 15);
    // The endpoint got the model names that passed, as JSON: the job ran or failed, the server is up.
    expect(fake.requests.length).toBeGreaterThan(0);
  }, 120_000);

  it('policy writes by the admin: default_image, image patterns, network_mode', async () => {
    const policy = '/agents/eve/containers/policy';
    await property(hostileValue, (default_image) => asAdmin('PUT', policy, { default_image }), 20);
    await property(fc.array(hostile, { maxLength: 3 }), (allowed_images) => asAdmin('PUT', policy, { allowed_images }), 20);
    await property(fc.array(hostile, { maxLength: 3 }), (blocked_images) => asAdmin('PUT', policy, { blocked_images }), 20);
    await property(hostileValue, (network_mode) => asAdmin('PUT', policy, { network_mode }), 20);
    expect((await asAdmin('PUT', policy, {})).status).toBeLessThan(300);
    // Whatever was stored meanwhile, the agent still gets a session.
    const res = await newSession({ commands: ['echo ok'], wait: true });
    expect(res.status, res.body).toBe(200);
    expect(res.json['stdout']).toBe('ok\n');
  }, 120_000);
});
