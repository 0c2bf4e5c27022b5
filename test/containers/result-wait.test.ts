/**
 * Results and output of real Docker sessions as a worker script sees them (CONTRACT sections 12, 19):
 * on the mount, `cat result` of an ephemeral session or an exec waits for its end (EAGAIN only with
 * O_NONBLOCK), an interactive session's result is EAGAIN at once; over HTTP `?wait=SECONDS` waits for
 * any of them; an SSE watch of a session's or exec's `output` replays it from its beginning and ends
 * with `end` (a finished one at once), as curl shows.
 */
import { spawn } from 'node:child_process';
import { rmdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountServer, type FuseMount } from '../../src/fuse/index.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup } from '../helpers.js';
import { mountPoint, nonblockRead, ok, q, sh } from '../fuse/helpers.js';
import { serveAgent9, type Served } from '../http/served.js';
import { removeLabelled, requireEngine } from './engine.js';

let provider: DockerProvider;
let s: Served;
let mount: FuseMount;
let C: string; // /containers of agent box on the mount
const H = '/agents/box/containers'; // the same over HTTP

beforeAll(async () => {
  provider = await requireEngine();
  s = await serveAgent9();
  mount = await mountServer(s.a9, await mountPoint());
  await s.ok('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'box', program: 'echo' }) });
  C = `${mount.dir}/agents/box/containers`;
});

afterAll(async () => {
  if (mount) {
    await mount.unmount();
    await rmdir(mount.dir).catch(() => undefined);
  }
  const instance = s?.a9.containers?.instanceId;
  await s?.close();
  if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  cleanup();
});

async function call(path: string, request: unknown): Promise<Record<string, unknown>> {
  const body = typeof request === 'string' ? request : JSON.stringify(request);
  return JSON.parse(await ok(`exec 3<> ${q(path)}; cat >&3; cat <&3`, { input: body })) as Record<string, unknown>;
}

function curl(path: string, maxTime = 20): Promise<{ code: number | null; out: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sN', '--max-time', String(maxTime), '-H', `Authorization: Bearer ${s.server.adminToken}`, s.server.url + path]);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, ms: Date.now() - started }));
  });
}

/** The events of an SSE body, in order: [type, the chunk's data (output chunks)]. */
function events(body: string): Array<[string, string | undefined]> {
  return body
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice(6)) as { type: string; data?: { data?: string } })
    .map((e) => [e.type, e.data?.data]);
}

describe('results on the mount wait for a bounded end', () => {
  it('an ephemeral session: cat result waits for its commands; O_NONBLOCK gives EAGAIN meanwhile', async () => {
    const sid = (await call(`${C}/new`, { image: 'agent9/busybox', commands: ['sleep 1.5; echo done'] }))['session_id'] as string;
    expect((await nonblockRead(`${C}/sessions/${sid}/result`)).stdout.trim()).toBe('EAGAIN 11');
    const result = JSON.parse(await ok(`cat ${q(C)}/sessions/${sid}/result`, { timeoutMs: 30_000 })) as Record<string, unknown>;
    expect(result).toMatchObject({ status: 'complete', exit_code: 0, stdout: 'done\n' });
  });

  it('an exec waits; an interactive session does not (EAGAIN at once), until it is stopped', async () => {
    const sid = (await call(`${C}/new`, { image: 'agent9/busybox', kind: 'interactive' }))['session_id'] as string;
    const eid = (await call(`${C}/sessions/${sid}/exec/new`, 'sleep 1; echo from exec'))['exec_id'] as string;
    const exec = JSON.parse(await ok(`cat ${q(C)}/sessions/${sid}/exec/${eid}/result`, { timeoutMs: 30_000 })) as Record<string, unknown>;
    expect(exec).toMatchObject({ status: 'complete', exit_code: 0, stdout: 'from exec\n' });
    const started = Date.now();
    const early = await sh(`cat ${q(C)}/sessions/${sid}/result`);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/Resource temporarily unavailable/);
    expect(Date.now() - started).toBeLessThan(3000);
    // Over HTTP, ?wait waits for it too: 429 after the wait, the result once it is stopped.
    const t0 = Date.now();
    expect((await s.call(`${H}/sessions/${sid}/result?wait=1`)).status).toBe(429);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    const waiting = s.call(`${H}/sessions/${sid}/result?wait=30`);
    await ok(`echo stop > ${q(C)}/sessions/${sid}/ctl`);
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'stopped' });
  });
});

describe('SSE watches of output start at the beginning and end with `end`', () => {
  it('a finished session: replays its output and ends at once; a running exec: the watch gets its first chunk', async () => {
    const sid = (await call(`${C}/new`, { image: 'agent9/busybox', commands: ['echo one; echo two'] }))['session_id'] as string;
    await s.call(`${H}/sessions/${sid}/result?wait=30`);
    const done = await curl(`${H}/sessions/${sid}/output?watch=1`);
    expect(done.code).toBe(0);
    expect(done.ms).toBeLessThan(5000);
    const evs = events(done.out);
    expect(evs.filter(([t]) => t === 'data').map(([, d]) => d).join('')).toBe('one\ntwo\n');
    expect(evs.at(-1)![0]).toBe('end');

    const live = (await call(`${C}/new`, { image: 'agent9/busybox', kind: 'interactive' }))['session_id'] as string;
    const eid = (await call(`${C}/sessions/${live}/exec/new`, 'echo first; sleep 1.5; echo second'))['exec_id'] as string;
    // The first chunk is out before the watch starts.
    await ok(`head -c 6 ${q(C)}/sessions/${live}/exec/${eid}/stdout`, { timeoutMs: 20_000 });
    const r = await curl(`${H}/sessions/${live}/exec/${eid}/output?watch=1`);
    expect(r.code).toBe(0);
    const got = events(r.out);
    expect(got.filter(([t]) => t === 'data').map(([, d]) => d).join('')).toBe('first\nsecond\n');
    expect(got.at(-1)![0]).toBe('end');
    await ok(`echo kill > ${q(C)}/sessions/${live}/ctl`);
  });
});
