/**
 * Crash safety: a child process writing 1,000 envelopes is killed with SIGKILL mid-way. After reopening,
 * every envelope whose write returned is there exactly once, the counters agree, and the database passes
 * SQLite's integrity check.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { createAgent, closeServer, files, openServer } from './support.js';
import { tempDir } from '../helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const writer = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url));

describe('crash safety', () => {
  it('SIGKILL while enqueueing: every acknowledged envelope is there exactly once; the database is intact', async () => {
    const home = tempDir();
    const setup = await openServer({ home, scheduler: false });
    await createAgent(setup, { name: 'sink', program: 'echo', inbox: { max_depth: 5000 } });
    await closeServer(setup);

    const child = spawn(process.execPath, ['--import', './test/support/ts-loader.mjs', writer, home, '1000'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const acked: string[] = [];
    let done = false;
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    for await (const line of createInterface({ input: child.stdout })) {
      if (line === 'done') done = true;
      else if (line.startsWith('c-')) acked.push(line);
      if (acked.length === 300) child.kill('SIGKILL');
    }
    const signal = await exited;
    expect(stderr).toBe('');
    expect(done).toBe(false);
    expect(signal).toBe('SIGKILL');
    expect(acked.length).toBeGreaterThanOrEqual(300);
    expect(acked.length).toBeLessThan(1000);

    const a9 = await openServer({ home, scheduler: false });
    expect(a9.storage.db.pragma('integrity_check', { simple: true })).toBe('ok');
    const queued = (await files(a9.namespace).json<{ id: string }[]>('/agents/sink/inbox')).map((e) => e.id);
    expect(new Set(queued).size).toBe(queued.length);
    for (const id of acked) expect(queued).toContain(id);
    // At most the one write in flight at the kill may have committed without its acknowledgement.
    expect(queued.length - acked.length).toBeLessThanOrEqual(1);
    expect(queued.slice(0, acked.length)).toEqual(acked);
    const status = await files(a9.namespace).json<{ queue_depth: number; counters: { enqueued: number } }>('/agents/sink/status');
    expect(status.queue_depth).toBe(queued.length);
    expect(status.counters.enqueued).toBe(queued.length);
  });
});
