/**
 * Hostile input against the real server: `agentctl serve` in a child process, requests over loopback
 * with an agent-scoped token, the real Docker engine behind /containers. Crafted image references once
 * took the whole process down (the engine answered a `..` path with a redirect and docker-modem threw
 * inside a response callback); every one must now be EINVAL naming `image`, and the server must stay up.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isErrorCode } from '../../src/fs/errors.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup, openStorage, tempDir } from '../helpers.js';
import { ensureBuilt, startServe, type ServeProcess } from '../cli/helpers.js';
import { BUSYBOX, removeLabelled, requireEngine } from './engine.js';

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

/** A 4xx JSON error with a POSIX code; for EINVAL the message names the field. */
function expectRefused(res: Answer, code: string, field?: string): void {
  expect(res.status, res.body).toBeGreaterThanOrEqual(400);
  expect(res.status, res.body).toBeLessThan(500);
  expect(res.json.error?.code, res.body).toBe(code);
  if (field !== undefined) expect(res.json.error?.message, res.body).toContain(`'${field}'`);
  // Never a client library's words (docker-modem's "(HTTP code 400) ..." or Node's "Invalid URL").
  expect(res.json.error?.message).not.toMatch(/HTTP code|Invalid URL|ERR_|modem/);
}

beforeAll(async () => {
  provider = await requireEngine();
  await ensureBuilt();
  home = tempDir();
  serve = await startServe(home);
  const created = await asAdmin('POST', '/agents/new', { name: 'eve', program: 'echo' });
  expect(created.status, created.body).toBe(200);
  const minted = await asAdmin('POST', '/runtime/tokens/new', { agent: 'eve' });
  agentToken = (minted.json as { token: string }).token;
}, 240_000);

afterAll(async () => {
  await serve?.stop('SIGTERM');
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
