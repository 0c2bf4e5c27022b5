/** `npm run bench [-- name-filter] [--quick]`: runs every case, prints the table, writes JSON. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ratioOf, type BenchCase, type Figure } from './harness.js';
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
  const quick = args.includes('--quick');
  const filters = args.filter((a) => !a.startsWith('--'));
  const selected: BenchCase[] = cases.filter((c) => filters.length === 0 || filters.some((f) => c.name.includes(f)));
  const rows: (Figure & { case: string; ratio: number })[] = [];
  for (const c of selected) {
    const tmp = mkdtempSync(join(tmpdir(), `agent9-bench-${c.name}-`));
    const shm = mkdtempSync(join('/dev/shm', `agent9-bench-${c.name}-`));
    process.stderr.write(`bench: ${c.name} ...\n`);
    try {
      for (const f of await c.run({ tmp, shm, quick })) rows.push({ ...f, case: c.name, ratio: ratioOf(f) });
    } catch (err) {
      process.stderr.write(`bench: ${c.name} failed: ${(err as Error).stack ?? String(err)}\n`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      rmSync(shm, { recursive: true, force: true });
    }
  }
  const header = ['case', 'figure', 'ours', 'baseline', 'baseline value', 'ratio', 'bar', 'verdict', 'spread'];
  const table = rows.map((r) => [
    r.case,
    r.name,
    `${fmt(r.value)} ${r.unit}`,
    r.baselineName,
    `${fmt(r.baseline)} ${r.unit}`,
    `${r.ratio.toFixed(2)}x${r.higherIsBetter ? '' : ' (time)'}`,
    r.bar ?? '',
    verdict(r.bar, r.ratio),
    r.spread ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of table) console.log(line(row));
  for (const r of rows.filter((x) => x.note)) console.log(`note (${r.case} / ${r.name}): ${r.note}`);
  mkdirSync(resultsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = JSON.stringify({ at: new Date().toISOString(), node: process.version, rows }, null, 2);
  writeFileSync(join(resultsDir, `bench-${stamp}.json`), json);
  writeFileSync(join(resultsDir, 'latest.json'), json);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/** "meets" / "misses" for a bar like ">= 0.8x" or "<= 2x" (ratio = ours / baseline, times included). */
function verdict(bar: string | undefined, ratio: number): string {
  const m = /^(>=|<=)\s*([\d.]+)x$/.exec(bar ?? '');
  if (!m) return '';
  const limit = Number(m[2]);
  return (m[1] === '>=' ? ratio >= limit : ratio <= limit) ? 'meets' : 'misses';
}
