/**
 * Agents on the mount: a server's global view mounted in this process, agents created and messaged with
 * shell commands, an exec program that talks to another agent through the mount (AGENT_ROOT), and one
 * agent's own view mounted with `agent` (every operation acts as that agent).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmdir } from 'node:fs/promises';
import { Agent9 } from '../../src/server/agent9.js';
import { agentRootEnv, mountServer, type FuseMount } from '../../src/fuse/index.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountPoint, ok, q, sh, until } from './helpers.js';

let a9: Agent9;
let global: FuseMount;
let D: string;
const extra: FuseMount[] = [];

beforeAll(async () => {
  a9 = await Agent9.open({ home: tempDir() });
  global = await mountServer(a9, await mountPoint());
  D = global.dir;
  const env = agentRootEnv(global);
  a9.setExecEnv(async (id) => env(id));
});

afterAll(async () => {
  for (const m of [...extra, global]) {
    if (!m) continue;
    await m.unmount();
    await rmdir(m.dir).catch(() => undefined);
  }
  await a9?.close();
  cleanup();
});

const createAgent = async (spec: object) =>
  JSON.parse(await ok(`exec 3<> ${q(D)}/agents/new; cat >&3; cat <&3`, { input: JSON.stringify(spec) })) as { id: string; state: string };

async function outbox(agent: string): Promise<{ to?: string; payload: unknown; metadata?: { in_reply_to?: string } }[]> {
  const names = (await ok(`ls ${q(D)}/agents/${agent}/outbox`)).split('\n').filter(Boolean);
  const out = [];
  for (const n of names) out.push(JSON.parse(await ok(`cat ${q(D)}/agents/${agent}/outbox/${n}`)));
  return out;
}

describe('agents through the mount', () => {
  it('creates agents with the /agents/new call file and lists them', async () => {
    expect((await createAgent({ name: 'b', program: 'echo' })).id).toBe('b');
    expect((await ok(`ls ${q(D)}/agents`)).split('\n')).toEqual(expect.arrayContaining(['b', 'new', 'import']));
    const status = JSON.parse(await ok(`cat ${q(D)}/agents/b/status`)) as { id: string; program: unknown };
    expect(status.id).toBe('b');
    const bad = await sh(`exec 3<> ${q(D)}/agents/new; echo '{"name": "b", "program": "echo"}' >&3; cat <&3`);
    expect(bad.stderr).toMatch(/File exists/);
    // The README's way: a plain `>` sends the call when the file is closed (the answer is not read).
    await ok(`echo '{"name": "c", "program": "echo"}' > ${q(D)}/agents/new`);
    expect((await ok(`ls ${q(D)}/agents`)).split('\n')).toContain('c');
  });

  it('echo > and echo >> each enqueue exactly one envelope', async () => {
    const enqueued = async () => (JSON.parse(await ok(`cat ${q(D)}/agents/c/status`)) as { counters: { enqueued: number } }).counters.enqueued;
    const before = await enqueued();
    await ok(`echo one > ${q(D)}/agents/c/inbox && echo two >> ${q(D)}/agents/c/inbox && printf 'three\nlines\n' > ${q(D)}/agents/c/inbox`);
    expect(await enqueued()).toBe(before + 3);
  });

  it('a full inbox under the reject policy makes `echo x > inbox` fail visibly (EAGAIN at open)', async () => {
    // An exec program that never succeeds keeps the inbox full (failed ticks leave envelopes queued).
    await createAgent({ name: 'full', program: { type: 'exec', command: 'exit 1' } });
    await ok(`echo '{"max_depth": 1, "overflow": "reject"}' > ${q(D)}/agents/full/inbox.policy`);
    await ok(`echo first > ${q(D)}/agents/full/inbox`);
    const refused = await sh(`echo second > ${q(D)}/agents/full/inbox`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Resource temporarily unavailable/);
    const status = JSON.parse(await ok(`cat ${q(D)}/agents/full/status`)) as { queue_depth: number };
    expect(status.queue_depth).toBe(1);
  });

  it('echo > DIR/agents/b/inbox is answered by b’s echo program into its outbox', async () => {
    await ok(`echo "hello b" > ${q(D)}/agents/b/inbox`);
    await until(async () => (await outbox('b')).length >= 1, 10_000, 'an answer in b/outbox');
    const [reply] = await outbox('b');
    expect(reply!.payload).toEqual({ text: 'hello b' });
    expect(reply!.metadata?.in_reply_to).toEqual(expect.any(String));
  });

  it('agent a, an exec program, sends to agent b through the mount (AGENT_ROOT); b answers', async () => {
    const command = `grep -q '"type":"init"' && echo "hello from $AGENT_ID" > "$AGENT_ROOT/../b/inbox"; true`;
    await createAgent({ name: 'a', program: { type: 'exec', command } });
    await until(
      async () => (await outbox('b')).some((e) => JSON.stringify(e.payload) === JSON.stringify({ text: 'hello from a' })),
      15_000,
      'b to answer a',
    );
    const status = JSON.parse(await ok(`cat ${q(D)}/agents/a/status`)) as { tick_count: number; ticks_failed: number };
    expect(status.ticks_failed).toBe(0);
  });

  it('logs/trace is a stream: a reader sees the tick of a message sent meanwhile', async () => {
    const reader = sh(`head -n 2 ${q(D)}/agents/b/logs/trace`, { timeoutMs: 15_000 });
    await until(async () => global.adapter.openHandles >= 1, 5000, 'the trace reader');
    await ok(`echo "traced" > ${q(D)}/agents/b/inbox`);
    const r = await reader;
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type?: string });
    expect(lines).toHaveLength(2);
  });

  it('one agent’s own view: `agent` mounts it at / and acts as that agent', async () => {
    const mine = await mountServer(a9, await mountPoint(), { agent: 'b' });
    extra.push(mine);
    const M = q(mine.dir);
    expect((await ok(`ls ${M}`)).split('\n')).toEqual(expect.arrayContaining(['inbox', 'outbox', 'status', 'memory', 'logs']));
    expect((JSON.parse(await ok(`cat ${M}/status`)) as { id: string }).id).toBe('b');
    await ok(`mkdir -p ${M}/memory/notes && echo remember > ${M}/memory/notes/one.txt`);
    expect(await ok(`cat ${q(D)}/agents/b/memory/notes/one.txt`)).toBe('remember\n');
    // Admin-only files refuse the agent itself.
    expect((await sh(`echo tick > ${M}/ctl`)).stderr).toMatch(/Permission denied/);
    // What the agent sends is from the agent.
    await ok(`echo "note to self" > ${M}/inbox`);
    await until(
      async () => (await outbox('b')).some((e) => JSON.stringify(e.payload) === JSON.stringify({ text: 'note to self' })),
      10_000,
      'b to answer itself',
    );
    const reply = (await outbox('b')).find((e) => JSON.stringify(e.payload) === JSON.stringify({ text: 'note to self' }));
    expect(reply!.to).toBe('b');
  });

  it('df on the mount reports the space of the data directory', async () => {
    const size = async (p: string) => (await ok(`df -B1 --output=size,avail ${q(p)} | tail -1`)).trim().split(/\s+/).map(Number);
    const [mountSize] = await size(D);
    const [homeSize] = await size(a9.home);
    expect(mountSize).toBe(homeSize);
  });

  it('mounting the view of an unknown agent fails with ENOENT', async () => {
    const dir = await mountPoint();
    await expect(mountServer(a9, dir, { agent: 'nobody' })).rejects.toMatchObject({ code: 'ENOENT' });
    await rmdir(dir);
  });
});
