/**
 * The FUSE mount against baselines measured in the same run:
 * - sequential read of a 256 MiB data file with `dd bs=1M` through our mount, beside libfuse3's C `null`
 *   example (the FUSE ceiling on this machine), a minimal fuse-native filesystem (the binding's ceiling)
 *   and tmpfs;
 * - uncached stat(2) rate (attribute and entry timeouts 0, a C loop), beside the minimal fuse-native
 *   filesystem and libfuse3's C `passthrough` example;
 * - create + write + close of 2,000 small files (a C loop), beside tmpfs and C `passthrough` on tmpfs.
 * Every mount is served by a child process (the bench never touches a mount it serves), and the
 * measurements of each figure alternate between ours and the baseline, keeping the median.
 * The C programs are built here, from bench/native and libfuse3-dev's examples, into bench/native/build.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { fuseUnavailableReason } from '../../src/fuse/index.js';
import type { BenchCase, Figure } from '../harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..'); // dist-bench/bench/cases -> the repository
const nativeDir = join(root, 'bench', 'native');
const buildDir = join(nativeDir, 'build');
const examples = '/usr/share/doc/libfuse3-dev/examples';
const serverScript = join(root, 'dist-bench', 'bench', 'fuse-server.js');

function exec(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function newer(target: string, sources: string[]): Promise<boolean> {
  try {
    const t = (await stat(target)).mtimeMs;
    for (const s of sources) if ((await stat(s)).mtimeMs > t) return false;
    return true;
  } catch {
    return false;
  }
}

/** Builds the C baselines and helpers (once; again when a source changes). */
async function buildNative(): Promise<Record<'null' | 'passthrough' | 'statloop' | 'smallfiles', string>> {
  await mkdir(buildDir, { recursive: true });
  const fuse3 = (await exec('pkg-config', ['fuse3', '--cflags', '--libs'])).stdout.trim().split(/\s+/);
  const out = {
    null: join(buildDir, 'null'),
    passthrough: join(buildDir, 'passthrough'),
    statloop: join(buildDir, 'statloop'),
    smallfiles: join(buildDir, 'smallfiles'),
  };
  const jobs: [string, string[], string[]][] = [
    [out.null, [join(examples, 'null.c')], fuse3],
    [out.passthrough, [join(examples, 'passthrough.c')], ['-I', examples, ...fuse3]],
    [out.statloop, [join(nativeDir, 'statloop.c')], []],
    [out.smallfiles, [join(nativeDir, 'smallfiles.c')], []],
  ];
  for (const [target, sources, flags] of jobs) {
    if (await newer(target, sources)) continue;
    await exec('gcc', ['-O2', '-o', target, ...sources, ...flags]);
  }
  return out;
}

async function isMounted(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => line.split(' ')[4] === path && / - fuse/.test(line));
}

interface Served {
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a mount server as a child process and waits until `mountPath` is mounted. */
async function serve(cmd: string, args: string[], mountPath: string): Promise<Served> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 60_000;
  while (!(await isMounted(mountPath))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${cmd} did not mount ${mountPath}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      if (await isMounted(mountPath)) await exec('fusermount', ['-u', '-z', mountPath]).catch(() => undefined);
    },
  };
}

/** dd bs=1M of `bytes` from `file`; MB/s. */
async function ddRate(file: string, bytes: number): Promise<number> {
  const { stderr } = await exec('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', `count=${bytes / (1 << 20)}`]);
  const m = /^(\d+) bytes .* copied, ([\d.]+) s,/m.exec(stderr);
  if (!m) throw new Error(`unexpected dd output: ${stderr}`);
  const copied = Number(m[1]);
  if (copied !== bytes) throw new Error(`dd read ${copied} of ${bytes} bytes from ${file}`);
  return bytes / Number(m[2]) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs each measure `runs` times, alternating between them, and keeps each one's median. */
async function alternate(runs: number, measures: (() => Promise<number>)[]): Promise<number[]> {
  const results = measures.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) for (let j = 0; j < measures.length; j++) results[j]!.push(await measures[j]!());
  return results.map(median);
}

export const fuseCase: BenchCase = {
  name: 'fuse',
  async run({ tmp, shm, quick }) {
    const loadAtStart = loadavg().map((l) => l.toFixed(2)).join(' ');
    const reason = await fuseUnavailableReason();
    if (reason) throw new Error(`FUSE is not available here: ${reason}`);
    const bin = await buildNative();
    const MiB = quick ? 64 : 256;
    const bigBytes = MiB << 20;
    const runs = quick ? 3 : 5;
    const statCount = quick ? 5_000 : 20_000;
    const smallCount = 2_000;

    const dirs = {
      ours: await mkdtemp(join(tmp, 'mnt-ours-')),
      oursUncached: await mkdtemp(join(tmp, 'mnt-ours-uncached-')),
      minimal: await mkdtemp(join(tmp, 'mnt-minimal-')),
      minimalCached: await mkdtemp(join(tmp, 'mnt-minimal-page-cache-')),
      passthrough: await mkdtemp(join(tmp, 'mnt-passthrough-')),
      ptSource: await mkdtemp(join(shm, 'pt-src-')),
      nullFile: join(tmp, 'null-mount'),
      tmpfsFiles: await mkdtemp(join(shm, 'small-')),
    };
    await writeFile(dirs.nullFile, '');
    await mkdir(join(dirs.ptSource, 'data'));
    await writeFile(join(dirs.ptSource, 'data', 'big'), 'x');
    const tmpfsBig = join(shm, 'big');
    await exec('dd', ['if=/dev/urandom', `of=${tmpfsBig}`, 'bs=1M', `count=${MiB}`, 'status=none']);

    const node = process.execPath;
    const served: Served[] = [];
    try {
      served.push(await serve(node, [serverScript, 'agent9', join(tmp, 'home'), dirs.ours, '--big', String(MiB)], dirs.ours));
      served.push(await serve(node, [serverScript, 'agent9', join(tmp, 'home-uncached'), dirs.oursUncached, '--attr', '0', '--entry', '0'], dirs.oursUncached));
      served.push(await serve(node, [serverScript, 'minimal', dirs.minimal, '--attr', '0', '--entry', '0'], dirs.minimal));
      served.push(await serve(node, [serverScript, 'minimal', dirs.minimalCached, '--page-cache'], dirs.minimalCached));
      served.push(await serve(bin.null, ['-f', dirs.nullFile], dirs.nullFile));
      served.push(await serve(bin.passthrough, ['-f', '-o', `modules=subdir,subdir=${dirs.ptSource}`, dirs.passthrough], dirs.passthrough));
      await exec('sh', ['-c', `echo x > ${dirs.oursUncached}/data/big`]);

      // 1. Sequential read. Our server has just written the file: its dirty pages are flushed first (the
      // kernel's writeback would otherwise run during the first reads), and every contender is read
      // once unmeasured.
      await exec('sync', []);
      const contenders = [
        join(dirs.ours, 'data', 'big'),
        dirs.nullFile,
        join(dirs.minimal, 'data', 'big'),
        tmpfsBig,
        join(dirs.minimalCached, 'data', 'big'),
      ];
      for (const file of contenders) await ddRate(file, bigBytes);
      const [ddOurs, ddNull, ddMinimal, ddTmpfs, ddMinimalCached] = await alternate(runs, [
        () => ddRate(join(dirs.ours, 'data', 'big'), bigBytes),
        () => ddRate(dirs.nullFile, bigBytes),
        () => ddRate(join(dirs.minimal, 'data', 'big'), bigBytes),
        () => ddRate(tmpfsBig, bigBytes),
        () => ddRate(join(dirs.minimalCached, 'data', 'big'), bigBytes),
      ]);
      const ddName = `sequential read of a ${MiB} MiB data file, dd bs=1M`;

      // 2. Uncached stat rate (each stat is a lookup per path component and a getattr).
      const statRate = async (path: string) => Number((await exec(bin.statloop, [path, String(statCount)])).stdout);
      const [statOurs, statMinimal, statPassthrough] = await alternate(runs, [
        () => statRate(join(dirs.oursUncached, 'data', 'big')),
        () => statRate(join(dirs.minimal, 'data', 'big')),
        () => statRate(join(dirs.passthrough, 'data', 'big')),
      ]);

      // 3. Small files: a fresh directory per run, so every run creates new files.
      let run = 0;
      const smallFiles = async (base: string) => {
        const d = join(base, `run${run++}`);
        await exec('mkdir', ['-p', d]);
        return Number((await exec(bin.smallfiles, [d, String(smallCount), '100'])).stdout);
      };
      const [smallOurs, smallTmpfs, smallPassthrough] = await alternate(quick ? 2 : 3, [
        () => smallFiles(join(dirs.ours, 'data')),
        () => smallFiles(dirs.tmpfsFiles),
        () => smallFiles(join(dirs.passthrough, 'data')),
      ]);

      const figures: Figure[] = [
        {
          name: ddName,
          unit: 'MB/s',
          value: ddOurs!,
          baselineName: 'libfuse3 C example `null`',
          baseline: ddNull!,
          higherIsBetter: true,
          bar: '>= 0.5x',
          note: `load average at the start ${loadAtStart}. fuse-native (libfuse 2.9) gets requests of at most 128 KiB, one at a time; libfuse3's null gets 1 MiB requests on several threads, so the minimal fuse-native fs below is the ceiling of any filesystem on this binding`,
        },
        { name: ddName, unit: 'MB/s', value: ddOurs!, baselineName: 'minimal fuse-native fs (zeros)', baseline: ddMinimal!, higherIsBetter: true },
        { name: ddName, unit: 'MB/s', value: ddOurs!, baselineName: 'tmpfs', baseline: ddTmpfs!, higherIsBetter: true },
        {
          name: 'design check: dd bs=1M through the minimal fuse-native fs with direct_io (as mounted)',
          unit: 'MB/s',
          value: ddMinimal!,
          baselineName: 'the same without direct_io (page cache)',
          baseline: ddMinimalCached!,
          higherIsBetter: true,
        },
        {
          name: 'uncached stat(2) rate, attr/entry timeout 0',
          unit: 'stat/s',
          value: statOurs!,
          baselineName: 'minimal fuse-native fs',
          baseline: statMinimal!,
          higherIsBetter: true,
          bar: '>= 0.5x',
        },
        { name: 'uncached stat(2) rate, attr/entry timeout 0', unit: 'stat/s', value: statOurs!, baselineName: 'libfuse3 C example `passthrough`', baseline: statPassthrough!, higherIsBetter: true },
        { name: `create+write+close ${smallCount} files of 100 B`, unit: 'ms', value: smallOurs!, baselineName: 'tmpfs', baseline: smallTmpfs!, higherIsBetter: false },
        {
          name: `create+write+close ${smallCount} files of 100 B`,
          unit: 'ms',
          value: smallOurs!,
          baselineName: 'libfuse3 C `passthrough` on tmpfs',
          baseline: smallPassthrough!,
          higherIsBetter: false,
          note: 'our mount stores each file durably in SQLite (WAL) with its change event; tmpfs and passthrough keep it in memory',
        },
      ];
      return figures;
    } finally {
      for (const s of served.reverse()) await s.stop().catch(() => undefined);
      for (const d of [dirs.ours, dirs.oursUncached, dirs.minimal, dirs.minimalCached, dirs.passthrough]) await rmdir(d).catch(() => undefined);
      await rm(dirs.nullFile, { force: true });
    }
  },
};
