/** `npm run bench [-- name-filter] [--quick]`: runs every case, prints the table, writes JSON. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { meetsBar, ratioOf, type BenchCase, type Figure } from './harness.js';
import { cases } from './cases/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, '..', '..', 'bench', 'results');

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const loadAtStart = loadavg()[0]!.toFixed(2);
  const quick = args.includes('--quick');
  const filters = args.filter((a) => !a.startsWith('--'));
  const selected: BenchCase[] = cases.filter((c) => filters.length === 0 || filters.some((f) => c.name.includes(f)));
  const rows: (Figure & { case: string; ratio: number; meets: boolean | undefined })[] = [];
  const failed: string[] = [];
  for (const c of selected) {
    const tmp = mkdtempSync(join(tmpdir(), `agent9-bench-${c.name}-`));
    const shm = mkdtempSync(join('/dev/shm', `agent9-bench-${c.name}-`));
    process.stderr.write(`bench: ${c.name} ...\n`);
    try {
      for (const f of await c.run({ tmp, shm, quick })) rows.push({ ...f, case: c.name, ratio: ratioOf(f), meets: meetsBar(f) });
    } catch (err) {
      process.stderr.write(`bench: ${c.name} failed: ${(err as Error).stack ?? String(err)}\n`);
      failed.push(c.name);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      rmSync(shm, { recursive: true, force: true });
    }
  }
  const header = ['case', 'figure', 'ours', 'baseline', 'baseline value', 'ratio', 'bar', 'meets'];
  const table = rows.map((r) => [
    r.case,
    r.name,
    `${fmt(r.value)} ${r.unit}${r.spread ? ` (${r.spread.ours})` : ''}`,
    r.baselineName,
    `${fmt(r.baseline)} ${r.unit}${r.spread ? ` (${r.spread.baseline})` : ''}`,
    `${r.ratio.toFixed(2)}x${r.higherIsBetter ? '' : ' (time)'}`,
    r.bar ?? '',
    r.meets === undefined ? '' : r.meets ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of table) console.log(line(row));
  for (const r of rows.filter((x) => x.note)) console.log(`note (${r.case} / ${r.name}): ${r.note}`);
  const [load1, load5] = loadavg();
  console.log(`load average at the end: ${load1!.toFixed(2)} (1 min), ${load5!.toFixed(2)} (5 min) on ${cpus().length} cores (at the start: ${loadAtStart})`);
  // The closing note: every bar missed in this run, and every case that did not finish.
  const misses = rows.filter((r) => r.meets === false);
  if (misses.length === 0 && failed.length === 0) console.log('every bar met');
  else {
    console.log(`misses (${misses.length + failed.length}):`);
    for (const r of misses) {
      console.log(`- ${r.case} / ${r.name}: ${r.ratio.toFixed(2)}x of ${r.baselineName}, bar ${r.bar}${r.missedBecause ? ` (${r.missedBecause})` : ''}`);
    }
    for (const name of failed) console.log(`- ${name}: the case failed (see stderr), its bars are unmeasured`);
  }
  mkdirSync(resultsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = JSON.stringify({ at: new Date().toISOString(), node: process.version, loadavg: loadavg(), rows, failed }, null, 2);
  writeFileSync(join(resultsDir, `bench-${stamp}.json`), json);
  writeFileSync(join(resultsDir, 'latest.json'), json);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
