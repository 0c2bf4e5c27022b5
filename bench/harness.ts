/**
 * The benchmark harness: every figure is measured beside its baseline in the same run and printed as a
 * ratio. Benchmarks are never tests: nothing here fails a build on speed; bars are shown, not enforced.
 */
export interface Figure {
  /** What was measured, e.g. "small files write+read". */
  name: string;
  unit: string;
  value: number;
  baselineName: string;
  baseline: number;
  /** true for rates (ops/s), false for times and sizes. */
  higherIsBetter: boolean;
  /** The bar the issue sets, as a ratio (ours / baseline for rates; baseline / ours... see ratioOf). */
  bar?: string;
  /** The lowest and highest of the runs a median was taken of, each side. */
  spread?: { ours: string; baseline: string };
  /** Why a bar is missed, when the reason is known (printed beside the miss). */
  missedBecause?: string;
  note?: string;
}

export interface BenchContext {
  /** A scratch directory on disk for this case. */
  tmp: string;
  /** Scratch on tmpfs. */
  shm: string;
  quick: boolean;
}

export interface BenchCase {
  name: string;
  run(ctx: BenchContext): Promise<Figure[]>;
}

/** Ratio as "how we compare": for rates ours/baseline, for costs (times) baseline/ours... expressed as ours÷baseline. */
export function ratioOf(f: Figure): number {
  return f.value / f.baseline;
}

/**
 * Whether a figure meets its bar: `>= 0.6x` / `<= 1.5x` compare the ratio; `< 300 MB` (a unit other
 * than x) compares the value itself. undefined when the figure has no bar.
 */
export function meetsBar(f: Figure): boolean | undefined {
  if (!f.bar) return undefined;
  const m = /^\s*(>=|<=|<|>)\s*([\d.]+)\s*(\S*)\s*$/.exec(f.bar);
  if (!m) throw new Error(`bar '${f.bar}' of '${f.name}' is not like '>= 0.5x' or '< 300 MB'`);
  const limit = Number(m[2]);
  const x = m[3] === 'x' || m[3] === '' ? ratioOf(f) : f.value;
  switch (m[1]) {
    case '>=':
      return x >= limit;
    case '<=':
      return x <= limit;
    case '<':
      return x < limit;
    default:
      return x > limit;
  }
}

export function timeIt<T>(fn: () => T): { ms: number; result: T } {
  const t0 = process.hrtime.bigint();
  const result = fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, result };
}

export async function timeAsync<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = process.hrtime.bigint();
  const result = await fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, result };
}

/** Runs fn `runs` times and keeps the median of its timings (the first run warms up). */
export async function median(runs: number, fn: () => Promise<number> | number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await fn());
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}
