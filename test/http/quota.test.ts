/**
 * limits.memory_bytes over HTTP and agentctl, against `agentctl serve` in a child process: with an
 * agent-scoped token over loopback, a PUT or append past the quota is 402 EDQUOT (JSON naming the
 * path, the use and the limit) and leaves the file as it was; many concurrent writers together never
 * exceed it; agentctl exits 10 with the message; `GET ?statfs=1` and /status report limit and use.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rmdir } from 'node:fs/promises';
import { agentctlBackground, servedForTests } from '../cli/helpers.js';
import { mountedType } from '../../src/fuse/kernel-mount.js';
import { mountPoint, ok, q, sh, until } from '../fuse/helpers.js';

const MiB = 1024 * 1024;
const suite = servedForTests('agent9-quota-');

async function req(path: string, init: { method?: string; body?: string | Uint8Array; token?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(suite.server.url + path, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${init.token ?? suite.server.token}`, ...init.headers },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

async function createAgent(name: string, memoryBytes: number): Promise<string> {
  const created = await req('/agents/new', { method: 'POST', body: JSON.stringify({ name, program: 'echo', limits: { memory_bytes: memoryBytes } }) });
  expect(created.status).toBe(200);
  const minted = await req('/runtime/tokens/new', { method: 'POST', body: JSON.stringify({ agent: name }) });
  expect(minted.status).toBe(200);
  return minted.json()['token'] as string;
}

const filled = (n: number, byte: number) => new Uint8Array(n).fill(byte);

const mounts: { dir: string; stop: () => Promise<unknown> }[] = [];
afterAll(async () => {
  for (const m of mounts) {
    await m.stop().catch(() => undefined);
    if ((await mountedType(m.dir))?.startsWith('fuse')) await sh(`fusermount -u -z ${q(m.dir)}`);
    await rmdir(m.dir).catch(() => undefined);
  }
});

describe('the data quota over HTTP', () => {
  it('refuses a PUT or an append past the limit with 402 EDQUOT, naming path, use and limit; nothing partial is left', async () => {
    const token = await createAgent('h', MiB);
    expect((await req('/memory/a', { method: 'PUT', body: filled(600_000, 1), token })).status).toBe(201);

    const refused = await req('/memory/b', { method: 'PUT', body: filled(500_000, 2), token });
    expect(refused.status).toBe(402);
    const error = refused.json()['error'] as { code: string; path: string; message: string };
    expect(error.code).toBe('EDQUOT');
    expect(error.path).toBe('/memory/b');
    expect(error.message).toMatch(/^\/memory\/b: data quota exceeded: this write would use 1100000 bytes .*over limits\.memory_bytes 1048576 \(600000 used before it\)/);
    expect((await req('/memory/b', { token })).status).toBe(404);

    // A replace that would grow past the limit keeps the old content.
    expect((await req('/memory/a', { method: 'PUT', body: filled(1_100_000, 3), token })).status).toBe(402);
    const kept = await fetch(`${suite.server.url}/memory/a`, { headers: { authorization: `Bearer ${token}` } });
    const bytes = new Uint8Array(await kept.arrayBuffer());
    expect(bytes.length).toBe(600_000);
    expect(bytes.every((b) => b === 1)).toBe(true);
    expect((await req('/memory/a?append=1', { method: 'POST', body: filled(500_000, 4), token })).status).toBe(402);

    // The admin's global view refuses the same.
    expect((await req('/agents/h/memory/c', { method: 'PUT', body: filled(500_000, 5) })).status).toBe(402);

    const status = (await req('/status', { token })).json()['memory'];
    expect(status).toEqual({ limit_bytes: MiB, used_bytes: 600_000, free_bytes: MiB - 600_000, memory_bytes: 600_000, work_dir_bytes: 0, files: 2 });
    // Overwriting with the same size or less works at the limit; deleting works.
    expect((await req('/memory/a', { method: 'PUT', body: filled(600_000, 6), token })).status).toBe(204);
    expect((await req('/memory/a', { method: 'DELETE', token })).status).toBe(204);
    expect((await req('/memory/b', { method: 'PUT', body: filled(500_000, 2), token })).status).toBe(201);
  });

  it('lets many concurrent writers together write no more than the limit', async () => {
    const token = await createAgent('race', MiB);
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => req(`/memory/f${i}`, { method: 'PUT', body: filled(100_000, i), token })),
    );
    const accepted = results.filter((r) => r.status === 201).length;
    const refused = results.filter((r) => r.status === 402).length;
    // 10 x 100,000 bytes fit in 1 MiB, the 11th does not.
    expect(accepted).toBe(10);
    expect(refused).toBe(50);
    const memory = (await req('/status', { token })).json()['memory'] as { used_bytes: number };
    expect(memory.used_bytes).toBe(1_000_000);
    const listing = (await req('/memory/', { token })).json() as unknown as { size: number }[];
    expect(listing.reduce((n, e) => n + e.size, 0)).toBe(1_000_000);

    // Concurrent appends to one file, racing overwrites of others: still never past the limit.
    await req('/memory/f0', { method: 'DELETE', token });
    const more = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        i % 2 ? req('/memory/log?append=1', { method: 'POST', body: filled(10_000, i), token }) : req(`/memory/g${i}`, { method: 'PUT', body: filled(10_000, i), token }),
      ),
    );
    // 148,576 bytes are free: 14 writes of 10,000 fit.
    expect(more.filter((r) => r.status === 201 || r.status === 204).length).toBe(14);
    const after = (await req('/status', { token })).json()['memory'] as { used_bytes: number };
    expect(after.used_bytes).toBe(1_040_000);
  });

  it('agentctl write past the limit exits 10 with the message', async () => {
    await createAgent('cli', 200_000);
    const fits = await suite.run(['write', '/agents/cli/memory/x'], { input: 'x'.repeat(150_000) });
    expect(fits.code).toBe(0);
    const over = await suite.run(['write', '/agents/cli/memory/y'], { input: 'y'.repeat(100_000) });
    expect(over.code).toBe(10);
    expect(over.stderr).toMatch(/EDQUOT: \/agents\/cli\/memory\/y: data quota exceeded: this write would use 250000 bytes .*over limits\.memory_bytes 200000/);
    const append = await suite.run(['append', '/agents/cli/memory/x'], { input: 'z'.repeat(60_000) });
    expect(append.code).toBe(10);
    expect((await suite.run(['cat', '/agents/cli/memory/x'])).stdout).toBe('x'.repeat(150_000));
  });

  it('a lowered limit refuses growth, keeps the data, and lets it shrink', async () => {
    const token = await createAgent('lower', MiB);
    expect((await req('/memory/a', { method: 'PUT', body: filled(800_000, 1), token })).status).toBe(201);
    expect((await req('/agents/lower/config', { method: 'PUT', body: JSON.stringify({ limits: { memory_bytes: 500_000 } }) })).status).toBe(204);
    expect((await req('/memory/a', { token })).text.length).toBe(800_000);
    expect((await req('/memory/b', { method: 'PUT', body: 'x', token })).status).toBe(402);
    // A rename adds nothing: it works over the limit too.
    expect((await req('/memory/a', { method: 'MOVE', headers: { destination: '/memory/c' }, token })).status).toBe(204);
    expect((await req('/memory/c', { method: 'MOVE', headers: { destination: '/memory/a' }, token })).status).toBe(204);
    expect((await req('/memory/a', { method: 'PUT', body: filled(400_000, 2), token })).status).toBe(204);
    expect((await req('/memory/b', { method: 'PUT', body: 'x', token })).status).toBe(201);
    const config = (await req('/agents/lower/config')).json() as { limits: { memory_bytes: number } };
    expect(config.limits.memory_bytes).toBe(500_000);
  });

  it('a deleted agent takes its use with it: a new agent of the same name starts at 0', async () => {
    const token = await createAgent('again', MiB);
    expect((await req('/memory/a', { method: 'PUT', body: filled(900_000, 1), token })).status).toBe(201);
    expect((await req('/agents/again', { method: 'DELETE' })).status).toBe(204);
    const fresh = await createAgent('again', MiB);
    expect((await req('/status', { token: fresh })).json()['memory']).toMatchObject({ used_bytes: 0, memory_bytes: 0 });
    expect((await req('/memory/a', { method: 'PUT', body: filled(900_000, 2), token: fresh })).status).toBe(201);
  });

  it('an import whose memory and work dir exceed its own limit is 402 EDQUOT and creates nothing', async () => {
    const token = await createAgent('imp', 4 * MiB);
    expect((await req('/memory/big', { method: 'PUT', body: filled(2 * MiB, 7), token })).status).toBe(201);
    const bundle = (await req('/agents/imp/export')).text;
    const lines = bundle.split('\n');
    const header = JSON.parse(lines[0]!) as { agent: { limits: string } };
    // The same agent, but its limit below what it holds.
    header.agent.limits = JSON.stringify({ ...(JSON.parse(header.agent.limits) as object), memory_bytes: MiB });
    lines[0] = JSON.stringify(header);
    const refused = await req('/agents/import', { method: 'POST', body: JSON.stringify({ id: 'imp-copy' }) + '\n' + lines.join('\n') });
    expect(refused.status).toBe(402);
    const error = refused.json()['error'] as { code: string; message: string };
    expect(error.code).toBe('EDQUOT');
    expect(error.message).toMatch(/the bundle holds 2097152 bytes .* over limits\.memory_bytes 1048576/);
    expect((await req('/agents/imp-copy/status')).status).toBe(404);
    // Under its own limit the same bundle imports.
    const accepted = await req('/agents/import', { method: 'POST', body: JSON.stringify({ id: 'imp-copy' }) + '\n' + bundle });
    expect(accepted.status).toBe(200);
    expect((await req('/agents/imp-copy/memory/big')).text.length).toBe(2 * MiB);
  });

  it('bad limits are EINVAL naming the field', async () => {
    const bad = await req('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'bad', program: 'echo', limits: { memory_bytes: -1 } }) });
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/limits\.memory_bytes/);
    const defaults = await req('/agents/new', { method: 'POST', body: JSON.stringify({ name: 'dflt', program: 'echo' }) });
    expect(defaults.status).toBe(200);
    const config = (await req('/agents/dflt/config')).json() as { limits: { memory_bytes: number } };
    expect(config.limits.memory_bytes).toBe(1024 ** 3);
  });

  it('GET ?statfs=1 reports the limit and the use of the memory tree; other trees have no limit', async () => {
    const token = await createAgent('space', MiB);
    expect((await req('/memory/a', { method: 'PUT', body: filled(300_000, 1), token })).status).toBe(201);
    await req('/memory/d/', { method: 'PUT', token });
    const space = await req('/memory?statfs=1', { token });
    expect(space.status).toBe(200);
    expect(space.json()).toEqual({ total_bytes: MiB, used_bytes: 300_000, free_bytes: MiB - 300_000, files: 3 });
    expect((await req('/memory/a?statfs=1', { token })).json()).toEqual(space.json());
    expect((await req('/agents/space/memory/d?statfs=1')).json()).toEqual(space.json());
    expect((await req('/inbox?statfs=1', { token })).json()).toEqual({ total_bytes: 2 ** 50, used_bytes: 0, free_bytes: 2 ** 50 });
    const missing = await req('/memory/nothing?statfs=1', { token });
    expect(missing.status).toBe(404);
    expect(missing.json()['error']).toMatchObject({ code: 'ENOENT', path: '/memory/nothing' });
  });

  it('agentctl mount (over HTTP): dd past the limit gets "Disk quota exceeded", df and stat -f show the quota', async () => {
    await createAgent('mnt', MiB);
    const dir = await mountPoint();
    const m = agentctlBackground(['mount', dir, '--agent', 'mnt'], suite.env);
    mounts.push({ dir, stop: () => m.stop('SIGTERM') });
    await until(async () => (await mountedType(dir)) === 'fuse.agent9', 20_000, 'the mount');
    await ok(`head -c 700000 /dev/zero > ${q(dir)}/memory/a`);
    const df = (await ok(`df -B1 --output=size,used,avail ${q(dir)}/memory | tail -n 1`)).trim().split(/\s+/).map(Number);
    expect(df).toEqual([MiB, 700416, MiB - 700416]);
    expect((await ok(`stat -f -c '%S %b %f' ${q(dir)}/memory`)).trim()).toBe(`4096 256 ${256 - 171}`);
    // The mount sends a file when it is closed: dd reports the refusal there.
    const dd = await sh(`dd if=/dev/zero of=${q(dir)}/memory/b bs=100k count=5`);
    expect(dd.code).not.toBe(0);
    expect(dd.stderr).toMatch(/Disk quota exceeded/);
    const cat = await sh(`head -c 400000 /dev/zero | cat > ${q(dir)}/memory/c`);
    expect(cat.stderr).toMatch(/Disk quota exceeded/);
    const status = JSON.parse(await ok(`cat ${q(dir)}/status`)) as { memory: { used_bytes: number } };
    expect(status.memory.used_bytes).toBe(700_000);
    // `>` truncates at open, as on a local disk: a refused rewrite leaves the file empty.
    const rewrite = await sh(`head -c 1100000 /dev/zero | cat > ${q(dir)}/memory/a`);
    expect(rewrite.stderr).toMatch(/Disk quota exceeded/);
    expect((await req('/agents/mnt/memory/a')).text.length).toBe(0);
  });
});
