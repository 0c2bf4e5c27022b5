/** Human output for agentctl: tables, colour on a terminal (NO_COLOR / FORCE_COLOR respected), modes, times. */
import type { Stat } from '../fs/types.js';

export function colourEnabled(stream: NodeJS.WriteStream = process.stdout): boolean {
  if (process.env['NO_COLOR']) return false;
  if (process.env['FORCE_COLOR'] && process.env['FORCE_COLOR'] !== '0') return true;
  return !!stream.isTTY;
}

const paint = (code: number) => (text: string, stream: NodeJS.WriteStream = process.stdout) =>
  colourEnabled(stream) ? `\x1b[${code}m${text}\x1b[0m` : text;

export const c = {
  bold: paint(1),
  dim: paint(2),
  red: paint(31),
  green: paint(32),
  yellow: paint(33),
  blue: paint(34),
  magenta: paint(35),
  cyan: paint(36),
};

/** Visible width (ANSI colour codes take none). */
function width(text: string): number {
  // eslint-disable-next-line no-control-regex
  return [...text.replace(/\x1b\[[0-9;]*m/g, '')].length;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  align?: 'left' | 'right';
}

/** A plain-text table, columns separated by two spaces, headers dimmed on a terminal. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((r) => columns.map((col) => col.value(r)));
  const widths = columns.map((col, i) => Math.max(width(col.header), ...cells.map((row) => width(row[i]!))));
  const fmt = (values: string[]) =>
    values
      .map((v, i) => {
        const pad = ' '.repeat(widths[i]! - width(v));
        if (i === values.length - 1 && columns[i]!.align !== 'right') return v;
        return columns[i]!.align === 'right' ? pad + v : v + pad;
      })
      .join('  ');
  const header = c.dim(fmt(columns.map((col) => col.header)));
  return [header, ...cells.map(fmt)].join('\n') + '\n';
}

/** `drwxr-xr-x` from a stat. */
export function modeString(st: Pick<Stat, 'type' | 'mode'>): string {
  const bits = 'rwxrwxrwx';
  let out = st.type === 'dir' ? 'd' : '-';
  for (let i = 0; i < 9; i++) out += st.mode & (1 << (8 - i)) ? bits[i] : '-';
  return out;
}

/** Local time as `YYYY-MM-DD HH:MM:SS`. */
export function timeString(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function write(text: string): void {
  process.stdout.write(text);
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
