/**
 * A server killed with SIGKILL in the middle of a job: after a restart the job is failed with a reason,
 * its reservation is released, the chunks it streamed are still there, and finished results are intact.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { expectCode, tempDir, user } from '../helpers.js';
import { readAll } from '../../src/fs/ops.js';
import { files, openServer } from '../runtime/support.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const child = fileURLToPath(new URL('./fixtures/crash-server.ts', import.meta.url));

describe('compute crash safety', () => {
  it('SIGKILL mid-job: failed "server restarted", reservation released, finished result kept', async () => {
    const home = tempDir();
    const proc = spawn(process.execPath, ['--import', './test/support/ts-loader.mjs', child, home], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on('exit', (_code, signal) => resolve(signal)));
    let ids: { done: string; slow: string } | undefined;
    for await (const line of createInterface({ input: proc.stdout })) {
      ids = JSON.parse(line) as { done: string; slow: string };
      proc.kill('SIGKILL');
      break;
    }
    expect(await exited).toBe('SIGKILL');
    expect(stderr).toBe('');
    expect(ids).toBeDefined();

    const a9 = await openServer({ home, scheduler: false });
    const f = files(a9.namespace);
    const base = '/agents/bob/compute/jobs';
    expect(await f.json(`${base}/${ids!.slow}/status`)).toMatchObject({
      status: 'failed',
      error: { code: 'EIO', message: 'server restarted while the job was streaming' },
    });
    await expectCode(readAll(a9.namespace, `${base}/${ids!.slow}/result`, user), 'EIO', 'server restarted');
    const chunks = (await f.read(`${base}/${ids!.slow}/stream`)).trim().split('\n').map((l) => JSON.parse(l) as { delta: { text: string }; finish_reason: string | null });
    expect(chunks[0]).toMatchObject({ delta: { text: 'a ' }, finish_reason: null });
    expect(chunks.at(-1)).toMatchObject({ finish_reason: 'error' });
    expect(await f.json(`${base}/${ids!.done}/result`)).toMatchObject({ output: { text: 'kept' }, cost: 6 });
    expect((await f.json<{ day: unknown }>('/agents/bob/compute/usage')).day).toEqual({ limit: 1000, reserved: 0, spent: 6, remaining: 994 });
    expect(a9.storage.db.pragma('integrity_check', { simple: true })).toBe('ok');
  });
});
