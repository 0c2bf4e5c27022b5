/**
 * The FUSE mount against libfuse3's C `passthrough_ll` example with caching (`-o cache=always,writeback`)
 * over a directory on the same disk, and against that plain directory, measured in the same run:
 * - tar xf of a 400-file tarball, cp -a of the result, rm -rf of both (bar: each <= 2x passthrough_ll);
 * - sequential read of a cold 256 MiB file (>= 0.8x) and sequential write with fsync (>= 0.5x);
 * - create + write + close of 2,000 small files (a C loop, <= 2x);
 * - uncached stat(2) rate (timeouts 0 on both, passthrough_ll with cache=never; >= 0.5x).
 * Every mount is served by a child process (the bench never touches a mount it serves); the runs of
 * each figure are interleaved between ours and the baselines, 3 rounds, the median kept and the spread
 * printed. The C programs are built here, from bench/native and libfuse3-dev's examples.
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

/** Builds the C baseline (libfuse3-dev's passthrough_ll example) and helpers, again when a source changes. */
async function buildNative(): Promise<Record<'passthroughLl' | 'statloop' | 'smallfiles', string>> {
  await mkdir(buildDir, { recursive: true });
  const fuse3 = (await exec('pkg-config', ['fuse3', '--cflags', '--libs'])).stdout.trim().split(/\s+/);
  const out = {
    passthroughLl: join(buildDir, 'passthrough_ll'),
    statloop: join(buildDir, 'statloop'),
    smallfiles: join(buildDir, 'smallfiles'),
  };
  const jobs: [string, string[], string[]][] = [
    [out.passthroughLl, [join(examples, 'passthrough_ll.c')], ['-I', examples, ...fuse3]],
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
      if (await isMounted(mountPath)) await exec('fusermount3', ['-u', '-z', mountPath]).catch(() => undefined);
    },
  };
}

/** The MB/s dd reports. */
function ddSpeed(stderr: string, bytes: number): number {
  const m = /^(\d+) bytes .* copied, ([\d.]+) s,/m.exec(stderr);
  if (!m) throw new Error(`unexpected dd output: ${stderr}`);
  if (Number(m[1]) !== bytes) throw new Error(`dd moved ${m[1]} of ${bytes} bytes`);
  return bytes / Number(m[2]) / 1e6;
}

/** Cold sequential read: the page cache (the kernel's, and the disk's under our SQLite) dropped first. */
async function coldRead(file: string, bytes: number): Promise<number> {
  await exec('sh', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches']);
  const { stderr } = await exec('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', `count=${bytes / (1 << 20)}`]);
  return ddSpeed(stderr, bytes);
}

/** Sequential write of `bytes` with dd bs=1M, made durable (conv=fsync) before the clock stops. */
async function seqWrite(file: string, bytes: number): Promise<number> {
  const { stderr } = await exec('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${bytes / (1 << 20)}`, 'conv=fsync']);
  return ddSpeed(stderr, bytes);
}

/** Wall time of a shell command, in ms. */
async function timed(script: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  await exec('sh', ['-c', script], 300_000);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Measured {
  median: number;
  all: number[];
}

/** Runs each measure `runs` times, interleaved (one of each per round), keeping every result. */
async function alternate(runs: number, measures: (() => Promise<number>)[]): Promise<Measured[]> {
  const results = measures.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) for (let j = 0; j < measures.length; j++) results[j]!.push(await measures[j]!());
  return results.map((all) => ({ median: median(all), all }));
}

const span = (m: Measured) => `${fmt(Math.min(...m.all))}-${fmt(Math.max(...m.all))}`;
const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

/** A figure of ours against a baseline, with both spreads (min-max over the runs). */
function figure(name: string, unit: string, ours: Measured, baselineName: string, base: Measured, higherIsBetter: boolean, bar?: string): Figure {
  const f: Figure = { name, unit, value: ours.median, baselineName, baseline: base.median, higherIsBetter, spread: { ours: span(ours), baseline: span(base) } };
  if (bar) f.bar = bar;
  return f;
}

/** A 400-file tree like a small node_modules: nested directories, mostly small files, a few larger. */
async function makeTarball(dir: string): Promise<string> {
  const script = `set -e; cd ${dir}; mkdir t; for p in $(seq 1 20); do d=t/pkg$p/lib/sub; mkdir -p $d;
    for f in $(seq 1 19); do head -c $(( (p * 997 + f * 3571) % 12000 + 200 )) /dev/urandom > $d/f$f.js; done;
    head -c $(( p * 9000 )) /dev/urandom > t/pkg$p/big.bin; done;
    touch -d '2020-01-02 03:04:05.123456789' t/pkg1/big.bin; tar cf t.tar t; rm -rf t`;
  await exec('sh', ['-c', script]);
  return join(dir, 't.tar');
}

export const fuseCase: BenchCase = {
  name: 'fuse',
  async run({ tmp, quick }) {
    const loadAtStart = loadavg().map((l) => l.toFixed(2)).join(' ');
    const reason = await fuseUnavailableReason();
    if (reason) throw new Error(`FUSE is not available here: ${reason}`);
    if (process.getuid?.() !== 0) throw new Error('the FUSE bench drops the page cache for cold reads: run it as root');
    const bin = await buildNative();
    const MiB = quick ? 64 : 256;
    const bigBytes = MiB << 20;
    const runs = 3;
    const statCount = quick ? 5_000 : 20_000;
    const smallCount = 2_000;

    const dirs = {
      ours: await mkdtemp(join(tmp, 'mnt-ours-')),
      oursUncached: await mkdtemp(join(tmp, 'mnt-ours-uncached-')),
      pt: await mkdtemp(join(tmp, 'mnt-passthrough-ll-')),
      ptUncached: await mkdtemp(join(tmp, 'mnt-passthrough-ll-uncached-')),
      ptSource: await mkdtemp(join(tmp, 'pt-src-')),
      plain: await mkdtemp(join(tmp, 'plain-')),
      work: await mkdtemp(join(tmp, 'work-')),
    };
    const tarball = await makeTarball(dirs.work);
    await writeFile(join(dirs.ptSource, 'stat-me'), 'x');

    const node = process.execPath;
    const served: Served[] = [];
    try {
      served.push(await serve(node, [serverScript, 'agent9', join(tmp, 'home'), dirs.ours], dirs.ours));
      served.push(await serve(node, [serverScript, 'agent9', join(tmp, 'home-uncached'), dirs.oursUncached, '--attr', '0', '--entry', '0'], dirs.oursUncached));
      served.push(await serve(bin.passthroughLl, ['-f', '-o', `source=${dirs.ptSource},cache=always,writeback`, dirs.pt], dirs.pt));
      served.push(await serve(bin.passthroughLl, ['-f', '-o', `source=${dirs.ptSource},cache=never`, dirs.ptUncached], dirs.ptUncached));
      await exec('sh', ['-c', `echo x > ${dirs.oursUncached}/data/stat-me`]);
      const places = { ours: join(dirs.ours, 'data'), pt: dirs.pt, plain: dirs.plain };

      // 1. Everyday tools on a 400-file tree: tar xf, cp -a of the result, rm -rf of both.
      let round = 0;
      const tools = { tar: new Map<string, number[]>(), cp: new Map<string, number[]>(), rm: new Map<string, number[]>() };
      const treeRun = async (name: keyof typeof places) => {
        const d = join(places[name], `tree${round}`);
        const push = (m: Map<string, number[]>, v: number) => m.set(name, [...(m.get(name) ?? []), v]);
        push(tools.tar, await timed(`mkdir ${d} && cd ${d} && tar xf ${tarball}`));
        push(tools.cp, await timed(`cp -a ${d}/t ${d}/copy`));
        push(tools.rm, await timed(`rm -rf ${d}`));
        return 0;
      };
      for (let i = 0; i < runs; i++, round++) for (const name of ['ours', 'pt', 'plain'] as const) await treeRun(name);
      const m = (map: Map<string, number[]>, name: string): Measured => ({ median: median(map.get(name)!), all: map.get(name)! });

      // 2. Sequential write, then a cold read of what was written.
      const big = (name: keyof typeof places) => join(places[name], 'big');
      const [wOurs, wPt] = await alternate(runs, [() => seqWrite(big('ours'), bigBytes), () => seqWrite(big('pt'), bigBytes)]);
      const [rOurs, rPt] = await alternate(runs, [() => coldRead(big('ours'), bigBytes), () => coldRead(big('pt'), bigBytes)]);

      // 3. Uncached stat rate (attribute and entry timeouts 0 on both: each stat is a lookup and a getattr).
      const statRate = async (path: string) => Number((await exec(bin.statloop, [path, String(statCount)])).stdout);
      const [sOurs, sPt] = await alternate(runs, [
        () => statRate(join(dirs.oursUncached, 'data', 'stat-me')),
        () => statRate(join(dirs.ptUncached, 'stat-me')),
      ]);

      // 4. Small files: a fresh directory per run.
      let run = 0;
      const smallFiles = async (base: string) => {
        const d = join(base, `small${run++}`);
        await exec('mkdir', ['-p', d]);
        return Number((await exec(bin.smallfiles, [d, String(smallCount), '100'])).stdout);
      };
      const [smOurs, smPt, smPlain] = await alternate(runs, [() => smallFiles(places.ours), () => smallFiles(places.pt), () => smallFiles(places.plain)]);

      const ptName = 'C passthrough_ll -o cache=always,writeback';
      const figures: Figure[] = [];
      for (const [tool, label] of [
        ['tar', 'tar xf of a 400-file tarball'],
        ['cp', 'cp -a of the extracted tree'],
        ['rm', 'rm -rf of both trees'],
      ] as const) {
        figures.push(figure(label, 'ms', m(tools[tool], 'ours'), ptName, m(tools[tool], 'pt'), false, '<= 2x'));
        figures.push(figure(label, 'ms', m(tools[tool], 'ours'), 'the plain directory', m(tools[tool], 'plain'), false));
      }
      figures.push(figure(`sequential read of a cold ${MiB} MiB file, dd bs=1M`, 'MB/s', rOurs!, ptName, rPt!, true, '>= 0.8x'));
      figures.push(figure(`sequential write of ${MiB} MiB, dd bs=1M conv=fsync`, 'MB/s', wOurs!, ptName, wPt!, true, '>= 0.5x'));
      figures.push(figure(`create+write+close ${smallCount} files of 100 B`, 'ms', smOurs!, ptName, smPt!, false, '<= 2x'));
      figures.push(figure(`create+write+close ${smallCount} files of 100 B`, 'ms', smOurs!, 'the plain directory', smPlain!, false));
      figures.push(figure('uncached stat(2) rate, attr/entry timeout 0', 'stat/s', sOurs!, 'C passthrough_ll -o cache=never', sPt!, true, '>= 0.5x'));
      figures[0]!.note = `load average at the start ${loadAtStart}; all on the same disk (${tmp}); our mount keeps data in SQLite (WAL), passthrough_ll in the directory it passes through`;
      return figures;
    } finally {
      for (const s of served.reverse()) await s.stop().catch(() => undefined);
      for (const d of [dirs.ours, dirs.oursUncached, dirs.pt, dirs.ptUncached]) await rmdir(d).catch(() => undefined);
      await rm(dirs.work, { recursive: true, force: true });
    }
  },
};
