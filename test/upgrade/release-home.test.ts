/**
 * Upgrades keep data: the data directory written by release v0.1.0 (test/fixtures/home-v0.1.0, made by
 * test/fixtures/make-release-home.sh at that release) opens with this code, migrations and all, and
 * every kind of data it held is there, read the way a user reads it: over HTTP from `agentctl serve`.
 */
import { cpSync, chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, tempDir } from '../helpers.js';
import { agentctl, ensureBuilt, ROOT, startServe, type ServeProcess } from '../cli/helpers.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'home-v0.1.0');

let server: ServeProcess;
let get: (path: string, token?: string) => Promise<{ status: number; body: string }>;

beforeAll(async () => {
  await ensureBuilt();
  const home = tempDir('agent9-upgrade-');
  cpSync(FIXTURE, home, { recursive: true });
  chmodSync(join(home, 'server.key'), 0o600);
  chmodSync(join(home, 'admin.token'), 0o600);
  // A server default that differs from the built-in one: policies stored whole by v0.1.0 must follow it
  // for every field their agent did not change (migration 48).
  writeFileSync(join(home, 'config.json'), JSON.stringify({ compute: { policy: { max_concurrent_jobs: 4 } } }));
  server = await startServe(home);
  get = async (path, token = server.token) => {
    const res = await fetch(server.url + path, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.text() };
  };
}, 120_000);

afterAll(async () => {
  await server?.stop();
  cleanup();
});

describe('a v0.1.0 data directory', () => {
  it('keeps its agents, their states and counters', async () => {
    const agents = JSON.parse((await get('/agents')).body) as { id: string; state: string; tick_count: number }[];
    const byId = Object.fromEntries(agents.map((a) => [a.id, a]));
    expect(Object.keys(byId).sort()).toEqual(['alice', 'bob', 'carol', 'dave']);
    expect(byId['bob']!.state).toBe('dormant');
    expect(byId['dave']!.state).toBe('terminated');
    expect(byId['alice']!.tick_count).toBeGreaterThan(0);
  });

  it('keeps memory files (text and binary, nested) and goals', async () => {
    expect((await get('/agents/alice/memory/notes.md')).body).toBe('# notes of alice\n');
    const blob = await fetch(server.url + '/agents/alice/memory/dir/sub/blob.bin', { headers: { authorization: `Bearer ${server.token}` } });
    expect(Buffer.from(await blob.arrayBuffer())).toEqual(Buffer.from('binary\0data'));
    expect(JSON.parse((await get('/agents/alice/goals/g1.json')).body)).toMatchObject({ description: 'ship v0.1.0', priority: 5 });
  });

  it('keeps queues: the inbox, the deadletter, the outbox', async () => {
    const inbox = JSON.parse((await get('/agents/dave/inbox')).body) as { payload: { text: string } }[];
    expect(inbox.map((e) => e.payload.text)).toEqual(['queued while stopped']);
    const dead = JSON.parse((await get('/agents/carol/deadletter/')).body) as { name: string }[];
    expect(dead.filter((d) => d.name.endsWith('.json'))).toHaveLength(1);
    const out = JSON.parse((await get('/agents/alice/outbox/')).body) as { name: string }[];
    expect(out).toHaveLength(1);
  });

  it('counts the memory it held against the new data quota (back-filled by the migration)', async () => {
    // Every file's size, walked over HTTP listings.
    const sizeOf = async (dir: string): Promise<{ bytes: number; nodes: number }> => {
      const entries = JSON.parse((await get(`${dir}/`)).body) as { name: string; type: string; size: number }[];
      let bytes = 0;
      let nodes = 0;
      for (const e of entries) {
        nodes++;
        if (e.type === 'dir') {
          const sub = await sizeOf(`${dir}/${e.name}`);
          bytes += sub.bytes;
          nodes += sub.nodes;
        } else bytes += e.size;
      }
      return { bytes, nodes };
    };
    const held = await sizeOf('/agents/alice/memory');
    expect(held.bytes).toBeGreaterThan(0);
    const status = JSON.parse((await get('/agents/alice/status')).body) as { memory: { memory_bytes: number; limit_bytes: number; files: number } };
    // The root directory is a node too.
    expect(status.memory).toMatchObject({ memory_bytes: held.bytes, limit_bytes: 1024 ** 3, files: held.nodes + 1 });
    const space = JSON.parse((await get('/agents/alice/memory?statfs=1')).body) as { used_bytes: number };
    expect(space.used_bytes).toBe(held.bytes);
  });

  it('gives the memory tree it held link counts, and takes links and special nodes (migrations 70, 71)', async () => {
    const call = (path: string, method: string, body?: string) =>
      fetch(server.url + path, { method, headers: { authorization: `Bearer ${server.token}` }, ...(body !== undefined ? { body } : {}) });
    type Row = { name: string; type: string; nlink: number; ino: number };
    const list = async (dir: string) => JSON.parse((await get(`${dir}/`)).body) as Row[];
    const M = '/agents/alice/memory';
    // A directory counts 2 and its subdirectories: the root holds dir, dir holds sub.
    expect((await call(M, 'HEAD')).headers.get('x-agent9-nlink')).toBe('3');
    expect((await list(M)).find((e) => e.name === 'dir')).toMatchObject({ type: 'dir', nlink: 3 });
    expect((await list(`${M}/dir`)).find((e) => e.name === 'sub')).toMatchObject({ type: 'dir', nlink: 2 });
    expect((await list(M)).find((e) => e.name === 'notes.md')).toMatchObject({ type: 'file', nlink: 1 });
    const before = JSON.parse((await get('/agents/alice/status')).body) as { memory: { memory_bytes: number; files: number } };
    expect((await call(`${M}/notes-link.md?link=${M}/notes.md`, 'PUT')).status).toBe(201);
    expect((await call(`${M}/to-blob?symlink=1`, 'PUT', 'dir/sub/blob.bin')).status).toBe(201);
    expect((await call(`${M}/dir/sub2/`, 'PUT')).status).toBe(201);
    expect((await list(M)).find((e) => e.name === 'dir')).toMatchObject({ nlink: 4 });
    const [a, b] = [(await list(M)).find((e) => e.name === 'notes.md')!, (await list(M)).find((e) => e.name === 'notes-link.md')!];
    expect([a.ino, a.nlink]).toEqual([b.ino, 2]);
    expect((await get(`${M}/notes-link.md`)).body).toBe('# notes of alice\n');
    const blob = await fetch(server.url + `${M}/to-blob`, { headers: { authorization: `Bearer ${server.token}` } });
    expect(Buffer.from(await blob.arrayBuffer())).toEqual(Buffer.from('binary\0data'));
    // The quota counts a hard-linked file once (no bytes, no node for a second name); the link and the
    // directory are a node each.
    const after = JSON.parse((await get('/agents/alice/status')).body) as { memory: { memory_bytes: number; files: number } };
    expect(after.memory).toMatchObject({ memory_bytes: before.memory.memory_bytes, files: before.memory.files + 2 });
  });

  it('keeps program state and kv, budgets and policies', async () => {
    // The export (JSON lines) carries the program state.
    const bob = (await get('/agents/bob/export')).body.trim().split('\n').map((l) => JSON.parse(l) as { t?: string; data?: unknown });
    expect(JSON.stringify(bob.find((r) => r.t === 'state'))).toContain('"n":1');
    // The day window is a rolling 24 h: the fixture's spend has left it by now, while the tick it was spent
    // in is still the agent's current one, so the tick window shows it whenever the test runs.
    expect(JSON.parse((await get('/agents/alice/budget')).body)).toMatchObject({ day: { limit: 5000000 }, tick: { spent: 16 } });
    expect(JSON.parse((await get('/agents/alice/compute/policy')).body)).toMatchObject({ prefer: 'cost', max_concurrent_jobs: 4 });
    expect(JSON.parse((await get('/agents/alice/inbox.policy')).body)).toMatchObject({ max_depth: 50, overflow: 'deadletter' });
  });

  it('keeps model jobs and their results', async () => {
    const jobs = JSON.parse((await get('/agents/alice/compute/jobs/')).body) as { name: string }[];
    expect(jobs).toHaveLength(1);
    const result = JSON.parse((await get(`/agents/alice/compute/jobs/${jobs[0]!.name}/result`)).body) as { content?: string };
    expect(JSON.stringify(result)).toContain('a job kept from v0.1.0');
  });

  it('keeps tokens: the old agent token still works and still sees only its agent', async () => {
    const token = readFileSync(join(FIXTURE, 'alice.token'), 'utf8').trim();
    expect((await get('/memory/notes.md', token)).body).toBe('# notes of alice\n');
    expect((await get('/agents/bob/status', token)).status).toBe(404);
  });

  it('keeps each agent identity (the key opens with the kept server key)', async () => {
    const pub = (await get('/agents/alice/identity/pubkey')).body.trim();
    expect(pub).toMatch(/^[0-9a-f]{64}$/);
    const res = await fetch(server.url + '/agents/alice/identity/sign', { method: 'POST', body: 'm', headers: { authorization: `Bearer ${server.token}` } });
    expect(res.status).toBe(200);
  });

  it('imports a bundle exported by v0.1.0 (version 1, one JSON document), through agentctl', async () => {
    const env = { AGENT9_URL: server.url, AGENT9_TOKEN: server.token };
    const bundle = join(ROOT, 'test', 'fixtures', 'bundle-v1', 'alice.json');
    const run = await agentctl(['agents', 'import', bundle, '--as', 'alice-v1', '--json'], { env });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    // Same server key: the identity came along; memory files (nested, binary) and the outbox too.
    expect(JSON.parse(run.stdout)).toMatchObject({ id: 'alice-v1', pubkey: (await get('/agents/alice/identity/pubkey')).body.trim() });
    expect((await get('/agents/alice-v1/memory/notes.md')).body).toBe('# notes of alice\n');
    const blob = await fetch(server.url + '/agents/alice-v1/memory/dir/sub/blob.bin', { headers: { authorization: `Bearer ${server.token}` } });
    expect(Buffer.from(await blob.arrayBuffer())).toEqual(Buffer.from('binary\0data'));
    expect(JSON.parse((await get('/agents/alice-v1/outbox/')).body)).toHaveLength(1);
    // And as it is, under its own name: EEXIST (alice is there), nothing half-made.
    const again = await agentctl(['agents', 'import', bundle], { env });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('EEXIST');
  });
});
