/**
 * Secrets stay out of traces: what a program puts in a trace event (its result's `trace`, its stderr)
 * is stored with credentials redacted, so no reader (logs/recent, trajectory, the SSE watch, export)
 * ever sees them. Through the real server, as a program and a reader would do it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redactSecrets, REDACTED } from '../../src/runtime/redact.js';
import { cleanup, tempDir } from '../helpers.js';
import { ensureBuilt, startServe, type ServeProcess } from '../cli/helpers.js';

let server: ServeProcess;
const req = (path: string, init: RequestInit = {}) =>
  fetch(server.url + path, { ...init, headers: { authorization: `Bearer ${server.token}`, ...(init.headers ?? {}) } });

const OPENAI_KEY = 'sk-' + 'A1b2C3d4E5f6G7h8I9j0K1l2';
const GITHUB = 'ghp_' + 'abcdefghijklmnopqrstuvwxyz0123';
const SLACK = 'xoxb-' + '1234567890-abcdefghij';
const BEARER = 'eyJhbGciOiJIUzI1NiJ9.payload.sig';

beforeAll(async () => {
  await ensureBuilt();
  server = await startServe(tempDir('agent9-redact-'));
  // The program reads its tick and answers with a trace event full of secrets, and says more on stderr.
  const result = JSON.stringify({
    trace: [
      { type: 'leak', token: 'sekrit-123', api_key: 'sk-abc', nested: { access_token: 'at-1', Authorization: 'x', password: 'hunter2' }, note: `key ${OPENAI_KEY} here`, list: [GITHUB, 'plain'] },
    ],
  });
  const command = `cat >/dev/null; echo "auth: Bearer ${BEARER} and ${SLACK}" >&2; printf '%s' '${result}'`;
  const res = await req('/agents', { method: 'POST', body: JSON.stringify({ name: 'leaky', program: { type: 'exec', command } }) });
  expect(res.status).toBe(201);
  expect((await req('/agents/leaky/inbox', { method: 'POST', body: 'go' })).status).toBeLessThan(300);
  for (let i = 0; i < 100; i++) {
    const t = await (await req('/agents/leaky/logs/trajectory')).text();
    if (t.includes('"leak"') && t.includes('"stderr"')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);

afterAll(async () => {
  await server?.stop();
  cleanup();
});

const SECRETS = ['sekrit-123', 'sk-abc', 'at-1', 'hunter2', OPENAI_KEY, GITHUB, SLACK, BEARER];

describe('trace redaction', () => {
  it('no reader sees a secret: recent, trajectory, the SSE replay, export', async () => {
    const recent = await (await req('/agents/leaky/logs/recent')).text();
    const trajectory = await (await req('/agents/leaky/logs/trajectory')).text();
    // The export carries the program's command line (which holds these strings) in its config; its events are the trace.
    const exported = JSON.stringify(
      (await (await req('/agents/leaky/export')).text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { t?: string })
        .filter((r) => r.t === 'event'),
    );
    const ctl = new AbortController();
    const sse = await req('/agents/leaky/logs/trace?watch=1&from=0', { signal: ctl.signal });
    const reader = sse.body!.getReader();
    let replay = '';
    const until = Date.now() + 5000;
    while (!replay.includes('"stderr"') && Date.now() < until) {
      const { value, done } = await reader.read();
      if (done) break;
      replay += new TextDecoder().decode(value);
    }
    ctl.abort();
    for (const [name, text] of Object.entries({ recent, trajectory, exported, replay })) {
      expect(text, name).toContain('"leak"');
      for (const s of SECRETS) expect(text, `${name} shows ${s}`).not.toContain(s);
    }
    const leak = trajectory.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e['type'] === 'leak')!;
    expect(leak).toMatchObject({ token: REDACTED, api_key: REDACTED, nested: { access_token: REDACTED, Authorization: REDACTED, password: REDACTED }, note: `key ${REDACTED} here`, list: [REDACTED, 'plain'] });
    const stderr = trajectory.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e['type'] === 'stderr')!;
    expect(String(stderr['text']).trimEnd()).toBe(`auth: Bearer ${REDACTED} and ${REDACTED}`);
  });

  it('keeps what is not a secret: counts named *_tokens, ids, ordinary text', () => {
    const event = { type: 'compute_complete', usage: { input_tokens: 3, output_tokens: 4 }, max_tokens: 16, idempotency_key: 'k1', text: 'sk-short is fine', token_count: 2 };
    expect(redactSecrets(event)).toEqual(event);
  });
});
