/**
 * CORS as a browser exercises it, with the requests it sends (curl plays the browser) over a real
 * loopback socket: off by default; for an origin named in config.json's `http.cors.origins`, the
 * preflight is answered without a token and every answer (errors and watches too) may be read by the
 * page; other origins get nothing; a bad section stops the start.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FsError } from '../../src/fs/errors.js';
import { startServer } from '../../src/http/listener.js';
import { Agent9 } from '../../src/server/agent9.js';
import { cleanup, tempDir } from '../helpers.js';
import { serveAgent9, type Served } from './served.js';

const run = promisify(execFile);
afterAll(cleanup);

const DASH = 'http://dash.localhost:8080';

/** `curl -s -D - -o /dev/null ARGS URL`: the status and the headers (names lower-cased). */
async function headersOf(url: string, ...args: string[]): Promise<{ status: number; headers: Record<string, string> }> {
  const { stdout } = await run('curl', ['-s', '-D', '-', '-o', '/dev/null', '--max-time', '5', ...args, url]).catch((err: { stdout: string }) => err);
  const [statusLine, ...lines] = stdout.split('\r\n\r\n')[0]!.split('\r\n');
  return {
    status: Number(statusLine!.split(' ')[1]),
    headers: Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])),
  };
}

const preflight = (s: Served, path: string, origin: string) =>
  headersOf(`${s.server.url}${path}`, '-X', 'OPTIONS', '-H', `Origin: ${origin}`, '-H', 'Access-Control-Request-Method: PUT', '-H', 'Access-Control-Request-Headers: authorization, if-match');

async function served(config?: unknown): Promise<Served> {
  const home = tempDir('agent9-cors-');
  if (config !== undefined) writeFileSync(join(home, 'config.json'), JSON.stringify(config));
  return serveAgent9({ home, compute: false, containers: false });
}

describe('CORS', () => {
  it('is off by default: no Access-Control-* header for any origin, a preflight is a plain OPTIONS', async () => {
    const s = await served();
    try {
      const get = await headersOf(`${s.server.url}/runtime/status`, '-H', `Origin: ${DASH}`, '-H', `Authorization: Bearer ${s.server.adminToken}`);
      expect(get.status).toBe(200);
      expect(Object.keys(get.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
      const pre = await preflight(s, '/agents/new', DASH);
      expect(pre.status).toBe(204);
      expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await s.close();
    }
  });

  it('for a configured origin: the preflight is answered without a token, every answer may be read', async () => {
    const s = await served({ http: { cors: { origins: [DASH] } } });
    const auth = ['-H', `Authorization: Bearer ${s.server.adminToken}`];
    try {
      const pre = await preflight(s, '/agents/new/memory/x', DASH);
      expect(pre.status).toBe(204);
      expect(pre.headers['access-control-allow-origin']).toBe(DASH);
      expect(pre.headers['access-control-allow-methods']).toContain('PUT');
      expect(pre.headers['access-control-allow-headers']?.toLowerCase()).toContain('authorization');
      expect(pre.headers['access-control-allow-headers']?.toLowerCase()).toContain('if-match');
      expect(Number(pre.headers['access-control-max-age'])).toBeGreaterThan(0);
      expect(pre.headers['access-control-allow-credentials']).toBeUndefined();

      const get = await headersOf(`${s.server.url}/runtime/status`, '-H', `Origin: ${DASH}`, ...auth);
      expect(get.status).toBe(200);
      expect(get.headers['access-control-allow-origin']).toBe(DASH);
      expect(get.headers['vary']).toContain('Origin');
      expect(get.headers['access-control-expose-headers']).toContain('ETag');
      expect(get.headers['access-control-expose-headers']).toContain('X-Agent9-Version');
      // Errors too, so that the page can read the JSON error: a missing file, a missing token.
      const missing = await headersOf(`${s.server.url}/agents/nobody/status`, '-H', `Origin: ${DASH}`, ...auth);
      expect([missing.status, missing.headers['access-control-allow-origin']]).toEqual([404, DASH]);
      const noToken = await headersOf(`${s.server.url}/runtime/status`, '-H', `Origin: ${DASH}`);
      expect([noToken.status, noToken.headers['access-control-allow-origin']]).toEqual([401, DASH]);
      expect(noToken.headers['access-control-expose-headers']).toContain('WWW-Authenticate');
      // A watch (SSE): its headers are sent at once; curl gives up after a second.
      const watch = await headersOf(`${s.server.url}/agents?watch=1`, '--max-time', '1', '-H', `Origin: ${DASH}`, ...auth);
      expect([watch.headers['content-type'], watch.headers['access-control-allow-origin']]).toEqual(['text/event-stream', DASH]);
      // The probes as well.
      expect((await headersOf(`${s.server.url}/readyz`, '-H', `Origin: ${DASH}`)).headers['access-control-allow-origin']).toBe(DASH);
    } finally {
      await s.close();
    }
  });

  it('another origin gets no CORS headers, also on its preflight', async () => {
    const s = await served({ http: { cors: { origins: [DASH] } } });
    try {
      const other = await preflight(s, '/agents/new', 'http://evil.localhost');
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
      const get = await headersOf(`${s.server.url}/runtime/status`, '-H', 'Origin: http://evil.localhost', '-H', `Authorization: Bearer ${s.server.adminToken}`);
      expect(get.status).toBe(200);
      expect(get.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await s.close();
    }
  });

  it('a bad http section stops the start with EINVAL naming the file and the field', async () => {
    for (const [config, field] of [
      [{ http: { cors: { origins: ['dash.example/path'] } } }, 'http.cors.origins'],
      [{ http: { cors: { origin: [DASH] } } }, 'origin'],
    ] as const) {
      const home = tempDir('agent9-cors-bad-');
      writeFileSync(join(home, 'config.json'), JSON.stringify(config));
      const a9 = await Agent9.open({ home, scheduler: false, compute: false, containers: false });
      try {
        const err = await startServer({ home, storage: a9.storage, namespace: a9.namespace, tokens: a9.tokens, registry: a9.registry, port: 0 }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(FsError);
        expect((err as FsError).code).toBe('EINVAL');
        expect((err as FsError).message).toContain(join(home, 'config.json'));
        expect((err as FsError).message).toContain(field);
      } finally {
        await a9.close();
      }
    }
  });
});
