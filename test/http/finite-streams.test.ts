/**
 * Finite streams over SSE and results that are waited for, as curl and agentctl see them on a real
 * loopback server (CONTRACT sections 5, 12, 18): a watch of a job's `stream` starts at the stream's
 * beginning and ends with `end` (a finished one at once), `from` still says where to start; the trace
 * stays live; `GET result?wait=SECONDS` waits for a running job; `agentctl cat --wait` does the same.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from './served.js';
import { agentctl, ensureBuilt } from '../cli/helpers.js';

let s: Served;
const base = '/agents/demo/compute';

beforeAll(async () => {
  await ensureBuilt();
  s = await serveAgent9();
  await s.ok('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'demo', program: 'echo' }) });
}, 240_000);

afterAll(async () => {
  await s?.close();
  cleanup();
});

interface Curl {
  code: number | null;
  out: string;
  ms: number;
}

/** curl -sN (no buffering), as a user runs it; `--max-time` makes a watch that never ends exit 28. */
function curl(path: string, args: string[] = [], maxTime = 10): Promise<Curl> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sN', '--max-time', String(maxTime), '-H', `Authorization: Bearer ${s.server.adminToken}`, ...args, s.server.url + path]);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, ms: Date.now() - started }));
  });
}

interface Frame {
  id?: string;
  event?: string;
  data?: { id: number; type: string; path: string; data?: { delta?: { text: string }; finish_reason?: string | null } };
}

/** SSE frames as a client parses them (comments and the retry line skipped). */
function frames(text: string): Frame[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const f: Frame = {};
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) f.id = line.slice(4);
        else if (line.startsWith('event: ')) f.event = line.slice(7);
        else if (line.startsWith('data: ')) f.data = JSON.parse(line.slice(6)) as NonNullable<Frame['data']>;
      }
      return f;
    });
}

const textOf = (fs: Frame[]) => fs.filter((f) => f.event === 'data').map((f) => f.data!.data!.delta!.text).join('');

async function submit(body: object): Promise<string> {
  return (await s.ok<{ job_id: string }>(`${base}/new`, { method: 'POST', body: JSON.stringify(body) })).job_id;
}

describe('a watch of a finite stream replays it from its beginning and ends with `end`', () => {
  it('a finished job: the watch replays every chunk and ends at once', async () => {
    const id = await submit({ model: 'echo', prompt: 'one two three four' });
    expect((await s.call(`${base}/jobs/${id}/result?wait=10`)).status).toBe(200);
    const r = await curl(`${base}/jobs/${id}/stream?watch=1`);
    expect(r.code).toBe(0); // ended by the server, not by --max-time (28)
    expect(r.ms).toBeLessThan(5000);
    const fs = frames(r.out);
    expect(textOf(fs)).toBe('one two three four');
    expect(fs.at(-1)!.event).toBe('end');
    // The first frame names the cursor the watch started from: the stream's beginning.
    const start = Number(fs[0]!.id);
    expect(fs.filter((f) => f.data).every((f) => f.data!.id > start)).toBe(true);
  });

  it('a running job: a watch started after its first chunk still gets it, then follows to the end', async () => {
    const id = await submit({ model: 'echo', prompt: 'alpha beta gamma delta', options: { chunk_delay_ms: 300 } });
    // Wait until the job has streamed a chunk, so a watch that started live would miss it.
    for (let i = 0; i < 100; i++) {
      const st = await s.ok<{ chunks: number }>(`${base}/jobs/${id}/status`);
      if (st.chunks >= 1) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await curl(`${base}/jobs/${id}/stream?watch=1`);
    expect(r.code).toBe(0);
    const fs = frames(r.out);
    expect(textOf(fs)).toBe('alpha beta gamma delta');
    expect(fs.at(-1)!.event).toBe('end');
  });

  it('`from` (and Last-Event-ID) still say where to start: after the first chunk, the rest only', async () => {
    const id = await submit({ model: 'echo', prompt: 'first second third fourth' });
    await s.call(`${base}/jobs/${id}/result?wait=10`);
    const all = frames((await curl(`${base}/jobs/${id}/stream?watch=1`)).out).filter((f) => f.event === 'data');
    const afterFirst = frames((await curl(`${base}/jobs/${id}/stream?watch=1&from=${all[0]!.data!.id}`)).out);
    expect(textOf(afterFirst)).toBe(textOf(all.slice(1)));
    expect(afterFirst.at(-1)!.event).toBe('end');
    const resumed = frames((await curl(`${base}/jobs/${id}/stream?watch=1`, ['-H', `Last-Event-ID: ${all.at(-1)!.data!.id}`])).out);
    expect(resumed.filter((f) => f.event === 'data')).toEqual([]);
    expect(resumed.at(-1)!.event).toBe('end');
    // A client that reconnects after the end (EventSource does) is told the stream ended, at once.
    const endId = frames((await curl(`${base}/jobs/${id}/stream?watch=1`)).out).at(-1)!.data!.id;
    const after = await curl(`${base}/jobs/${id}/stream?watch=1&from=${endId}`);
    expect(after.code).toBe(0);
    expect(frames(after.out).map((f) => f.event).filter(Boolean)).toEqual(['end']);
  });

  it('an endless stream (logs/trace) stays live: no replay of what came before, and the watch does not end', async () => {
    await s.ok('/agents/demo/ctl', { method: 'POST', body: 'tick before the watch' });
    const watching = curl('/agents/demo/logs/trace?watch=1', [], 3);
    await new Promise((r) => setTimeout(r, 1000));
    await s.ok('/agents/demo/ctl', { method: 'POST', body: 'tick during the watch' });
    const r = await watching;
    expect(r.code).toBe(28); // curl's --max-time: still open
    expect(r.out).toContain('during the watch');
    expect(r.out).not.toContain('before the watch');
  });
});

describe('GET result?wait=SECONDS waits for a running job', () => {
  it('answers with the result once the job completes; without wait, 429 at once; a short wait, 429 after it', async () => {
    const id = await submit({ model: 'echo', prompt: 'patience is good', options: { chunk_delay_ms: 300 } });
    const now = await s.call(`${base}/jobs/${id}/result`);
    expect(now.status).toBe(429);
    expect(await now.json()).toMatchObject({ error: { code: 'EAGAIN', message: expect.stringContaining('not ready') } });
    const started = Date.now();
    const short = await s.call(`${base}/jobs/${id}/result?wait=0.2`);
    expect(short.status).toBe(429);
    expect(short.headers.get('retry-after')).toBeTruthy();
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    const waited = await s.call(`${base}/jobs/${id}/result?wait=20`);
    expect(waited.status).toBe(200);
    expect(await waited.json()).toMatchObject({ output: { text: 'patience is good' } });
  });

  it('a failed (cancelled) job answers its error to the waiting request; a bad wait is 400 EINVAL naming it', async () => {
    const id = await submit({ model: 'echo', prompt: 'never mind this', options: { chunk_delay_ms: 3000 } });
    const waiting = s.call(`${base}/jobs/${id}/result?wait=20`);
    await new Promise((r) => setTimeout(r, 300));
    await s.ok(`${base}/jobs/${id}/ctl`, { method: 'POST', body: 'cancel' });
    const res = await waiting;
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ error: { code: 'ECANCELED' } });
    for (const bad of ['soon', '-1', '601']) {
      const r = await s.call(`${base}/jobs/${id}/result?wait=${bad}`);
      expect(r.status, bad).toBe(400);
      expect(await r.json()).toMatchObject({ error: { code: 'EINVAL', message: expect.stringContaining('wait') } });
    }
  });

  it('agentctl cat --wait prints the result once it is there; without it, EAGAIN (exit 9)', async () => {
    const env = { AGENT9_URL: s.server.url, AGENT9_TOKEN: s.server.adminToken };
    const id = await submit({ model: 'echo', prompt: 'from the cli', options: { chunk_delay_ms: 1500 } });
    const early = await agentctl(['cat', `${base}/jobs/${id}/result`], { env });
    expect(early.code).toBe(9);
    expect(early.stderr).toMatch(/EAGAIN/);
    const r = await agentctl(['cat', '--wait', '30s', `${base}/jobs/${id}/result`], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ output: { text: 'from the cli' } });
    const bad = await agentctl(['cat', '--wait', 'soon', `${base}/jobs/${id}/result`], { env });
    expect(bad.code).toBe(7);
  });
});
