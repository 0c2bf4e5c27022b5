/**
 * The whole /containers flow over HTTP on a real loopback socket, with the requests curl would send:
 * POST a call file, GET a stream as it runs, GET results, PUT/GET/DELETE workdir files, SSE watch, ctl.
 */
import { request as httpRequest } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/http/listener.js';
import { Agent9 } from '../../src/server/agent9.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup, tempDir } from '../helpers.js';
import { BUSYBOX, PYTHON, removeLabelled, requireEngine } from './engine.js';

let provider: DockerProvider;
let a9: Agent9;
let server: RunningServer;
const C = '/agents/bob/containers';

beforeAll(async () => {
  provider = await requireEngine();
  const home = tempDir();
  a9 = await Agent9.open({ home, scheduler: false });
  server = await startServer({ home, storage: a9.storage, namespace: a9.namespace, tokens: a9.tokens, registry: a9.registry, port: 0 });
  await req('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'bob', program: 'echo' }) });
});

afterAll(async () => {
  await server?.close();
  const instance = a9?.containers?.instanceId;
  await a9?.close();
  if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  cleanup();
});

/** fetch with the admin token, like `curl -H "Authorization: Bearer $(cat admin.token)"`. */
function req(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${server.adminToken}`);
  return fetch(server.url + path, { ...init, headers });
}

async function json(path: string, init?: RequestInit): Promise<Record<string, unknown>> {
  const res = await req(path, init);
  const body = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: ${res.status} ${body}`);
  return JSON.parse(body) as Record<string, unknown>;
}

/** A request with the path sent exactly as written (fetch would resolve `..` itself). */
function raw(path: string): Promise<{ status: number; body: string }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: url.hostname, port: url.port, path, headers: { authorization: `Bearer ${server.adminToken}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

describe('/containers over HTTP', () => {
  it('runs a session: POST new, GET the output as it streams, GET the result', async () => {
    const answer = await json(`${C}/new`, {
      method: 'POST',
      body: JSON.stringify({ image: PYTHON, commands: ['python3 -c "import sys; print(6*7, flush=True); print(\'oops\', file=sys.stderr)"'] }),
    });
    const sid = answer['session_id'] as string;
    const out = await req(`${C}/sessions/${sid}/output`);
    expect(out.status).toBe(200);
    const chunks = (await out.text())
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { stream: string; data: string });
    // stdout and stderr are two pipes: their relative order is not defined, each one's content is.
    const of = (stream: string) => chunks.filter((c) => c.stream === stream).map((c) => c.data).join('');
    expect([of('stdout'), of('stderr')]).toEqual(['42\n', 'oops\n']);
    expect(chunks.length).toBe(2);
    await a9.containers!.waitFor(sid);
    expect(await json(`${C}/sessions/${sid}/result`)).toMatchObject({ status: 'complete', exit_code: 0, stdout: '42\n', stderr: 'oops\n' });
    const sessions = (await json(`${C}/sessions/`)) as unknown as { name: string }[];
    expect(sessions.map((s) => s.name)).toContain(sid);
  });

  it('answers errors with their status: 400 for a bad request, 429 not ready, 404 unknown session', async () => {
    const bad = await req(`${C}/new`, { method: 'POST', body: '{"image": 42}' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('EINVAL');
    const missing = await req(`${C}/sessions/nosuchsession/status`);
    expect(missing.status).toBe(404);
    const answer = await json(`${C}/new`, { method: 'POST', body: JSON.stringify({ image: BUSYBOX, commands: ['sleep 2'] }) });
    const notReady = await req(`${C}/sessions/${answer['session_id']}/result`);
    expect(notReady.status).toBe(429);
    expect(notReady.headers.get('retry-after')).toBeTruthy();
    await req(`${C}/sessions/${answer['session_id']}/ctl?append=1`, { method: 'POST', body: 'kill' });
  });

  it('serves the workdir: PUT, GET, list, DELETE, and refuses escapes with 400 EINVAL', async () => {
    const answer = await json(`${C}/new`, { method: 'POST', body: JSON.stringify({ image: PYTHON, kind: 'interactive' }) });
    const sid = answer['session_id'] as string;
    const files = `${C}/sessions/${sid}/files`;
    expect((await req(`${files}/src/`, { method: 'PUT' })).status).toBeLessThan(300);
    expect((await req(`${files}/src/main.py`, { method: 'PUT', body: 'print("hello from a file")\n' })).status).toBeLessThan(300);
    expect(await (await req(`${files}/src/main.py`)).text()).toBe('print("hello from a file")\n');
    const listing = (await json(`${files}/src/`)) as unknown as { name: string; type: string; size: number }[];
    expect(listing).toEqual([expect.objectContaining({ name: 'main.py', type: 'file', size: 27 })]);

    const run = await json(`${C}/sessions/${sid}/exec/new`, { method: 'POST', body: 'python3 src/main.py' });
    const stdout = await req(`${C}/sessions/${sid}/exec/${run['exec_id']}/stdout`);
    expect(await stdout.text()).toBe('hello from a file\n');
    expect(await json(`${C}/sessions/${sid}/exec/${run['exec_id']}/result`)).toMatchObject({ exit_code: 0 });

    expect((await req(`${files}/src/main.py`, { method: 'DELETE' })).status).toBeLessThan(300);
    expect((await req(`${files}/src/main.py`)).status).toBe(404);

    const dotdot = await raw(`${files}/../../../../etc/passwd`);
    expect(dotdot.status).toBe(400);
    expect(dotdot.body).toContain('EINVAL');
    await json(`${C}/sessions/${sid}/exec/new`, { method: 'POST', body: JSON.stringify({ command: 'ln -s /etc etc', wait: true }) });
    const viaLink = await req(`${files}/etc/passwd`);
    expect(viaLink.status).toBe(400);
    expect(((await viaLink.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'EINVAL' });

    expect((await req(`${C}/sessions/${sid}/ctl?append=1`, { method: 'POST', body: 'stop' })).status).toBeLessThan(300);
    expect(await json(`${C}/sessions/${sid}/status`)).toMatchObject({ status: 'stopped' });
  });

  it('watches a session over SSE until its end', async () => {
    const answer = await json(`${C}/new`, { method: 'POST', body: JSON.stringify({ image: BUSYBOX, commands: ['echo one; sleep 0.3; echo two'] }) });
    const sid = answer['session_id'] as string;
    const res = await req(`${C}/sessions/${sid}/output?watch=1&from=0`, { headers: { accept: 'text/event-stream' } });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text();
    const events = text
      .split('\n\n')
      .map((frame) => ({ event: /^event: (.*)$/m.exec(frame)?.[1], data: /^data: (.*)$/m.exec(frame)?.[1] }))
      .filter((e) => e.event);
    expect(events.filter((e) => e.event === 'data').map((e) => (JSON.parse(e.data!) as { data: { data: string } }).data.data)).toEqual(['one\n', 'two\n']);
    expect(events.at(-1)?.event).toBe('end');
  });

  it('reports a missing engine as 502 with the reason, and keeps serving the rest', async () => {
    const home = tempDir();
    writeFileSync(join(home, 'config.json'), JSON.stringify({ containers: { docker: { socket: '/nonexistent/docker.sock' } } }));
    const b = await Agent9.open({ home, scheduler: false });
    const s = await startServer({ home, storage: b.storage, namespace: b.namespace, tokens: b.tokens, registry: b.registry, port: 0 });
    try {
      const h = { authorization: `Bearer ${s.adminToken}` };
      await fetch(`${s.url}/agents/new`, { method: 'POST', headers: h, body: JSON.stringify({ name: 'carl', program: 'echo' }) });
      const res = await fetch(`${s.url}/agents/carl/containers/new`, { method: 'POST', headers: h, body: '{"commands": ["true"]}' });
      expect(res.status).toBe(502);
      const err = ((await res.json()) as { error: { code: string; message: string } }).error;
      expect(err.code).toBe('EREMOTEIO');
      expect(err.message).toContain('/nonexistent/docker.sock');
      const health = (await (await fetch(`${s.url}/agents/carl/containers/providers/docker/health`, { headers: h })).json()) as { status: string };
      expect(health.status).toBe('unavailable');
      expect((await fetch(`${s.url}/agents/carl/status`, { headers: h })).status).toBe(200);
    } finally {
      await s.close();
      await b.close();
    }
  });
});
