/** The exec program: real processes, stdin/stdout protocol, environment, deadline, process groups. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAgent, files, openServer, trace, waitFor } from './support.js';
import { tempDir } from '../helpers.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('exec program', () => {
  it('gets the tick as JSON on stdin, AGENT_ID, its env and the hook env; stdout JSON is the result', async () => {
    const dir = tempDir();
    const a9 = await openServer({ scheduler: false, execEnv: async (id) => ({ AGENT9_URL: 'http://127.0.0.1:1', AGENT9_TOKEN: `tok-${id}` }) });
    const script = `cat > ${dir}/stdin.json; env > ${dir}/env.txt; pwd > ${dir}/cwd.txt
printf '{"state": {"seen": 1}, "outbox": [{"to": "x", "payload": {"ok": true}}, "plain"], "alarm_in_ms": 600000, "kv": {"set": {"k": [1]}}}'`;
    await createAgent(a9, { name: 'bob', program: { type: 'exec', command: script }, env: { MY_SETTING: 'on' } });
    const f = files(a9.namespace);
    await f.write('/agents/bob/inbox', JSON.stringify({ id: 'm1', payload: { q: 1 } }));
    await f.write('/agents/bob/ctl', 'tick go');
    const stdin = JSON.parse(readFileSync(join(dir, 'stdin.json'), 'utf8')) as { agent_id: string; tick: number; cause: string; triggers: { type: string; envelope_id?: string }[]; state: unknown };
    expect(stdin).toMatchObject({ agent_id: 'bob', tick: 1, cause: 'ctl', state: null });
    expect(stdin.triggers.map((t) => t.type)).toEqual(['init', 'ctl', 'message']);
    expect(stdin.triggers[2]!.envelope_id).toBe('m1');
    const env = readFileSync(join(dir, 'env.txt'), 'utf8');
    for (const line of ['AGENT_ID=bob', 'MY_SETTING=on', 'AGENT9_URL=http://127.0.0.1:1', 'AGENT9_TOKEN=tok-bob', 'AGENT9_TICK=1']) expect(env).toContain(line);
    expect(readFileSync(join(dir, 'cwd.txt'), 'utf8').trim()).toBe(join(a9.home, 'work', 'bob'));
    expect(JSON.parse(a9.runtime.store.getState('bob')!.data)).toEqual({ seen: 1 });
    expect(a9.runtime.store.kvGet('bob', 'k')).toBe('[1]');
    const outbox = await Promise.all((await f.list('/agents/bob/outbox')).map((n) => f.json<{ to?: string; payload: unknown }>(`/agents/bob/outbox/${n}`)));
    expect(outbox.map((o) => o.payload)).toEqual([{ ok: true }, { text: 'plain' }]);
    expect(outbox[0]!.to).toBe('x');
    const s = await f.json<{ next_alarm: number }>('/agents/bob/status');
    expect(s.next_alarm).toBeGreaterThan(Date.now() + 500_000);
    // The next tick gets the saved state.
    await f.write('/agents/bob/ctl', 'tick');
    expect((JSON.parse(readFileSync(join(dir, 'stdin.json'), 'utf8')) as { state: unknown }).state).toEqual({ seen: 1 });
  });

  it('plain stdout becomes one outbox message; stderr of a good run is traced', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: { type: 'exec', command: ['/bin/sh', '-c', 'echo "got it"; echo "note" >&2'] } });
    const f = files(a9.namespace);
    await f.write('/agents/bob/ctl', 'tick');
    const [name] = await f.list('/agents/bob/outbox');
    expect((await f.json<{ payload: unknown }>(`/agents/bob/outbox/${name}`)).payload).toEqual({ text: 'got it' });
    expect((await trace(a9, 'bob')).find((e) => e['type'] === 'stderr')).toMatchObject({ text: 'note', tick: 1 });
  });

  it('a non-zero exit fails the tick with stderr in the trace; the envelope stays queued', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: { type: 'exec', command: 'cat >/dev/null; echo "no such thing" >&2; exit 7' } });
    const f = files(a9.namespace);
    await f.write('/agents/bob/inbox', 'x');
    const report = await a9.runtime.tick('bob', { type: 'message' });
    expect(report.ok).toBe(false);
    expect(report.error).toMatchObject({ code: 'EIO' });
    const err = (await trace(a9, 'bob')).find((e) => e['type'] === 'error')!;
    expect(err['error']).toContain('exit code 7');
    expect(err['error']).toContain('no such thing');
    expect((await f.json<unknown[]>('/agents/bob/inbox')).length).toBe(1);
    // tick_start and trigger were committed before the process ran (exec is a live program).
    const types = (await trace(a9, 'bob')).map((e) => e['type']);
    expect(types.indexOf('tick_start')).toBeLessThan(types.indexOf('error'));
  });

  it('the deadline kills the process and its children (the whole group)', async () => {
    const dir = tempDir();
    const a9 = await openServer({ scheduler: false });
    const script = `sleep 30 & echo $! > ${dir}/child.pid; echo $$ > ${dir}/self.pid; sleep 30`;
    await createAgent(a9, { name: 'bob', program: { type: 'exec', command: script, timeout_ms: 400 } });
    const started = Date.now();
    const report = await a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(report.ok).toBe(false);
    expect(report.error?.code).toBe('ETIMEDOUT');
    expect(report.error?.message).toContain('deadline of 400 ms');
    const child = Number(readFileSync(join(dir, 'child.pid'), 'utf8'));
    const self = Number(readFileSync(join(dir, 'self.pid'), 'utf8'));
    await waitFor(() => !alive(child) && !alive(self), 3000, 'the process group to die');
  });

  it('what a finished command left running in its group is killed', async () => {
    const dir = tempDir();
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: { type: 'exec', command: `(sleep 30 >/dev/null 2>&1 & echo $! > ${dir}/bg.pid); echo ok` } });
    const report = await a9.runtime.tick('bob', { type: 'manual', invoked_by: 'test' });
    expect(report.ok).toBe(true);
    await waitFor(() => existsSync(join(dir, 'bg.pid')), 2000);
    const bg = Number(readFileSync(join(dir, 'bg.pid'), 'utf8'));
    await waitFor(() => !alive(bg), 3000, 'the background child to die');
  });

  it('bad results and commands that cannot start fail the tick clearly', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'a', program: { type: 'exec', command: `echo '{"state": 1, "bogus": true}'` } });
    await createAgent(a9, { name: 'b', program: { type: 'exec', command: ['/nonexistent/program'] } });
    await createAgent(a9, { name: 'c', program: { type: 'exec', command: `echo '{"broken'` } });
    const ra = await a9.runtime.tick('a', { type: 'manual', invoked_by: 't' });
    expect(ra.error?.code).toBe('EINVAL');
    expect(ra.error?.message).toContain("'bogus'");
    const rb = await a9.runtime.tick('b', { type: 'manual', invoked_by: 't' });
    expect(rb.error?.code).toBe('EIO');
    expect(rb.error?.message).toContain('cannot start /nonexistent/program');
    const rc = await a9.runtime.tick('c', { type: 'manual', invoked_by: 't' });
    expect(rc.error?.message).toContain('does not parse');
  });
});
