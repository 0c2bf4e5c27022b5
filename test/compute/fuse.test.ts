/**
 * /compute on a FUSE mount, with shell commands in child processes: the call-file idiom, a stream that
 * blocks until the job ends, EAGAIN before the result, EDQUOT from an over-budget write, cancel, and an
 * agent's own mount (not admin: the policy and the budget are read-only there).
 */
import { rmdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent9 } from '../../src/server/agent9.js';
import { mountServer, type FuseMount } from '../../src/fuse/index.js';
import { cleanup, tempDir } from '../helpers.js';
import { codeOfStderr, mountPoint, ok, q, sh, until } from '../fuse/helpers.js';

let a9: Agent9;
let global: FuseMount;
let own: FuseMount;
let C: string;

beforeAll(async () => {
  a9 = await Agent9.open({ home: tempDir(), scheduler: false });
  a9.runtime.agents.create({ name: 'bob', program: 'echo' }, '/agents/new');
  global = await mountServer(a9, await mountPoint());
  own = await mountServer(a9, await mountPoint(), { agent: 'bob' });
  C = `${global.dir}/agents/bob/compute`;
});

afterAll(async () => {
  for (const m of [own, global]) {
    if (!m) continue;
    await m.unmount();
    await rmdir(m.dir).catch(() => undefined);
  }
  await a9?.close();
  cleanup();
});

const submit = async (req: object): Promise<string> =>
  (JSON.parse(await ok(`exec 3<> ${q(C)}/new; cat >&3; cat <&3`, { input: JSON.stringify(req) })) as { job_id: string }).job_id;

const statusOf = async (id: string) => JSON.parse(await ok(`cat ${q(C)}/jobs/${id}/status`)) as { status: string };

describe('/compute on the mount', () => {
  it('exec 3<> new; echo req >&3; cat <&3 answers the job id; cat result and cat stream read it', async () => {
    const answer = JSON.parse(await ok(`exec 3<> ${q(C)}/new; echo '{"model":"echo","prompt":"hello fuse"}' >&3; cat <&3`)) as {
      job_id: string;
      paths: { result: string };
    };
    // Named where the call was made: this mount shows the global view, where bob is at /agents/bob.
    expect(answer.paths.result).toBe(`/agents/bob/compute/jobs/${answer.job_id}/result`);
    const lines = (await ok(`cat ${q(C)}/jobs/${answer.job_id}/stream`)).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { delta: { text: string } }).delta.text).join('')).toBe('hello fuse');
    expect(JSON.parse(await ok(`cat ${q(C)}/jobs/${answer.job_id}/result`))).toMatchObject({ output: { text: 'hello fuse' }, cost: 10 });
    expect((await ok(`ls ${q(C)}/jobs`)).split('\n')).toContain(answer.job_id);
    expect((await ok(`ls ${q(C)}/jobs/${answer.job_id}`)).split('\n').filter(Boolean).sort()).toEqual(['ctl', 'result', 'status', 'stream']);
  });

  it('cat stream blocks until the job has streamed everything, then ends; result is EAGAIN before that', async () => {
    const id = await submit({ model: 'echo', prompt: 'one two three', options: { chunk_delay_ms: 300 } });
    const early = await sh(`cat ${q(C)}/jobs/${id}/result`);
    expect(early.code).not.toBe(0);
    expect(codeOfStderr(early.stderr)).toBe('EAGAIN');
    const streamed = await ok(`cat ${q(C)}/jobs/${id}/stream`, { timeoutMs: 10_000 });
    const chunks = streamed.trim().split('\n').map((l) => JSON.parse(l) as { delta: { text: string }; finish_reason: string | null });
    expect(chunks.map((c) => c.delta.text).join('')).toBe('one two three');
    expect(chunks.at(-1)!.finish_reason).toBe('stop');
    expect((await statusOf(id)).status).toBe('complete');
  });

  it('over budget, the write to new fails with EDQUOT (Disk quota exceeded) and no job is made', async () => {
    await ok(`echo '{"tick": 2, "day": 2}' > ${q(global.dir)}/agents/bob/budget`);
    try {
      const before = (await ok(`ls ${q(C)}/jobs`)).split('\n').filter(Boolean).length;
      const refused = await sh(`echo '{"model":"echo","prompt":"x","max_cost":6}' > ${q(C)}/new`);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('Disk quota exceeded');
      expect(codeOfStderr(refused.stderr)).toBe('EDQUOT');
      expect((await ok(`ls ${q(C)}/jobs`)).split('\n').filter(Boolean)).toHaveLength(before);
    } finally {
      await ok(`echo '{"tick": null, "day": null}' > ${q(global.dir)}/agents/bob/budget`);
    }
  });

  it('echo cancel > ctl stops a job; bad requests fail the write with EINVAL', async () => {
    const id = await submit({ model: 'echo', prompt: 'a b c', options: { chunk_delay_ms: 3000 } });
    await ok(`echo cancel > ${q(C)}/jobs/${id}/ctl`);
    expect(await statusOf(id)).toMatchObject({ status: 'cancelled' });
    const missing = await sh(`echo '{"model":"echo"}' > ${q(C)}/new`);
    expect(missing.code).not.toBe(0);
    expect(codeOfStderr(missing.stderr)).toBe('EINVAL');
    // Malformed JSON is never a whole request: it is sent at close, which coreutils reports (bash's echo would not).
    const malformed = await sh(`printf '{"model":' | cat > ${q(C)}/new`);
    expect(malformed.code).not.toBe(0);
    expect(codeOfStderr(malformed.stderr)).toBe('EINVAL');
    const usage = JSON.parse(await ok(`cat ${q(C)}/usage`)) as { unit: string; jobs: { cancelled: number } };
    expect(usage).toMatchObject({ unit: 'micro-USD', jobs: { cancelled: 1 } });
  });

  it("an agent's own mount: its compute at /compute; the policy and the budget are read-only for it", async () => {
    const id = JSON.parse(await ok(`exec 3<> ${q(own.dir)}/compute/new; echo '{"model":"echo","prompt":"mine"}' >&3; cat <&3`)) as { job_id: string };
    await until(async () => (await statusOf(id.job_id)).status === 'complete', 5000, 'the job');
    expect(JSON.parse(await ok(`cat ${q(own.dir)}/compute/policy`))).toMatchObject({ prefer: 'balanced' });
    const denied = await sh(`echo '{"blocked_models":[]}' > ${q(own.dir)}/compute/policy`);
    expect(codeOfStderr(denied.stderr)).toBe('EACCES');
    const budget = await sh(`echo '{"day": 100000000}' > ${q(own.dir)}/budget`);
    expect(codeOfStderr(budget.stderr)).toBe('EACCES');
    expect(await ok(`stat -c %A ${q(own.dir)}/compute/policy`)).toBe('-r--r--r--\n');
  });
});
