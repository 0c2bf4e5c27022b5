/**
 * /containers against the Docker engine it drives, in the same run:
 * - session create → first command done (`new` with one command, until that command's output ends)
 *   against `docker run` of the same image, command and isolation (no network, read-only root, tmpfs
 *   workdir, memory/CPU/pids limits, init), and against the same run through the engine API (dockerode);
 * - exec latency (exec/new with wait, until its result) against `docker exec` and an API exec.
 * Runs alternate between ours and the baseline so drift hits both.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { Namespace } from '../../src/fs/namespace.js';
import { callFile, writeAll } from '../../src/fs/ops.js';
import type { Cx } from '../../src/fs/types.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { BudgetLedger } from '../../src/runtime/budget-ledger.js';
import { Storage } from '../../src/runtime/storage/index.js';
import { ContainerEngine, createContainersService, DockerProvider } from '../../src/services/containers/index.js';
import { type BenchCase, type Figure } from '../harness.js';
import { serverMigrations } from '../../src/server/capabilities.js';

const run = promisify(execFile);
const cx: Cx = { principal: { id: 'bench', admin: true } };
const IMAGE = 'agent9/busybox:latest';
const AGENT = 'bench';

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * The isolation a session gets with the default policy, as docker run flags. No `--rm`: the CLI would
 * then also wait for the removal, which our figure (timed to the command's end) does not include; the
 * container is removed after the timing instead.
 */
const DOCKER_RUN_FLAGS = [
  '--network', 'none',
  '--memory', '256m', '--memory-swap', '256m',
  '--cpus', '1', '--pids-limit', '256',
  '--read-only',
  '--tmpfs', '/workspace:rw,exec,nosuid,nodev,size=256m,mode=1777',
  '--tmpfs', '/tmp:rw,exec,nosuid,nodev,size=256m,mode=1777',
  '--init', '--security-opt', 'no-new-privileges',
  '-w', '/workspace',
];

export const containersCase: BenchCase = {
  name: 'containers',
  async run({ tmp, quick }) {
    const provider = new DockerProvider();
    const health = await provider.health({ fresh: true });
    if (health.status !== 'available') throw new Error(`no Docker engine: ${health.reason}`);
    const docker = new Docker({ socketPath: provider.socketPath });
    const storage = Storage.open(join(tmp, 'containers'), { migrations: serverMigrations() });
    const engine = new ContainerEngine({ storage, ledger: new BudgetLedger(storage), providers: [provider] });
    const ns = new Namespace({ scope: AGENT, events: storage.events });
    mountWithAccess(ns, '/containers', createContainersService({ engine, agentId: AGENT }), ReadWrite);
    const call = async (path: string, body: unknown) =>
      JSON.parse(new TextDecoder().decode(await callFile(ns, path, JSON.stringify(body), cx))) as Record<string, unknown>;
    const runs = quick ? 5 : 15;

    const oursFirstCommand = async (): Promise<number> => {
      const from = storage.eventStore.lastId();
      const t0 = process.hrtime.bigint();
      const sid = (await call('/containers/new', { image: IMAGE, commands: ['echo hi'] }))['session_id'] as string;
      for await (const ev of ns.watch(`/containers/sessions/${sid}/exec/1/output`, from, cx)) if (ev.type === 'end') break;
      const t = ms(t0);
      const rec = await engine.waitFor(sid);
      const out = engine.sessions.getExec(sid, '1');
      if (rec?.status !== 'complete' || out?.stdout !== 'hi\n') throw new Error(`session ${sid} ended ${rec?.status}: ${JSON.stringify(out)}`);
      return t;
    };
    let dockerRuns = 0;
    const dockerRun = async (): Promise<number> => {
      const name = `agent9-bench-run-${process.pid}-${dockerRuns++}`;
      const t0 = process.hrtime.bigint();
      const { stdout } = await run('docker', ['run', '--name', name, ...DOCKER_RUN_FLAGS, IMAGE, 'echo', 'hi']);
      const t = ms(t0);
      await run('docker', ['rm', '-f', name]);
      if (stdout !== 'hi\n') throw new Error(`docker run said ${JSON.stringify(stdout)}`);
      return t;
    };
    const apiRun = async (): Promise<number> => {
      const t0 = process.hrtime.bigint();
      const c = await docker.createContainer({
        Image: IMAGE,
        Cmd: ['echo', 'hi'],
        WorkingDir: '/workspace',
        NetworkDisabled: true,
        HostConfig: {
          NetworkMode: 'none',
          Memory: 256 << 20,
          MemorySwap: 256 << 20,
          NanoCpus: 1e9,
          PidsLimit: 256,
          ReadonlyRootfs: true,
          Tmpfs: { '/workspace': 'rw,exec,size=256m', '/tmp': 'rw,exec,size=256m' },
          Init: true,
          SecurityOpt: ['no-new-privileges'],
        },
      });
      await c.start();
      await c.wait();
      const t = ms(t0);
      await c.remove({ force: true });
      return t;
    };

    // Warm up both paths (image layers, daemon caches, JIT).
    await oursFirstCommand();
    await dockerRun();
    await apiRun();
    const ours: number[] = [];
    const cli: number[] = [];
    const api: number[] = [];
    for (let i = 0; i < runs; i++) {
      ours.push(await oursFirstCommand());
      cli.push(await dockerRun());
      api.push(await apiRun());
    }

    // Exec latency in one running session.
    const sid = (await call('/containers/new', { image: IMAGE, kind: 'interactive' }))['session_id'] as string;
    const { containerId } = await engine.containerOf(AGENT, sid, '/');
    const oursExec = async () => {
      const t0 = process.hrtime.bigint();
      const r = await call(`/containers/sessions/${sid}/exec/new`, { command: ['echo', 'hi'], wait: true });
      const t = ms(t0);
      if (r['stdout'] !== 'hi\n') throw new Error(`exec said ${JSON.stringify(r)}`);
      return t;
    };
    const dockerExec = async () => {
      const t0 = process.hrtime.bigint();
      const { stdout } = await run('docker', ['exec', containerId, 'echo', 'hi']);
      const t = ms(t0);
      if (stdout !== 'hi\n') throw new Error(`docker exec said ${JSON.stringify(stdout)}`);
      return t;
    };
    const apiExec = async () => {
      const t0 = process.hrtime.bigint();
      await provider.run(containerId, ['echo', 'hi']);
      return ms(t0);
    };
    await oursExec();
    await dockerExec();
    const oe: number[] = [];
    const de: number[] = [];
    const ae: number[] = [];
    for (let i = 0; i < runs * 2; i++) {
      oe.push(await oursExec());
      de.push(await dockerExec());
      ae.push(await apiExec());
    }
    await writeAll(ns, `/containers/sessions/${sid}/ctl`, 'kill', cx);
    await engine.drain();
    await engine.close();
    storage.close();

    const first = 'session create → first command done (median)';
    const exec = 'exec latency (median)';
    const figures: Figure[] = [
      { name: first, unit: 'ms', value: medianOf(ours), baselineName: '`docker run` (CLI, without --rm), same image, command, limits', baseline: medianOf(cli), higherIsBetter: false, bar: '<= 1.3x' },
      { name: first, unit: 'ms', value: medianOf(ours), baselineName: 'engine API run: create+start+wait', baseline: medianOf(api), higherIsBetter: false },
      { name: exec, unit: 'ms', value: medianOf(oe), baselineName: '`docker exec` (CLI)', baseline: medianOf(de), higherIsBetter: false },
      { name: exec, unit: 'ms', value: medianOf(oe), baselineName: 'engine API exec: create+start+inspect', baseline: medianOf(ae), higherIsBetter: false },
    ];
    return figures;
  },
};
