/**
 * /containers in-process against the real engine: the origin's cases (new + usage + idempotency, budget
 * exceeded, budget scopes, output watch, exec and files) and the isolation the sandbox promises.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readAll, writeAll } from '../../src/fs/ops.js';
import { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { admin, collect, expectCode, openStorage, tempDir, text, user } from '../helpers.js';
import { BUSYBOX, PYTHON } from './engine.js';
import { AGENT, lines, makeRig, onEngineRig, type Rig } from './setup.js';

let provider: DockerProvider;
let rig: Rig;

onEngineRig((p, r) => {
  provider = p;
  rig = r;
});

async function finished(sid: string) {
  await rig.engine.waitFor(sid);
  return rig.json(`/containers/sessions/${sid}/result`);
}

async function interactive(extra: Record<string, unknown> = {}): Promise<string> {
  const answer = await rig.call('/containers/new', { image: BUSYBOX, kind: 'interactive', ...extra });
  const sid = answer['session_id'] as string;
  await rig.engine.containerOf(AGENT, sid, '/');
  return sid;
}

async function execWait(sid: string, command: unknown): Promise<Record<string, unknown>> {
  const body = typeof command === 'string' ? { command, wait: true } : { ...(command as object), wait: true };
  return rig.call(`/containers/sessions/${sid}/exec/new`, body);
}

describe('/containers: the origin cases', () => {
  it('new, usage and idempotency: one session per key, charged once for the time it ran', async () => {
    const before = await rig.json('/containers/usage');
    const req = { image: BUSYBOX, commands: ['echo hello'], idempotency_key: 'k1' };
    const first = await rig.call('/containers/new', req);
    expect(first['status']).toBe('provisioning');
    const sid = first['session_id'] as string;
    expect((first['paths'] as Record<string, string>)['output']).toBe(`/containers/sessions/${sid}/output`);
    const result = await finished(sid);
    expect(result).toMatchObject({ status: 'complete', exit_code: 0, stdout: 'hello\n', provider_id: 'docker' });
    const cost = result['cost'] as number;
    expect(cost).toBeGreaterThan(0);
    expect(cost).toBeLessThanOrEqual(result['reserved'] as number);

    const usage = await rig.json('/containers/usage');
    const day = usage['day'] as { reserved: number; spent: number };
    expect(day.reserved).toBe((before['day'] as { reserved: number }).reserved);
    expect(day.spent).toBe((before['day'] as { spent: number }).spent + cost);

    const again = await rig.call('/containers/new', req);
    expect(again).toMatchObject({ session_id: sid, replayed: true, status: 'complete' });
    expect(await rig.json('/containers/usage')).toMatchObject({ day: { spent: day.spent, reserved: day.reserved } });
    await expectCode(rig.call('/containers/new', { ...req, commands: ['echo other'] }), 'EEXIST', 'idempotency key');

    const sessionUsage = await rig.json(`/containers/sessions/${sid}/usage`);
    expect(sessionUsage).toMatchObject({ cost, final: true });
    expect((sessionUsage['usage'] as { duration_ms: number }).duration_ms).toBeGreaterThan(0);
  });

  it('answers a repeated key with its session even when the engine is gone', async () => {
    const storage = openStorage();
    const a = makeRig({ storage });
    const req = { image: BUSYBOX, commands: ['echo once'], idempotency_key: 'k-down', wait: true };
    const first = await a.call('/containers/new', req);
    expect(first).toMatchObject({ status: 'complete', stdout: 'once\n' });
    await a.engine.close();
    const b = makeRig({ storage, providers: [new DockerProvider({ socketPath: '/nonexistent/docker.sock' })] });
    expect(await b.call('/containers/new', req)).toMatchObject({ session_id: first['session_id'], status: 'complete', stdout: 'once\n' });
    const { wait: _w, ...noWait } = req;
    expect(await b.call('/containers/new', noWait)).toMatchObject({ session_id: first['session_id'], replayed: true });
    await expectCode(b.call('/containers/new', { ...noWait, idempotency_key: 'k-new' }), 'EREMOTEIO', 'unavailable');
    await b.engine.close();
  });

  it('budget exceeded: the submit fails with EDQUOT and nothing runs', async () => {
    const r = makeRig({ policy: { price_per_cpu_second: 1 } });
    r.ledger.setLimits(AGENT, { tick: 1, day: 2 });
    const before = await provider.list({ 'agent9.instance': r.engine.instanceId });
    await expectCode(r.call('/containers/new', { image: BUSYBOX, commands: ['true'], max_cost: 5 }), 'EDQUOT', '/containers/new');
    expect(await r.read('/containers/sessions').catch(() => '')).toBe('');
    expect(r.engine.sessions.ids(AGENT)).toEqual([]);
    expect(await provider.list({ 'agent9.instance': r.engine.instanceId })).toEqual(before);
    await r.engine.close();
  });

  it('budget scopes enforce the hierarchy org ⊇ repo ⊇ issue', async () => {
    const r = makeRig({ policy: { price_per_cpu_second: 1 } });
    r.ledger.setLimits(AGENT, { tick: 10 }, 'org:acme');
    r.ledger.setLimits(AGENT, { tick: 5 }, 'repo:acme/app');
    r.ledger.setLimits(AGENT, { tick: 3 }, 'issue:42');
    const scope = { org: 'acme', repo: 'acme/app', issue: '42' };
    const req = (max_cost: number) => ({ image: BUSYBOX, kind: 'interactive', max_cost, budget_scope: scope });
    await expectCode(r.call('/containers/new', req(4)), 'EDQUOT', 'issue:42');
    const ok = await r.call('/containers/new', req(3));
    // The repo level (5) now has 2 left: checked broad to narrow, it refuses first.
    await expectCode(r.call('/containers/new', req(3)), 'EDQUOT', 'repo:acme/app');
    await expectCode(r.call('/containers/new', { ...req(2), budget_scope: { issue: '42' } }), 'EDQUOT', 'issue:42');
    const usage = await r.json('/containers/usage');
    expect((usage['scopes'] as Record<string, { tick: { reserved: number } }>)['issue:42']!.tick.reserved).toBe(3);
    await writeAll(r.ns, `/containers/sessions/${ok['session_id']}/ctl`, 'kill', admin);
    const status = await r.json(`/containers/sessions/${ok['session_id']}/status`);
    expect(status).toMatchObject({ status: 'stopped', stop_reason: 'kill' });
    const after = (await r.json('/containers/usage'))['scopes'] as Record<string, { tick: { reserved: number; spent: number } }>;
    expect(after['issue:42']!.tick.reserved).toBe(0);
    expect(after['issue:42']!.tick.spent).toBeLessThanOrEqual(3);
    await r.engine.close();
  });

  it("the policy's own caps: per session, and per tick at the service:containers level", async () => {
    const r = makeRig({ policy: { price_per_cpu_second: 1, max_cost_per_session: 100, max_cost_per_tick: 150 } });
    try {
      await expectCode(r.call('/containers/new', { image: BUSYBOX, kind: 'interactive', limits: { max_time_secs: 101 } }), 'EDQUOT', 'max_cost_per_session');
      const first = await r.call('/containers/new', { image: BUSYBOX, kind: 'interactive', limits: { max_time_secs: 100 } });
      await expectCode(r.call('/containers/new', { image: BUSYBOX, kind: 'interactive', limits: { max_time_secs: 100 } }), 'EDQUOT', 'service:containers');
      const usage = await r.json('/containers/usage');
      expect(usage['containers']).toMatchObject({ tick: { limit: 150, reserved: 100 } });
      await writeAll(r.ns, `/containers/sessions/${first['session_id']}/ctl`, 'kill', admin);
      expect(((await r.json('/containers/usage'))['containers'] as { tick: { reserved: number } }).tick.reserved).toBe(0);
      // Lifting the cap in the policy lifts it in the ledger.
      await writeAll(r.ns, '/containers/policy', JSON.stringify({ price_per_cpu_second: 1, max_cost_per_tick: null }), admin);
      expect(((await r.json('/containers/usage'))['containers'] as { tick: { limit: number | null } }).tick.limit).toBe(null);
    } finally {
      await r.engine.close();
    }
  });

  it('output watch: stdout and stderr arrive apart, in order, then the stream ends', async () => {
    const answer = await rig.call('/containers/new', { image: BUSYBOX, commands: ['echo hello; sleep 0.2; echo error >&2'] });
    const sid = answer['session_id'] as string;
    const out = lines(await rig.read(`/containers/sessions/${sid}/output`));
    expect(out.map((c) => [c['stream'], c['data']])).toEqual([
      ['stdout', 'hello\n'],
      ['stderr', 'error\n'],
    ]);
    expect(out[0]).toMatchObject({ session_id: sid, exec_id: '1' });
    // Watching through the namespace sees the same data events and ends with `end`.
    const events = await collect(rig.ns.watch(`/containers/sessions/${sid}/output`, 0, admin), 10, 5000);
    expect(events.filter((e) => e.type === 'data').map((e) => (e.data as { data: string }).data)).toEqual(['hello\n', 'error\n']);
    expect(events.at(-1)?.type).toBe('end');
    expect((await finished(sid))['stderr']).toBe('error\n');
  });

  it('exec and files: commands in an interactive session, the workdir as a tree', async () => {
    const sid = await interactive();
    const answer = await rig.call(`/containers/sessions/${sid}/exec/new`, 'ls -la');
    const eid = answer['exec_id'] as string;
    expect(answer['paths']).toMatchObject({ stdout: `/containers/sessions/${sid}/exec/${eid}/stdout` });
    const chunks = lines(await rig.read(`/containers/sessions/${sid}/exec/${eid}/output`));
    expect(chunks.every((c) => c['exec_id'] === eid)).toBe(true);
    expect(await rig.json(`/containers/sessions/${sid}/exec/${eid}/result`)).toMatchObject({ exit_code: 0, status: 'complete' });

    const files = `/containers/sessions/${sid}/files`;
    expect(await rig.ns.stat(files, admin)).toMatchObject({ type: 'dir', kind: 'dir' });
    await rig.ns.mkdir(`${files}/src`, 0o755, admin);
    await writeAll(rig.ns, `${files}/src/main.rs`, 'hello', admin);
    expect(text(await readAll(rig.ns, `${files}/src/main.rs`, admin))).toBe('hello');
    expect((await rig.ns.readdir(files, admin)).map((e) => e.name)).toEqual(['src']);
    const st = await rig.ns.stat(`${files}/src/main.rs`, admin);
    expect(st).toMatchObject({ type: 'file', size: 5 });
    // The command sees what the files wrote, and the files see what the command wrote.
    const seen = await execWait(sid, 'cat src/main.rs; mkdir -p out && printf "%s" built > out/a.txt');
    expect(seen['stdout']).toBe('hello');
    expect(text(await readAll(rig.ns, `${files}/out/a.txt`, admin))).toBe('built');
    await writeAll(rig.ns, `${files}/src/main.rs`, ' world', admin, { append: true });
    expect(text(await readAll(rig.ns, `${files}/src/main.rs`, admin))).toBe('hello world');
    await rig.ns.rename(`${files}/out/a.txt`, `${files}/b.txt`, admin);
    await expectCode(rig.ns.remove(`${files}/out`, admin, { dir: true }).then(() => rig.ns.stat(`${files}/out`, admin)), 'ENOENT');
    await expectCode(rig.ns.remove(`${files}/src`, admin, { dir: true }), 'ENOTEMPTY');
    await rig.ns.remove(`${files}/b.txt`, admin);
    await expectCode(rig.ns.stat(`${files}/b.txt`, admin), 'ENOENT', 'b.txt');
    expect((await rig.ns.readdir(files, admin)).map((e) => e.name)).toEqual(['src']);
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'stop', admin);
    expect(await rig.json(`/containers/sessions/${sid}/status`)).toMatchObject({ status: 'stopped', stop_reason: 'stop' });
    await expectCode(rig.ns.readdir(files, admin), 'ENOENT', 'went with its container');
  });
});

describe('/containers: isolation and limits', () => {
  it('has no network inside', async () => {
    const sid = await interactive();
    const r = await execWait(sid, 'ls /sys/class/net; wget -q -T 2 -O- http://1.1.1.1/ 2>&1; echo rc=$?');
    expect(r['stdout']).toMatch(/^lo\n/);
    expect(r['stdout']).toMatch(/rc=[1-9]/);
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('refuses network when the policy does not allow it', async () => {
    await expectCode(rig.call('/containers/new', { image: BUSYBOX, commands: ['true'], limits: { allow_network: true } }), 'EINVAL', 'allow_network');
  });

  it('kills a command over the memory limit and reports exit 137', async () => {
    const answer = await rig.call('/containers/new', {
      image: BUSYBOX,
      commands: ['x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo ${#x}'],
      limits: { max_memory_mb: 32 },
    });
    const result = await finished(answer['session_id'] as string);
    expect(result).toMatchObject({ status: 'complete', exit_code: 137 });
    const cmd = (result['command_results'] as Record<string, unknown>[])[0]!;
    expect(cmd).toMatchObject({ exit_code: 137, oom_killed: true, status: 'complete' });
    expect(cmd['error']).toMatch(/out of memory/);
  });

  it('kills a command at its time limit, with its whole process tree', async () => {
    const sid = await interactive();
    const r = await execWait(sid, { command: 'sleep 300 & (sleep 301 &); sleep 302', timeout_secs: 1 });
    expect(r).toMatchObject({ status: 'timeout', timed_out: true, exit_code: 137 });
    const ps = await execWait(sid, 'ps -o args');
    expect(ps['stdout']).not.toMatch(/sleep 30[012]/);
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it.each([
    ['from the host', () => undefined],
    ['from inside the container', () => [new DockerProvider({ hostCgroupRoot: null })]],
  ])('kills a timed-out tree with every pid taken, or the container with it (searched %s)', async (_how, providers) => {
    const list = providers();
    const r = list ? makeRig({ providers: list }) : rig;
    try {
      const sid = (await r.call('/containers/new', { image: BUSYBOX, kind: 'interactive', limits: { max_pids: 24 } }))['session_id'] as string;
      // Every pid taken by sleepers, and the shell keeps trying to fork more.
      const ex = await r.call(`/containers/sessions/${sid}/exec/new`, { command: 'while :; do sleep 1000 & done', timeout_secs: 2, wait: true });
      expect(ex).toMatchObject({ status: 'timeout', timed_out: true });
      // Either the whole tree died and the session runs on with room for new commands...
      const ps = await r
        .call(`/containers/sessions/${sid}/exec/new`, { command: 'ps -o args | grep -cx "sleep 1000"', wait: true })
        .catch(() => undefined);
      if (ps?.['stdout'] === '0\n') {
        await writeAll(r.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
      } else {
        // ...or it could not be killed from where it was searched: the container went, and the session says why.
        const rec = await r.engine.waitFor(sid);
        expect(rec).toMatchObject({ status: 'failed', error: { code: 'ETIMEDOUT' } });
        expect(rec?.error?.message).toMatch(/could not be killed .*the container was killed/);
      }
      for (let i = 0; i < 50 && (await provider.list({ 'agent9.session': sid })).length > 0; i++) await new Promise((res) => setTimeout(res, 100));
      expect(await provider.list({ 'agent9.session': sid })).toEqual([]);
    } finally {
      if (list) await r.engine.close();
    }
  });

  it('ends a session when its lifetime runs out', async () => {
    const answer = await rig.call('/containers/new', { image: BUSYBOX, commands: ['sleep 60'], limits: { max_time_secs: 1 } });
    const sid = answer['session_id'] as string;
    const rec = await rig.engine.waitFor(sid);
    expect(rec?.status).toBe('expired');
    const result = await rig.json(`/containers/sessions/${sid}/result`);
    expect((result['command_results'] as Record<string, unknown>[])[0]).toMatchObject({ status: 'killed', killed: true });
    expect(result['cost']).toBeLessThanOrEqual(result['reserved'] as number);
  });

  it("cannot reach the host's files", async () => {
    const dir = tempDir();
    const secret = join(dir, 'secret.txt');
    writeFileSync(secret, 'host secret');
    const answer = await rig.call('/containers/new', { image: BUSYBOX, commands: [`cat ${secret}; cat /etc/hostname; touch /etc/x`] });
    const result = await finished(answer['session_id'] as string);
    expect(result['stdout']).not.toContain('host secret');
    expect(result['stderr']).toContain('No such file');
    expect(result['exit_code']).not.toBe(0);
  });

  it('refuses paths that escape the workdir through files/ with EINVAL', async () => {
    const sid = await interactive();
    await execWait(sid, 'ln -s /etc etc; ln -s / root; ln -s ../../etc/passwd pw; echo ok > inside; ln -s inside good');
    const files = `/containers/sessions/${sid}/files`;
    await expectCode(readAll(rig.ns, `${files}/../../etc/passwd`, admin), 'EINVAL');
    await expectCode(readAll(rig.ns, `${files}/etc/passwd`, admin), 'EINVAL', 'outside the workdir');
    await expectCode(readAll(rig.ns, `${files}/pw`, admin), 'EINVAL', 'outside the workdir');
    await expectCode(rig.ns.readdir(`${files}/root`, admin), 'EINVAL');
    await expectCode(writeAll(rig.ns, `${files}/root/tmp/x`, 'x', admin), 'EINVAL');
    await expectCode(rig.ns.mkdir(`${files}/etc/evil`, 0o755, admin), 'EINVAL');
    expect(text(await readAll(rig.ns, `${files}/good`, admin))).toBe('ok\n');
    // Writing through a link inside the workdir writes its target and keeps the link.
    await writeAll(rig.ns, `${files}/good`, 'new\n', admin);
    expect((await execWait(sid, 'cat inside; readlink good'))['stdout']).toBe('new\ninside\n');
    // The link itself may go: removing it does not follow it.
    await rig.ns.remove(`${files}/etc`, admin);
    expect((await execWait(sid, 'ls /etc/passwd'))['exit_code']).toBe(0);
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('refuses files over the workdir size or the policy cap with EFBIG', async () => {
    const sid = await interactive({ limits: { max_disk_mb: 1 } });
    const files = `/containers/sessions/${sid}/files`;
    await writeAll(rig.ns, `${files}/big`, 'old content', admin);
    await expectCode(writeAll(rig.ns, `${files}/big`, new Uint8Array(2 * 1024 * 1024), admin), 'EFBIG', 'no space');
    // A failed write leaves the file as it was.
    expect(text(await readAll(rig.ns, `${files}/big`, admin))).toBe('old content');
    expect((await rig.ns.readdir(files, admin)).map((e) => e.name)).toEqual(['big']);
    await writeAll(rig.ns, '/containers/policy', JSON.stringify({ max_file_bytes: 1000 }), admin);
    try {
      await expectCode(writeAll(rig.ns, `${files}/b`, new Uint8Array(1001), admin), 'EFBIG', 'max_file_bytes');
      expect((await execWait(sid, 'head -c 5000 /dev/zero > made'))['exit_code']).toBe(0);
      await expectCode(readAll(rig.ns, `${files}/made`, admin), 'EFBIG', '5000 bytes');
    } finally {
      await writeAll(rig.ns, '/containers/policy', '{}', admin);
    }
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('keeps the root read-only and the workdir writable, with the policy limits applied', async () => {
    const answer = await rig.call('/containers/new', {
      image: PYTHON,
      commands: ['python3 -c "import os; print(os.getcwd())"', 'touch /usr/x'],
      limits: { max_memory_mb: 64, max_pids: 32 },
    });
    const result = await finished(answer['session_id'] as string);
    expect(result['stdout']).toBe('/workspace\n');
    expect(result['stderr']).toMatch(/Read-only file system/);
    expect(result['exit_code']).toBe(1);
    await expectCode(rig.call('/containers/new', { image: BUSYBOX, commands: ['true'], limits: { max_memory_mb: 999999 } }), 'EINVAL', 'max_memory_mb');
  });
});

describe('/containers: requests, policy and control', () => {
  it('rejects bad requests with EINVAL naming the field', async () => {
    await expectCode(rig.call('/containers/new', '{"image": '), 'EINVAL', 'malformed JSON');
    await expectCode(rig.call('/containers/new', { image: BUSYBOX, commandz: ['x'] }), 'EINVAL', "'commandz'");
    await expectCode(rig.call('/containers/new', { image: BUSYBOX, kind: 'ephemeral' }), 'EINVAL', 'commands');
    await expectCode(rig.call('/containers/new', { image: 'no/such-image', commands: ['true'] }), 'EINVAL', 'never pulls');
    await expectCode(rig.call('/containers/new', { image: BUSYBOX, commands: ['true'], workdir: '/proc' }), 'EINVAL', 'workdir');
  });

  it('applies the admin-only policy: image allow and block lists', async () => {
    await expectCode(writeAll(rig.ns, '/containers/policy', '{"blocked_images":["*"]}', user), 'EACCES');
    await writeAll(rig.ns, '/containers/policy', JSON.stringify({ blocked_images: ['agent9/python*'] }), admin);
    await expectCode(rig.call('/containers/new', { image: PYTHON, commands: ['true'] }), 'EACCES', 'blocked');
    await writeAll(rig.ns, '/containers/policy', JSON.stringify({ allowed_images: ['agent9/busybox:*'] }), admin);
    await expectCode(rig.call('/containers/new', { image: PYTHON, commands: ['true'] }), 'EACCES', 'not allowed');
    expect((await rig.json('/containers/policy'))['allowed_images']).toEqual(['agent9/busybox:*']);
    await expectCode(writeAll(rig.ns, '/containers/policy', '{"max_memory_mb": -1}', admin), 'EINVAL', 'max_memory_mb');
    await writeAll(rig.ns, '/containers/policy', '{}', admin);
    expect((await rig.json('/containers/policy'))['allowed_images']).toEqual([]);
  });

  it('passes stdin, keeps it open on request, and kills a running exec through its ctl', async () => {
    const sid = await interactive({ env: { GREETING: 'hi' } });
    expect(await execWait(sid, { command: 'read a; echo "$GREETING $a"', stdin: 'there\n' })).toMatchObject({ stdout: 'hi there\n' });

    const open = await rig.call(`/containers/sessions/${sid}/exec/new`, { command: 'cat; echo done', stdin: true });
    const eid = open['exec_id'] as string;
    const base = `/containers/sessions/${sid}/exec/${eid}`;
    const stdoutP = rig.read(`${base}/stdout`);
    await writeAll(rig.ns, `${base}/stdin`, 'one\n', admin);
    await writeAll(rig.ns, `${base}/stdin`, 'two\n', admin);
    await writeAll(rig.ns, `${base}/ctl`, 'eof', admin);
    expect(await stdoutP).toBe('one\ntwo\ndone\n');
    await expectCode(writeAll(rig.ns, `${base}/stdin`, 'late', admin), 'EINVAL', 'finished');

    const long = await rig.call(`/containers/sessions/${sid}/exec/new`, 'sleep 100');
    const lbase = `/containers/sessions/${sid}/exec/${long['exec_id']}`;
    await expectCode(rig.json(`${lbase}/result`), 'EAGAIN', 'not ready');
    await writeAll(rig.ns, `${lbase}/ctl`, 'kill', admin);
    await rig.read(`${lbase}/output`);
    expect(await rig.json(`${lbase}/result`)).toMatchObject({ status: 'killed', killed: true, exit_code: 137 });
    await expectCode(writeAll(rig.ns, `${lbase}/ctl`, 'explode', admin), 'EINVAL', 'kill');

    // Every exec stays listed with its status after it ended.
    const listed = (await rig.ns.readdir(`/containers/sessions/${sid}/exec`, admin)).map((e) => e.name).sort();
    expect(listed).toEqual(['1', '2', '3', 'new']);
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'stop', admin);
    await expectCode(rig.call(`/containers/sessions/${sid}/exec/new`, 'true'), 'EINVAL', 'stopped');
  });

  it("serves an exec's stdout and stderr as raw streams, to readers and to watchers", async () => {
    const sid = await interactive();
    const answer = await rig.call(`/containers/sessions/${sid}/exec/new`, { command: 'printf "a"; echo b >&2; printf "c\\n"' });
    const base = `/containers/sessions/${sid}/exec/${answer['exec_id']}`;
    expect(await rig.read(`${base}/stdout`)).toBe('ac\n');
    expect(await rig.read(`${base}/stderr`)).toBe('b\n');
    const watched = await collect(rig.ns.watch(`${base}/stdout`, 0, admin), 10, 5000);
    expect(watched.filter((e) => e.type === 'data').map((e) => (e.data as { data: string }).data).join('')).toBe('ac\n');
    expect(watched.every((e) => e.path === `${base}/stdout`)).toBe(true);
    expect(watched.at(-1)?.type).toBe('end');
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('runs concurrent execs in one session, each with its own output', async () => {
    const sid = await interactive();
    const results = await Promise.all([1, 2, 3, 4].map((i) => execWait(sid, `sleep 0.$((5-${i})); echo out${i}; echo err${i} >&2`)));
    expect(results.map((r) => [r['stdout'], r['stderr']])).toEqual([1, 2, 3, 4].map((i) => [`out${i}\n`, `err${i}\n`]));
    expect(new Set(results.map((r) => r['exec_id'])).size).toBe(4);
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('lists names with spaces, newlines and non-ASCII exactly (a newline name cannot be opened by path), and keeps dangling links', async () => {
    const sid = await interactive();
    await execWait(sid, 'touch "a b" "ü.txt" "$(printf "new\\nline")" .hidden; mkdir d; ln -s nowhere dangling');
    const entries = await rig.ns.readdir(`/containers/sessions/${sid}/files`, admin);
    expect(entries.map((e) => e.name)).toEqual(['.hidden', 'a b', 'd', 'dangling', 'new\nline', 'ü.txt']);
    expect(entries.find((e) => e.name === 'd')?.stat.type).toBe('dir');
    // A name with a control character is listed as it is, but no path may carry one (CONTRACT section 1).
    await expect(writeAll(rig.ns, `/containers/sessions/${sid}/files/new\nline`, 'x', admin)).rejects.toMatchObject({ code: 'EINVAL' });
    expect((await execWait(sid, 'cat "$(printf "new\\nline")"'))['stdout']).toBe('');
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('keeps every line of a chatty command, in order, in few events', async () => {
    const sid = await interactive();
    const from = rig.storage.eventStore.lastId();
    const r = await execWait(sid, 'i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done');
    const expected = Array.from({ length: 3000 }, (_, i) => `line ${i}\n`).join('');
    expect(r['stdout']).toBe(expected);
    const streamed = lines(await rig.read(`/containers/sessions/${sid}/exec/${r['exec_id']}/output`));
    expect(streamed.map((c) => c['data']).join('')).toBe(expected);
    expect(streamed.length).toBeLessThan(3000);
    expect(rig.storage.eventStore.after(from, 100_000).length).toBeLessThan(3000);
    await writeAll(rig.ns, `/containers/sessions/${sid}/ctl`, 'kill', admin);
  });

  it('caps each stream of a command at max_output_bytes and says so', async () => {
    await writeAll(rig.ns, '/containers/policy', JSON.stringify({ max_output_bytes: 1000 }), admin);
    try {
      const answer = await rig.call('/containers/new', { image: BUSYBOX, commands: ['head -c 5000 /dev/zero | tr "\\0" x; echo err >&2'] });
      const sid = answer['session_id'] as string;
      const out = lines(await rig.read(`/containers/sessions/${sid}/output`));
      expect(out.some((c) => c['truncated'] === true && c['stream'] === 'stdout')).toBe(true);
      const cmd = ((await finished(sid))['command_results'] as Record<string, unknown>[])[0]!;
      expect(cmd).toMatchObject({ stdout_bytes: 5000, stdout_truncated: true, stderr: 'err\n', stderr_truncated: false });
      expect((cmd['stdout'] as string).length).toBe(1000);
    } finally {
      await writeAll(rig.ns, '/containers/policy', '{}', admin);
    }
  });

  it('lists sessions, providers and the engine health', async () => {
    expect((await rig.ns.readdir('/containers', admin)).map((e) => e.name).sort()).toEqual(['new', 'policy', 'providers', 'sessions', 'usage']);
    expect((await rig.ns.readdir('/containers/sessions', admin)).length).toBeGreaterThan(3);
    expect(await rig.json('/containers/providers/docker/health')).toMatchObject({ status: 'available', reason: null });
    expect(JSON.parse(await rig.read('/containers/providers/docker/images'))).toContain(BUSYBOX);
  });
});
