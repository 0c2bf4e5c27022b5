/**
 * One principal per caller on the mount of the global view: an exec program's processes (and what they
 * start: setsid, double forks, a cleared environment) act as their agent, the server's user as the
 * operator. Every attempt runs in a real shell, as a user would write it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent9 } from '../../src/server/agent9.js';
import { agentRootEnv, mountServer, type FuseMount } from '../../src/fuse/index.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountPoint, ok, q, sh, until } from './helpers.js';

let a9: Agent9;
let mount: FuseMount;
let D: string;

beforeAll(async () => {
  a9 = await Agent9.open({ home: tempDir() });
  mount = await mountServer(a9, await mountPoint());
  D = mount.dir;
  const env = agentRootEnv(mount);
  a9.setExecEnv(async (id) => env(id));
  // bob keeps what it is sent (no ticks on messages), so the test reads who sent it.
  a9.runtime.agents.create({ name: 'bob', program: { type: 'exec', command: 'cat > /dev/null' }, schedule: { on_message: false } }, '/agents/new');
});

afterAll(async () => {
  await mount?.unmount();
  if (mount) await rmdir(mount.dir).catch(() => undefined);
  await a9?.close();
  cleanup();
});

/**
 * What an exec program is allowed: each line `name ok|denied`, written to `results` in its work dir.
 * `try NAME CMD...` runs CMD with its errors hidden.
 */
const ATTEMPTS = String.raw`
try() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n ok"; else echo "$n denied"; fi; }
A="$AGENT_ROOT"
{
try read_own_status cat "$A/status"
try write_own_memory sh -c 'echo note > "$1/memory/note"' _ "$A"
try read_own_config cat "$A/config"
try write_own_budget sh -c 'echo "{\"day\": null}" > "$1/budget"' _ "$A"
try write_own_config sh -c 'echo "{\"env\": {}}" > "$1/config"' _ "$A"
try write_own_ctl sh -c 'echo stop > "$1/ctl"' _ "$A"
try write_own_inbox_policy sh -c 'echo "{\"max_depth\": 5}" > "$1/inbox.policy"' _ "$A"
try write_own_compute_policy sh -c 'echo "{}" > "$1/compute/policy"' _ "$A"
try send_bob sh -c 'echo "hi bob" > "$1/../bob/inbox"' _ "$A"
try read_bob_status cat "$A/../bob/status"
try read_bob_memory ls "$A/../bob/memory"
try write_bob_ctl sh -c 'echo stop > "$1/../bob/ctl"' _ "$A"
try write_bob_memory sh -c 'echo x > "$1/../bob/memory/x"' _ "$A"
try create_agent sh -c 'echo "{\"name\": \"mallory\", \"program\": \"echo\"}" > "$1/../new"' _ "$A"
try delete_bob rmdir "$A/../bob"
try list_tokens ls "$A/../../runtime/tokens"
try env_cleared env -i /bin/sh -c 'echo "{\"day\": null}" > "$0/budget"' "$A"
} > results
# A daemon (setsid, then a double fork) outlives the tick and still acts as the agent.
setsid sh -c '( sleep 0.3; if echo "{\"day\": null}" > "$1/budget" 2>/dev/null; then echo "daemon ok"; else echo "daemon denied"; fi > daemon; echo "from the daemon" > "$1/../bob/inbox" ) &' _ "$A" &
# (long enough for setsid to have left the group that is killed when this script exits)
sleep 0.2
`;

async function results(agent: string, file = 'results'): Promise<Record<string, string>> {
  const text = await readFile(join(a9.home, 'work', agent, file), 'utf8');
  return Object.fromEntries(text.trim().split('\n').map((l) => l.split(' ') as [string, string]));
}

describe('an exec program on the mount acts as its agent', () => {
  it('reaches its own files by their access levels, another agent only through its inbox', async () => {
    a9.runtime.agents.create({ name: 'alice', program: { type: 'exec', command: ATTEMPTS } }, '/agents/new');
    await until(async () => (await sh(`test -s ${q(join(a9.home, 'work/alice/results'))}`)).code === 0, 20_000, 'the attempts');
    await until(async () => (await readFile(join(a9.home, 'work/alice/results'), 'utf8')).includes('env_cleared'), 20_000, 'all attempts');
    expect(await results('alice')).toEqual({
      read_own_status: 'ok',
      write_own_memory: 'ok',
      read_own_config: 'ok',
      write_own_budget: 'denied',
      write_own_config: 'denied',
      write_own_ctl: 'denied',
      write_own_inbox_policy: 'denied',
      write_own_compute_policy: 'denied',
      send_bob: 'ok',
      read_bob_status: 'denied',
      read_bob_memory: 'denied',
      write_bob_ctl: 'denied',
      write_bob_memory: 'denied',
      create_agent: 'denied',
      delete_bob: 'denied',
      list_tokens: 'denied',
      env_cleared: 'denied',
    });
    // Nothing of it happened: bob runs, alice's budget is unlimited as before, no new agent.
    expect(a9.runtime.agents.has('mallory')).toBe(false);
    expect(a9.runtime.store.getAgent('bob')!.state).not.toBe('terminated');
  });

  it('a daemon that left the session (setsid, double fork) still acts as the agent', async () => {
    await until(async () => (await sh(`test -s ${q(join(a9.home, 'work/alice/daemon'))}`)).code === 0, 20_000, 'the daemon');
    expect(await results('alice', 'daemon')).toEqual({ daemon: 'denied' });
    const senders = async () => a9.runtime.store.inboxHead('bob', 100).map((r) => r.sender);
    await until(async () => (await senders()).length >= 2, 10_000, 'both messages');
    expect(await senders()).toEqual(['agent:alice', 'agent:alice']);
  });

  it('people on the mount are the operator: what they send is from "operator", and admin files are theirs', async () => {
    await ok(`echo "from a person" > ${q(D)}/agents/bob/inbox`);
    const rows = a9.runtime.store.inboxHead('bob', 100);
    const mine = rows.map((r) => JSON.parse(r.body) as { from: string; source: string; payload: { text?: string } }).find((e) => e.payload.text === 'from a person');
    expect(mine).toMatchObject({ from: 'operator', source: 'user' });
    await ok(`echo '{"tick": 50}' > ${q(D)}/agents/alice/budget`);
    expect((JSON.parse(await ok(`cat ${q(D)}/agents/alice/budget`)) as { tick: { limit: number } }).tick.limit).toBe(50);
  });
});

/** Runs a script as another local user (no other groups). */
const asUser = (uid: number, script: string) => `setpriv --reuid=${uid} --regid=${uid} --clear-groups bash -c ${q(script)}`;

describe('other local users on an --allow-other mount', () => {
  it('get what config.json grants them (mount.users), by default nothing', async () => {
    await writeFile(join(a9.home, 'config.json'), JSON.stringify({ mount: { users: { '65534': 'agent:bob' } } }));
    a9.runtime.agents.create({ name: 'carol', program: 'echo', schedule: { on_message: false } }, '/agents/new');
    const other = await mountServer(a9, await mountPoint(), { allowOther: true });
    try {
      const O = q(other.dir);
      // 65534 acts as bob: bob's own files, another agent's inbox, nothing admin.
      expect(JSON.parse(await ok(asUser(65534, `cat ${O}/agents/bob/status`))).id).toBe('bob');
      expect((await sh(asUser(65534, `cat ${O}/agents/alice/status`))).stderr).toMatch(/Permission denied/);
      expect((await sh(asUser(65534, `echo '{"day": null}' > ${O}/agents/bob/budget`))).stderr).toMatch(/Permission denied/);
      await ok(asUser(65534, `echo "bob via uid 65534" > ${O}/agents/carol/inbox`));
      const sent = a9.runtime.store.inboxHead('carol', 1000).map((r) => JSON.parse(r.body) as { from: string; payload: { text?: string } });
      expect(sent).toEqual([expect.objectContaining({ from: 'agent:bob', payload: { text: 'bob via uid 65534' } })]);
      // 65533 is granted nothing: not even a listing.
      const none = await sh(asUser(65533, `ls ${O}/agents`));
      expect(none.code).not.toBe(0);
      expect(none.stderr).toMatch(/Permission denied/);
      // The server's own user is still the operator there.
      await ok(`cat ${O}/agents/bob/config > /dev/null && echo '{"tick": 7}' > ${O}/agents/bob/budget`);
    } finally {
      await other.unmount();
      await rmdir(other.dir).catch(() => undefined);
    }
  });
});
