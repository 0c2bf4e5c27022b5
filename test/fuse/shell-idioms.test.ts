/**
 * Shell idioms on the server's own mount fail loudly and never hang (CONTRACT sections 4, 9, 15):
 * command files check each line at write(2), which bash's builtin echo reports; `grep -r` and `tar`
 * finish over an agent directory although `logs/trace` is a live stream (they open it O_NONBLOCK and
 * get EAGAIN); goals are created by writing them (echo, tee, Python, vim), and a create with nothing
 * written is refused; a read of a running job's `result` waits for the job. Every command runs in a
 * child process, some as `nobody` on an allow_other mount.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountServer, type FuseMount } from '../../src/fuse/index.js';
import { mountedType } from '../../src/fuse/kernel-mount.js';
import { agentctlBackground, ensureBuilt } from '../cli/helpers.js';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from '../http/served.js';
import { mountPoint, nonblockRead, ok, PYTHON, q, sh, sleep } from './helpers.js';

let s: Served;
let mount: FuseMount;
let D: string; // the mount point
let A: string; // the demo agent's directory on it
let scratch: string;

/** As nobody (uid and gid 65534, no other groups). */
const asNobody = (script: string) => `setpriv --reuid=65534 --regid=65534 --clear-groups bash -c ${q(script)}`;

beforeAll(async () => {
  s = await serveAgent9();
  mount = await mountServer(s.a9, await mountPoint(), { allowOther: true });
  D = mount.dir;
  A = `${D}/agents/demo`;
  scratch = await mkdtemp(join(tmpdir(), 'agent9-idioms-'));
  await ok(`echo '{"name": "demo", "program": "echo"}' > ${q(D)}/agents/new`);
  await ok(`echo 'needle in memory' > ${q(A)}/memory/notes.txt`);
});

afterAll(async () => {
  if (mount) {
    await mount.unmount();
    await rmdir(mount.dir).catch(() => undefined);
  }
  await s?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
  cleanup();
});

const state = async () => (JSON.parse(await ok(`cat ${q(A)}/status`)) as { state: string }).state;

describe('command files check each line at write(2)', () => {
  it("`echo bogus > ctl` fails at the write, with bash's own message and status; nothing of a bad message runs", async () => {
    const bad = await sh(`echo bogus > ${q(A)}/ctl`);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/echo: write error: Invalid argument/);
    // A good line before a bad one in the same message does not run either.
    const mixed = await sh(`printf 'stop\\nbogus\\n' > ${q(A)}/ctl`);
    expect(mixed.code).not.toBe(0);
    expect(mixed.stderr).toMatch(/Invalid argument/);
    expect(await state()).not.toBe('terminated');
    // Good lines work as before; `start` then `tick` in one message is fine (state is not checked early).
    await ok(`echo stop > ${q(A)}/ctl`);
    expect(await state()).toBe('terminated');
    await ok(`printf 'start\\ntick by hand\\n' > ${q(A)}/ctl`);
    expect(await state()).toBe('active');
  });

  it('the other command files do the same: deadletter/ctl (unknown id: ENOENT), a job ctl, a writable view', async () => {
    const unknown = await sh(`echo 'replay nosuch' > ${q(A)}/deadletter/ctl`);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/write error: No such file or directory/);
    const usage = await sh(`echo 'frob' > ${q(A)}/deadletter/ctl`);
    expect(usage.stderr).toMatch(/write error: Invalid argument/);
    const job = JSON.parse(await ok(`exec 3<> ${q(A)}/compute/new; echo '{"model": "echo", "prompt": "hi"}' >&3; cat <&3`)) as { job_id: string };
    const jobCtl = await sh(`echo frob > ${q(A)}/compute/jobs/${job.job_id}/ctl`);
    expect(jobCtl.stderr).toMatch(/write error: Invalid argument/);
    // A writable view (a JSON document) is applied by the write that completes it: a bad field fails that write.
    const before = await ok(`cat ${q(A)}/inbox.policy`);
    const view = await sh(`echo '{"max_depth": 0}' > ${q(A)}/inbox.policy`);
    expect(view.code).toBe(1);
    expect(view.stderr).toMatch(/write error: Invalid argument/);
    expect(await ok(`cat ${q(A)}/inbox.policy`)).toBe(before);
    await ok(`echo '{"max_depth": 50}' > ${q(A)}/inbox.policy`);
    expect(JSON.parse(await ok(`cat ${q(A)}/inbox.policy`))).toMatchObject({ max_depth: 50 });
  });
});

describe('streams opened O_NONBLOCK give EAGAIN: grep -r and tar finish', () => {
  it('grep -r over an agent directory finishes and finds what is there, as root and as nobody', async () => {
    for (const wrap of [(x: string) => x, asNobody]) {
      const started = Date.now();
      const r = await sh(wrap(`cd ${q(A)} && timeout 20 grep -r needle .`), { timeoutMs: 30_000 });
      expect(r.code, r.stderr).not.toBe(124); // timeout's status: it hung
      expect(r.stdout).toContain('./memory/notes.txt:needle in memory');
      expect(r.stderr).toMatch(/logs\/trace: Resource temporarily unavailable/);
      expect(Date.now() - started).toBeLessThan(10_000);
      // -s: the same search, quiet about the files it cannot read.
      const quiet = await sh(wrap(`cd ${q(A)} && timeout 20 grep -rs needle .`), { timeoutMs: 30_000 });
      expect(quiet.stdout).toContain('./memory/notes.txt:needle in memory');
      expect(quiet.stderr).toBe('');
    }
  });

  it('a non-blocking read of a stream: EAGAIN while it has nothing, its data once there; fcntl(O_NONBLOCK) after open counts too', async () => {
    const script = `
import os, fcntl, sys, time, errno
path = sys.argv[1]
def try_read(fd):
    try:
        return os.read(fd, 65536)
    except BlockingIOError as e:
        return 'EAGAIN %d' % e.errno
a = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
b = os.open(path, os.O_RDONLY)
fcntl.fcntl(b, fcntl.F_SETFL, fcntl.fcntl(b, fcntl.F_GETFL) | os.O_NONBLOCK)
print(try_read(a)); print(try_read(b)); sys.stdout.flush()
with open(sys.argv[2], 'w') as ctl:
    ctl.write('tick nonblock\\n')
got = b''
deadline = time.time() + 10
while b'"nonblock"' not in got and time.time() < deadline:
    r = try_read(a)
    if isinstance(r, bytes):
        got += r
    else:
        time.sleep(0.05)
print('data' if b'"nonblock"' in got else 'none')
`;
    const out = await ok(`${PYTHON} -c ${q(script)} ${q(`${A}/logs/trace`)} ${q(`${A}/ctl`)}`, { timeoutMs: 20_000 });
    expect(out.split('\n')).toEqual(['EAGAIN 11', 'EAGAIN 11', 'data', '']);
  });

  it('a blocking read still blocks until data arrives (cat logs/trace follows the trace)', async () => {
    const reading = sh(`timeout 10 head -c 1 ${q(A)}/logs/trace`, { timeoutMs: 15_000 });
    await sleep(500);
    await ok(`echo 'tick for the reader' > ${q(A)}/ctl`);
    const r = await reading;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('{');
  });

  it('tar of an agent directory finishes: streams and call files are archived empty (their size is 0)', async () => {
    const tarball = join(scratch, 'demo.tar');
    const r = await sh(`timeout 20 tar cf ${q(tarball)} -C ${q(D)}/agents demo`, { timeoutMs: 30_000 });
    expect(r.code, r.stderr).not.toBe(124);
    const listing = await ok(`tar tvf ${q(tarball)}`);
    expect(listing).toMatch(/ 0 .* demo\/logs\/trace$/m);
    expect(listing).toMatch(/demo\/memory\/notes\.txt$/m);
    expect(await ok(`tar xOf ${q(tarball)} demo/memory/notes.txt`)).toBe('needle in memory\n');
  });
});

describe('goals are created by writing them on the mount', () => {
  const G = () => `${A}/goals`;
  const goal = async (name: string) => JSON.parse(await ok(`cat ${q(G())}/${name}`)) as { description: string; status: string };

  it('echo >, tee, cat > and Python create a goal; stat works before the close', async () => {
    await ok(`echo '{"description": "by echo"}' > ${q(G())}/g1.json`);
    expect(await goal('g1.json')).toMatchObject({ description: 'by echo', status: 'pending' });
    await ok(`echo '{"description": "by tee"}' | tee ${q(G())}/g2.json > /dev/null`);
    expect((await goal('g2.json')).description).toBe('by tee');
    await ok(`cat > ${q(G())}/g3.json`, { input: '{"description": "by cat", "status": "active"}' });
    expect(await goal('g3.json')).toMatchObject({ description: 'by cat', status: 'active' });
    const py = `
import os, sys, json
p = sys.argv[1]
with open(p, 'w') as f:
    f.write(json.dumps({'description': 'by python'}))
    f.flush()
    print(os.stat(p).st_size >= 0, os.path.basename(p) in os.listdir(os.path.dirname(p)))
print(json.load(open(p))['description'])
`;
    expect(await ok(`${PYTHON} -c ${q(py)} ${q(`${G()}/g4.json`)}`)).toBe('True True\nby python\n');
    expect((await ok(`ls ${q(G())}`)).split('\n')).toEqual(expect.arrayContaining(['g1.json', 'g2.json', 'g3.json', 'g4.json', 'new']));
  });

  it('vim creates a goal and edits one in place', async () => {
    const keys = join(scratch, 'keys');
    await ok(`printf 'i{"description": "by vim"}\\033:wq\\n' > ${q(keys)}`);
    await ok(`HOME=${q(scratch)} timeout 20 vim -N -u NONE -i NONE -n -s ${q(keys)} ${q(G())}/v1.json > /dev/null 2>&1`);
    expect((await goal('v1.json')).description).toBe('by vim');
    await ok(`printf 'ggdGi{"description": "edited by vim", "status": "done"}\\033:wq\\n' > ${q(keys)}`);
    await ok(`cd ${q(scratch)} && HOME=${q(scratch)} timeout 20 vim -N -u NONE -i NONE -n -s ${q(keys)} ${q(G())}/v1.json > /dev/null 2>&1`);
    expect(await goal('v1.json')).toMatchObject({ description: 'edited by vim', status: 'done' });
    // A temporary file beside a goal has nowhere to be kept: sed -i fails, naming it, and changes nothing.
    const sed = await sh(`sed -i 's/edited/changed/' ${q(G())}/v1.json`);
    expect(sed.code).not.toBe(0);
    expect(sed.stderr).toMatch(/couldn't open temporary file .*goals\/sed\w+: No such file or directory/);
    expect((await goal('v1.json')).description).toBe('edited by vim');
    // What works instead: the result written back through the goal itself.
    await ok(`sed 's/edited/changed/' ${q(G())}/v1.json > ${q(scratch)}/v1 && cat ${q(scratch)}/v1 > ${q(G())}/v1.json`);
    expect((await goal('v1.json')).description).toBe('changed by vim');
  });

  it('a bad goal fails the write that completes it; touch of a new goal fails at close; nothing is made', async () => {
    const bad = await sh(`echo '{"priority": 5}' > ${q(G())}/bad.json`);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/echo: write error: Invalid argument/);
    const touched = await sh(`touch ${q(G())}/empty.json`);
    expect(touched.code).toBe(1);
    expect(touched.stderr).toMatch(/Invalid argument/);
    const names = (await ok(`ls ${q(G())}`)).split('\n');
    expect(names).not.toContain('bad.json');
    expect(names).not.toContain('empty.json');
    // touch of an existing goal is fine (times are not kept: a goal's mtime is when it was written).
    await ok(`touch ${q(G())}/g1.json`);
  });

  it('on `agentctl mount` (the mount through HTTP) too', async () => {
    await ensureBuilt();
    const d = await mountPoint();
    const m = agentctlBackground(['mount', d], { AGENT9_URL: s.server.url, AGENT9_TOKEN: s.server.adminToken });
    try {
      for (let i = 0; (await mountedType(d)) !== 'fuse.agent9'; i++) {
        if (i > 400) throw new Error(`agentctl mount did not mount: ${(await m.stop()).stderr}`);
        await sleep(50);
      }
      const goals = `${d}/agents/demo/goals`;
      await ok(`echo '{"description": "through http"}' > ${q(goals)}/h1.json`);
      await ok(`echo '{"description": "tee through http"}' | tee ${q(goals)}/h2.json > /dev/null`);
      expect(JSON.parse(await ok(`cat ${q(A)}/goals/h1.json`))).toMatchObject({ description: 'through http' });
      expect(JSON.parse(await ok(`cat ${q(A)}/goals/h2.json`))).toMatchObject({ description: 'tee through http' });
      const touched = await sh(`touch ${q(goals)}/h3.json`);
      expect(touched.code).toBe(1);
      expect((await ok(`ls ${q(A)}/goals`)).split('\n')).not.toContain('h3.json');
    } finally {
      await m.stop('SIGTERM');
      await rmdir(d).catch(() => undefined);
    }
  }, 120_000);
});

describe('a read of a running job’s result waits for the end', () => {
  const submit = async (body: object) =>
    (JSON.parse(await ok(`exec 3<> ${q(A)}/compute/new; cat >&3; cat <&3`, { input: JSON.stringify(body) })) as { job_id: string }).job_id;

  it('cat result blocks until the job completes and prints it; O_NONBLOCK gives EAGAIN meanwhile', async () => {
    const id = await submit({ model: 'echo', prompt: 'wait for me please', options: { chunk_delay_ms: 400 } });
    const result = `${A}/compute/jobs/${id}/result`;
    const nonblock = await nonblockRead(result);
    expect(nonblock.stdout.trim()).toBe('EAGAIN 11');
    const started = Date.now();
    const out = JSON.parse(await ok(`cat ${q(result)}`, { timeoutMs: 20_000 })) as { output: { text: string } };
    expect(out.output.text).toBe('wait for me please');
    expect(Date.now() - started).toBeGreaterThan(300);
    expect(JSON.parse(await ok(`cat ${q(A)}/compute/jobs/${id}/status`))).toMatchObject({ status: 'complete' });
  });

  it('a failed job: the waiting read gets the failure', async () => {
    const id = await submit({ model: 'echo', prompt: 'cancel me', options: { chunk_delay_ms: 2000 } });
    const reading = sh(`cat ${q(A)}/compute/jobs/${id}/result`, { timeoutMs: 20_000 });
    await sleep(300);
    await ok(`echo cancel > ${q(A)}/compute/jobs/${id}/ctl`);
    const r = await reading;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Operation canceled/);
  });

  it('Ctrl-C on a waiting cat works at once', async () => {
    const id = await submit({ model: 'echo', prompt: 'slow slow slow slow', options: { chunk_delay_ms: 3000 } });
    const started = Date.now();
    const r = await sh(`timeout -s INT 1 cat ${q(A)}/compute/jobs/${id}/result`, { timeoutMs: 20_000 });
    expect(r.code).toBe(124);
    expect(Date.now() - started).toBeLessThan(2500);
    await ok(`echo cancel > ${q(A)}/compute/jobs/${id}/ctl`);
  });
});
