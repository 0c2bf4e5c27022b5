/**
 * Answers a client can use, over a real loopback socket, as curl sends the requests: a message sent to
 * an inbox answers its envelope id (so a reply can be matched to it), a tick answers its report, a ctl
 * write answers what its commands did, a PUT that creates a file answers 201.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from './served.js';

let s: Served;
let bobToken: string;

beforeAll(async () => {
  s = await serveAgent9({ compute: false, containers: false });
  bobToken = await s.agentWithToken('bob');
});

afterAll(async () => {
  await s?.close();
  cleanup();
});

interface InboxAnswer {
  envelope_id: string;
  status: string;
  dropped?: string;
}

const ID = /^[0-9a-z]{12}-[0-9a-f]{10}$/;

describe('a message sent to an inbox answers its envelope', () => {
  it('POST /agents/<id>/inbox answers 201 {envelope_id, status: queued}; the id is the queued envelope', async () => {
    const res = await s.call('/agents/bob/inbox', { method: 'POST', body: 'hello bob' });
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const answer = (await res.json()) as InboxAnswer;
    expect(answer).toEqual({ envelope_id: expect.stringMatching(ID) as unknown, status: 'queued' });
    const queued = await s.ok<{ id: string; payload: unknown }>(`/agents/bob/inbox.d/${answer.envelope_id}.json`);
    expect(queued).toMatchObject({ id: answer.envelope_id, payload: { text: 'hello bob' } });
  });

  it('an envelope with its own id answers that id; sent again it is a duplicate (200, nothing new)', async () => {
    const envelope = JSON.stringify({ id: 'order-17', payload: { n: 17 } });
    const first = await s.call('/agents/bob/inbox', { method: 'POST', body: envelope });
    expect(first.status).toBe(201);
    expect(await first.json()).toEqual({ envelope_id: 'order-17', status: 'queued' });
    const again = await s.call('/agents/bob/inbox', { method: 'POST', body: envelope });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ envelope_id: 'order-17', status: 'duplicate' });
  });

  it('every way into an inbox answers the same: PUT, ?append=1, /agents/<id>/send, an agent token on /inbox', async () => {
    const ways: [string, RequestInit & { token?: string }][] = [
      ['/agents/bob/inbox', { method: 'PUT', body: 'by put' }],
      ['/agents/bob/inbox?append=1', { method: 'POST', body: 'by append' }],
      ['/agents/bob/send', { method: 'POST', body: 'by send' }],
      ['/inbox', { method: 'POST', body: 'by bob itself', token: bobToken }],
    ];
    for (const [path, init] of ways) {
      const res = await s.call(path, init);
      expect(res.status, path).toBe(201);
      const answer = (await res.json()) as InboxAnswer;
      expect(answer.status, path).toBe('queued');
      expect((await s.ok<{ payload: { text: string } }>(`/agents/bob/inbox.d/${answer.envelope_id}.json`)).payload.text).toBe(init.body);
    }
  });

  it('a full inbox says what it did: drop-oldest names the envelope it let go, deadletter says so', async () => {
    await s.ok('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'full', program: 'echo' }) });
    await s.ok('/agents/full/inbox.policy', { method: 'PUT', body: JSON.stringify({ max_depth: 1, overflow: 'drop-oldest' }) });
    const first = (await s.ok<InboxAnswer>('/agents/full/inbox', { method: 'POST', body: 'one' })).envelope_id;
    const second = await s.ok<InboxAnswer>('/agents/full/inbox', { method: 'POST', body: 'two' });
    expect(second).toEqual({ envelope_id: expect.stringMatching(ID) as unknown, status: 'queued', dropped: first });
    await s.ok('/agents/full/inbox.policy', { method: 'PUT', body: JSON.stringify({ overflow: 'deadletter' }) });
    const third = await s.call('/agents/full/inbox', { method: 'POST', body: 'three' });
    expect(third.status).toBe(201);
    const answer = (await third.json()) as InboxAnswer;
    expect(answer.status).toBe('deadlettered');
    expect((await s.ok<unknown[]>('/agents/full/deadletter/')).map((e) => (e as { name: string }).name)).toContain(`${answer.envelope_id}.json`);
  });
});

describe('a tick answers its report', () => {
  it('POST /agents/<id>/tick answers 200 with the tick: number, cause, the envelopes it delivered', async () => {
    await s.ok('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'tock', program: 'echo' }) });
    const sent = await s.ok<InboxAnswer>('/agents/tock/inbox', { method: 'POST', body: 'deliver me' });
    const res = await s.call('/agents/tock/tick', { method: 'POST' });
    expect(res.status).toBe(200);
    const report = (await res.json()) as Record<string, unknown>;
    expect(report).toMatchObject({ agent: 'tock', ok: true, cause: 'ctl', state: 'active' });
    expect(report['tick']).toBeGreaterThan(0);
    expect(report['delivered']).toContain(sent.envelope_id);
    expect(typeof report['duration_ms']).toBe('number');
    const status = await s.ok<{ tick_count: number }>('/agents/tock/status');
    expect(status.tick_count).toBe(report['tick']);
  });

  it('a write to ctl answers {agent, state, ticks}: each tick it ran, the state after the last command', async () => {
    const res = await s.call('/agents/tock/ctl', { method: 'POST', body: 'tick first\ntick second\n' });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { agent: string; state: string; ticks: { tick: number; cause: string }[] };
    expect(answer.agent).toBe('tock');
    expect(answer.state).toBe('active');
    expect(answer.ticks).toHaveLength(2);
    expect(answer.ticks[1]!.tick).toBe(answer.ticks[0]!.tick + 1);
    expect(await s.ok('/agents/tock/ctl', { method: 'POST', body: 'hibernate' })).toEqual({ agent: 'tock', state: 'dormant', ticks: [] });
    expect(await s.ok('/agents/tock/ctl', { method: 'PUT', body: 'wake' })).toEqual({ agent: 'tock', state: 'active', ticks: [] });
  });

  it('a tick that cannot run is the error of the ctl write, with its status (stopped agent: 403 EPERM)', async () => {
    await s.ok('/agents/tock/ctl', { method: 'POST', body: 'stop' });
    const res = await s.call('/agents/tock/tick', { method: 'POST' });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('EPERM');
  });
});

describe('a PUT says whether it created the file', () => {
  it('201 when the file is new (small or large), 204 when it replaced one, with the ETag either way', async () => {
    for (const size of [10, 300_000]) {
      const body = 'x'.repeat(size);
      const made = await s.call(`/memory/put-${size}`, { method: 'PUT', body, token: bobToken });
      expect(made.status, `${size} bytes`).toBe(201);
      expect(made.headers.get('etag')).toBe('"1"');
      const replaced = await s.call(`/memory/put-${size}`, { method: 'PUT', body, token: bobToken });
      expect(replaced.status).toBe(204);
      expect(replaced.headers.get('etag')).toBe('"2"');
    }
    const appended = await s.call('/memory/log?append=1', { method: 'POST', body: 'a\n', token: bobToken });
    expect(appended.status).toBe(201);
    expect((await s.call('/memory/log?append=1', { method: 'POST', body: 'b\n', token: bobToken })).status).toBe(204);
    expect(await (await s.call('/memory/log', { token: bobToken })).text()).toBe('a\nb\n');
  });
});
