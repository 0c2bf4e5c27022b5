/** Export and import of an agent as one bundle. */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAgent, files, openServer, testProgram } from './support.js';
import { admin, expectCode, tempDir } from '../helpers.js';
import { SERVER_KEY_FILE } from '../../src/runtime/keys.js';
import type { Agent9 } from '../../src/server/agent9.js';

const stateful = testProgram('stateful', (ctx) => {
  const n = ((ctx.state as { n?: number } | undefined)?.n ?? 0) + 1;
  if (ctx.triggers.some((t) => t.type === 'message' && (t.envelope.payload as { text?: string }).text === 'poison')) throw new Error('poisoned');
  return { state: { n }, kv: { set: { [`k${n}`]: { n } } }, outbox: [`reply ${n}`], alarm_in_ms: 3_600_000 };
});

/** An agent with something in every part of the bundle. */
async function richAgent(a9: Agent9): Promise<void> {
  await createAgent(a9, {
    name: 'bob',
    program: 'stateful',
    env: { K: 'v' },
    limits: { max_attempts: 1 },
    schedule: { on_message: false },
    inbox: { max_depth: 50, overflow: 'drop-oldest' },
    goals: [{ id: 'main', description: 'be exported', priority: 3 }],
  });
  const f = files(a9.namespace);
  await f.write('/agents/bob/inbox', JSON.stringify({ id: 'first', payload: { text: 'hi' } }));
  await f.write('/agents/bob/ctl', 'tick');
  await f.write('/agents/bob/inbox', JSON.stringify({ id: 'bad', payload: { text: 'poison' } }));
  await expectCode(f.write('/agents/bob/ctl', 'tick'), 'EIO');
  await f.write('/agents/bob/inbox', JSON.stringify({ id: 'waiting', payload: { text: 'later' } }));
  await a9.namespace.mkdir('/agents/bob/memory/notes', 0o755, admin);
  await f.write('/agents/bob/memory/notes/a.md', 'note A\n');
  await f.write('/agents/bob/memory/bin', new Uint8Array([0, 1, 2, 255, 254]));
}

async function snapshot(a9: Agent9, id: string) {
  const f = files(a9.namespace);
  const status = await f.json<Record<string, unknown>>(`/agents/${id}/status`);
  const { id: _id, name: _name, ...rest } = status;
  return {
    status: rest,
    config: await f.json<Record<string, unknown>>(`/agents/${id}/config`).then(({ name: _n, ...c }) => c),
    policy: await f.json(`/agents/${id}/inbox.policy`),
    inbox: await f.json(`/agents/${id}/inbox`),
    deadletter: await Promise.all((await f.list(`/agents/${id}/deadletter`)).filter((n) => n !== 'ctl').map((n) => f.json(`/agents/${id}/deadletter/${n}`))),
    outbox: await Promise.all((await f.list(`/agents/${id}/outbox`)).map((n) => f.json<Record<string, unknown>>(`/agents/${id}/outbox/${n}`).then(({ from: _f, ...o }) => o))),
    goals: await f.json(`/agents/${id}/goals/main.json`),
    memory: [
      await f.read(`/agents/${id}/memory/notes/a.md`),
      Array.from(new TextEncoder().encode(await f.read(`/agents/${id}/memory/bin`))),
      (await f.stat(`/agents/${id}/memory/notes/a.md`)).mtime,
      (await f.stat(`/agents/${id}/memory/notes`)).mtime,
    ],
    state: JSON.parse(a9.runtime.store.getState(id)!.data) as unknown,
    kv: a9.runtime.store.kvList(id),
    seen: a9.runtime.store.seenIds(id),
    pubkey: (await f.read(`/agents/${id}/identity/pubkey`)).trim(),
    trace: (await f.read(`/agents/${id}/logs/trajectory`))
      .trim()
      .split('\n')
      .map((l) => {
        const { id: _i, ...rest } = JSON.parse(l) as Record<string, unknown>;
        return rest;
      }),
  };
}

describe('export and import', () => {
  it('test_export_import_roundtrip: delete and import gives back everything, including a working identity', async () => {
    const a9 = await openServer({ programs: [stateful], scheduler: false });
    await richAgent(a9);
    const f = files(a9.namespace);
    const before = await snapshot(a9, 'bob');
    expect(before.deadletter).toHaveLength(1);
    expect(before.inbox).toHaveLength(1);
    const bundleText = await f.read('/agents/bob/export');
    // Version 2: JSON lines, a header, records, an end record that counts them.
    const lines = bundleText.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ format: 'agent9.agent', version: 2, agent: { id: 'bob' } });
    expect(lines.find((l) => l['t'] === 'identity')).toMatchObject({ sealed: expect.any(String) });
    expect(lines.at(-1)).toEqual({ t: 'end', records: lines.length - 2 });
    await f.remove('/agents/bob', true);

    const imported = JSON.parse(await f.call('/agents/import', bundleText)) as { id: string };
    expect(imported.id).toBe('bob');
    const after = await snapshot(a9, 'bob');
    // The trace gains one `imported` event; everything else is identical.
    expect(after.trace.at(-1)).toMatchObject({ type: 'imported', from: 'bob' });
    expect({ ...after, trace: after.trace.slice(0, -1) }).toEqual(before);
    // The identity key works: a signature verifies under the same pubkey.
    const sig = (await f.call('/agents/bob/identity/sign', 'proof')).trim();
    expect(await f.call('/agents/bob/identity/verify', JSON.stringify({ pubkey: before.pubkey, signature: sig, message: 'proof' }))).toBe('true\n');
    // And the agent carries on where it was.
    await f.write('/agents/bob/ctl', 'tick');
    expect(JSON.parse(a9.runtime.store.getState('bob')!.data)).toEqual({ n: 2 });
    // Importing again under the same name is EEXIST; under another name it is a copy.
    await expectCode(f.call('/agents/import', bundleText), 'EEXIST', '/agents/import');
    const copy = JSON.parse(await f.call('/agents/import', JSON.stringify({ id: 'bob2' }) + '\n' + bundleText)) as { id: string; pubkey: string };
    expect(copy).toMatchObject({ id: 'bob2', pubkey: before.pubkey });
    expect((await files(a9.namespace).json<unknown[]>('/agents/bob2/inbox')).length).toBe(1);
  });

  it('a bundle from another server key cannot bring its identity; new_identity imports the rest', async () => {
    const a9 = await openServer({ programs: [stateful], scheduler: false });
    await richAgent(a9);
    const bundle = await files(a9.namespace).read('/agents/bob/export');
    const other = await openServer({ programs: [stateful], scheduler: false, home: tempDir() });
    const g = files(other.namespace);
    const e = await expectCode(g.call('/agents/import', bundle), 'EACCES', '/agents/import');
    expect(e.message).toContain('another server key');
    expect(await g.list('/agents')).toEqual(['new', 'import']);
    const fresh = JSON.parse(await g.call('/agents/import', '{"new_identity": true}\n' + bundle)) as { pubkey: string; tick_count: number };
    expect(fresh.tick_count).toBe(1);
    expect(fresh.pubkey).not.toBe((await files(a9.namespace).read('/agents/bob/identity/pubkey')).trim());
    // With the same server key (copied, as when moving a whole server), the identity comes along.
    const home3 = tempDir();
    copyFileSync(join(a9.home, SERVER_KEY_FILE), join(home3, SERVER_KEY_FILE));
    const third = await openServer({ programs: [stateful], scheduler: false, home: home3 });
    const moved = JSON.parse(await files(third.namespace).call('/agents/import', bundle)) as { pubkey: string };
    expect(moved.pubkey).toBe((await files(a9.namespace).read('/agents/bob/identity/pubkey')).trim());
  });

  it('carries symbolic links, hard links (the file\u2019s own record after its other name), FIFOs and sockets', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace);
    const M = '/agents/bob/memory';
    const ns = a9.namespace;
    await ns.mkdir(`${M}/d`, 0o755, admin);
    await f.write(`${M}/z-file`, 'shared bytes');
    await ns.link(`${M}/z-file`, `${M}/a-name`, admin);
    await ns.link(`${M}/z-file`, `${M}/d/deep-name`, admin);
    await ns.symlink(`${M}/to-z`, 'z-file', admin);
    await ns.symlink(`${M}/d/up`, '../d', admin);
    await ns.mknod(`${M}/p`, 'fifo', 0o600, admin);
    await ns.mknod(`${M}/s`, 'socket', 0o644, admin);
    // Removed while open: nobody's name, not in the bundle.
    await f.write(`${M}/open-gone`, 'x');
    const h = await ns.open(`${M}/open-gone`, { read: true }, admin);
    await ns.remove(`${M}/open-gone`, admin);
    const bundle = await f.read('/agents/bob/export');
    await h.close();
    const memory = bundle.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r['t'] === 'memory');
    expect(memory.map((r) => [r['path'], r['type']])).toEqual([
      ['/a-name', 'hardlink'],
      ['/d', 'dir'],
      ['/d/deep-name', 'hardlink'],
      ['/d/up', 'symlink'],
      ['/p', 'fifo'],
      ['/s', 'socket'],
      ['/to-z', 'symlink'],
      ['/z-file', 'file'],
    ]);
    expect(memory[0]).toMatchObject({ of: '/z-file' });
    expect(memory[6]).toMatchObject({ target: 'z-file', size: 0 });

    await f.call('/agents/import', JSON.stringify({ id: 'copy' }) + '\n' + bundle);
    const C = '/agents/copy/memory';
    const [z, a, deep] = await Promise.all([f.stat(`${C}/z-file`), f.stat(`${C}/a-name`), f.stat(`${C}/d/deep-name`)]);
    expect([z.nlink, a.ino, deep.ino]).toEqual([3, z.ino, z.ino]);
    expect(await f.read(`${C}/d/deep-name`)).toBe('shared bytes');
    expect(await ns.readlink(`${C}/to-z`, admin)).toBe('z-file');
    expect(await ns.realpath(`${C}/d/up/deep-name`, true, admin)).toBe(`${C}/d/deep-name`);
    expect([(await f.stat(`${C}/p`)).type, (await f.stat(`${C}/p`)).mode, (await f.stat(`${C}/s`)).type]).toEqual(['fifo', 0o600, 'socket']);
    expect(await f.list(C)).not.toContain('open-gone');
    // The quota counts the shared file once: its 12 bytes.
    expect(a9.runtime.quota.usage('copy').memory_bytes).toBe(12);
    // A further name of a file the bundle does not have: EINVAL, nothing imported.
    const broken = bundle.replace('"of":"/z-file"', '"of":"/nowhere"');
    await expectCode(f.call('/agents/import', JSON.stringify({ id: 'broken' }) + '\n' + broken), 'EINVAL', '/nowhere');
    expect(await f.list('/agents')).not.toContain('broken');
  });

  it('malformed bundles are EINVAL and import nothing', async () => {
    const a9 = await openServer({ scheduler: false });
    const f = files(a9.namespace);
    await expectCode(f.call('/agents/import', '{"format": "zip"}'), 'EINVAL', 'format');
    await expectCode(f.call('/agents/import', 'nope'), 'EINVAL', 'malformed JSON');
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const bundle = await f.read('/agents/bob/export');
    await expectCode(f.call('/agents/import', '{"id": "Bad Name"}\n' + bundle), 'EINVAL', 'invalid agent name');
    const [header, ...records] = bundle.split('\n');
    const h = JSON.parse(header!) as { agent: Record<string, unknown> };
    const cobol = JSON.stringify({ ...h, agent: { ...h.agent, program: '{"type":"cobol"}' } });
    await expectCode(f.call('/agents/import', '{"id": "x"}\n' + [cobol, ...records].join('\n')), 'EINVAL', 'cobol');
    // Cut short (no end record), or a record miscounted: nothing is imported.
    const cut = bundle.trim().split('\n').slice(0, -1).join('\n') + '\n';
    await expectCode(f.call('/agents/import', '{"id": "y"}\n' + cut), 'EINVAL', 'without its end record');
    await expectCode(f.call('/agents/import', '{"id": "z"}\n' + cut + '{"t":"end","records":99}\n'), 'EINVAL', 'counts 99 records');
    expect(await f.list('/agents')).toEqual(['new', 'import', 'bob']);
    expect(a9.storage.db.prepare('SELECT count(*) FROM import_staging').pluck().get()).toBe(0);
    expect(a9.storage.db.prepare("SELECT count(*) FROM agent_keys WHERE agent_id LIKE '~import-%'").pluck().get()).toBe(0);
  });
});
