/**
 * The health probes as a supervisor polls them, with curl and without a token, over a real loopback
 * socket: /healthz while the process answers, /readyz while its storage serves (503 with the reason
 * once it does not); and the version of the server in /runtime/status.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { serveAgent9 } from './served.js';

const run = promisify(execFile);
afterAll(cleanup);

/** `curl -s -w '\n%{http_code}' URL` (no token), its status and body. */
async function curl(url: string, ...args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run('curl', ['-s', '-w', '\n%{http_code}', ...args, url]);
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut).trimEnd() };
}

describe('health probes', () => {
  it('/healthz and /readyz answer without a token; /readyz is 503 with the reason once storage is closed', async () => {
    const s = await serveAgent9({ compute: false, containers: false });
    const url = s.server.url;
    try {
      expect(await curl(`${url}/healthz`)).toEqual({ status: 200, body: '{"status":"ok"}' });
      expect(await curl(`${url}/readyz`)).toEqual({ status: 200, body: '{"status":"ready"}' });
      // curl -I: HEAD gives the status too (no body).
      expect((await curl(`${url}/readyz`, '-I')).body).toMatch(/^HTTP\/1\.1 200/);
      // A token is not needed, and a wrong one does not matter: the probes touch no file.
      expect((await curl(`${url}/healthz`, '-H', 'Authorization: Bearer nonsense')).status).toBe(200);
      // Everything else still needs one.
      expect((await curl(`${url}/runtime/status`)).status).toBe(401);

      s.a9.storage.close();
      const down = await curl(`${url}/readyz`);
      expect(down.status).toBe(503);
      expect(JSON.parse(down.body)).toEqual({ status: 'not ready', reason: 'the database is closed' });
      expect((await curl(`${url}/readyz`, '-I')).body).toMatch(/^HTTP\/1\.1 503/);
      // The process still answers.
      expect((await curl(`${url}/healthz`)).status).toBe(200);
    } finally {
      await s.server.close();
      await s.a9.close().catch(() => undefined);
    }
  });

  it('/runtime/status names the version of agent9 (package.json)', async () => {
    const s = await serveAgent9({ compute: false, containers: false });
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
      expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/);
      expect((await s.ok<{ version: string }>('/runtime/status')).version).toBe(pkg.version);
    } finally {
      await s.close();
    }
  });
});
