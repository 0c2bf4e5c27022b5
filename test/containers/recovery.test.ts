/**
 * A server killed with SIGKILL in the middle of its sessions restarts: nothing vanishes from status, the
 * interactive session is adopted, the interrupted one is failed and its container removed, and a container
 * no record owns is cleaned up.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAll } from '../../src/fs/ops.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { admin, cleanup, openStorage, tempDir } from '../helpers.js';
import { removeLabelled, requireEngine } from './engine.js';
import { AGENT, lines, makeRig, type Rig } from './setup.js';

let provider: DockerProvider;
let rig: Rig | undefined;
let instance: string | undefined;

beforeAll(async () => {
  provider = await requireEngine();
});

afterAll(async () => {
  await rig?.engine.close();
  if (provider && instance) await removeLabelled(provider, { 'agent9.instance': instance });
  cleanup();
});

interface Started {
  interactive: string;
  exec: string;
  ephemeral: string;
  ghost: string;
  instance: string;
}

/** Runs the crash server in a child process until it reports, then kills it with SIGKILL. */
async function runAndKill(home: string): Promise<Started> {
  const child = spawn(process.execPath, ['--import', './test/support/ts-loader.mjs', 'test/containers/fixtures/crash-server.ts', home], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ? -1 : code)));
  const line = await Promise.race([
    new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve)),
    exited.then((code) => {
      throw new Error(`crash server exited (${code}) before reporting: ${stderr}`);
    }),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`crash server did not report in 30 s: ${stderr}`)), 30_000)),
  ]);
  child.kill('SIGKILL');
  await exited;
  return JSON.parse(line) as Started;
}

describe('/containers after a crash', () => {
  it('adopts, fails and cleans what a killed server left, and loses no record', async () => {
    const home = tempDir();
    const started = await runAndKill(home);
    instance = started.instance;
    // The killed server's containers are still there.
    const before = (await provider.list({ 'agent9.instance': instance })).map((c) => c.containerId);
    expect(before).toContain(started.ghost);
    expect(before.length).toBe(3);

    rig = makeRig({ storage: openStorage(home) });
    const report = await rig.engine.start();
    expect(report).toMatchObject({ adopted: [started.interactive], failed: [started.ephemeral] });
    expect(report.orphansRemoved).toBeGreaterThanOrEqual(1);
    expect(await provider.inspect(started.ghost)).toBeUndefined();

    // The interrupted session: failed, with its output up to the crash, its exec failed, its container gone.
    const eph = await rig.json(`/containers/sessions/${started.ephemeral}/status`);
    expect(eph).toMatchObject({ status: 'failed' });
    expect((eph['error'] as { message: string }).message).toMatch(/server restarted/);
    expect(await rig.json(`/containers/sessions/${started.ephemeral}/exec/1/status`)).toMatchObject({ status: 'failed' });
    expect(lines(await rig.read(`/containers/sessions/${started.ephemeral}/output`)).map((c) => c['data'])).toEqual(['started\n']);
    expect(await rig.json(`/containers/sessions/${started.ephemeral}/result`)).toMatchObject({ status: 'failed' });
    for (let i = 0; i < 50 && (await provider.list({ 'agent9.session': started.ephemeral })).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await provider.list({ 'agent9.session': started.ephemeral })).toEqual([]);

    // The interactive session runs on; its orphaned exec was killed and says why.
    const base = `/containers/sessions/${started.interactive}`;
    expect(await rig.json(`${base}/status`)).toMatchObject({ status: 'running' });
    const orphanExec = await rig.json(`${base}/exec/${started.exec}/result`);
    expect(orphanExec).toMatchObject({ status: 'failed' });
    expect(orphanExec['error']).toMatch(/server restarted/);
    const ps = await rig.call(`${base}/exec/new`, { command: 'ps -o args', wait: true });
    expect(ps['stdout']).not.toContain('sleep 1000');

    // Only the adopted session still holds a reservation.
    const open = rig.ledger.openReservations(AGENT);
    expect(open.map((r) => r.reason)).toEqual([`containers session ${started.interactive}`]);
    await writeAll(rig.ns, `${base}/ctl`, 'stop', admin);
    expect(rig.ledger.openReservations(AGENT)).toEqual([]);
    expect((await rig.ns.readdir('/containers/sessions', admin)).map((e) => e.name).sort()).toEqual(
      [started.interactive, started.ephemeral].sort(),
    );
  });
});
