import { FsError } from './errors.js';

/**
 * The longest path in a data tree, counted from the tree's root (so `/agents/<id>/memory` above it
 * takes none of it, as a local disk mounted there would count from its own root).
 */
export const MAX_PATH_BYTES = 4096;
/** The longest path of a whole namespace: a data tree's longest path below the deepest mount point. */
export const MAX_NAMESPACE_PATH_BYTES = 2 * MAX_PATH_BYTES;
export const MAX_NAME_BYTES = 255;

const encoder = new TextEncoder();

function byteLength(s: string): number {
  return encoder.encode(s).length;
}

/**
 * True when `input` needs no work: absolute, no empty, `.` or `..` segment, no NUL, no trailing `/`,
 * and short enough that its byte length cannot be over a limit. Every namespace operation normalises
 * its path, and almost every path is already normal, so this is checked first, in one pass.
 */
function alreadyNormal(input: string): boolean {
  const n = input.length;
  if (n === 1) return input === '/';
  if (n === 0 || n > MAX_NAMESPACE_PATH_BYTES / 4 || input.charCodeAt(0) !== 47 || input.charCodeAt(n - 1) === 47) return false;
  let start = 1;
  for (let i = 1; i <= n; i++) {
    const ch = i === n ? 47 : input.charCodeAt(i);
    if (ch < 32 || ch === 127) return false;
    if (ch !== 47) continue;
    const len = i - start;
    if (len === 0 || len > MAX_NAME_BYTES / 4) return false;
    if (input.charCodeAt(start) === 46 && (len === 1 || (len === 2 && input.charCodeAt(start + 1) === 46))) return false;
    start = i + 1;
  }
  return true;
}

/** C0 control characters and DEL: a newline in a name would break every line-based listing. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f]/;

/** The path as a message can show it: control characters as \n, \t, \x01... */
export function printablePath(input: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return input.replace(/[\x00-\x1f\x7f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    if (c === '\0') return '\\0';
    return '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0');
  });
}

function controlCharacterError(input: string): FsError {
  const c = CONTROL.exec(input)![0];
  const what = c === '\0' ? 'a NUL byte' : `a control character (U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')})`;
  return new FsError('EINVAL', printablePath(input), `path contains ${what}`);
}

/**
 * Normalises an absolute path: collapses `//`, drops a trailing `/`.
 * Rejects NUL and other control characters, `.`/`..` segments and relative paths (EINVAL), and
 * over-long names or paths (ENAMETOOLONG).
 */
export function normalizePath(input: string): string {
  if (typeof input === 'string' && alreadyNormal(input)) return input;
  if (typeof input !== 'string' || !input.startsWith('/')) {
    throw new FsError('EINVAL', printablePath(String(input)), 'path must be absolute (start with /)');
  }
  if (CONTROL.test(input)) throw controlCharacterError(input);
  if (input.length > MAX_NAMESPACE_PATH_BYTES / 4 && byteLength(input) > MAX_NAMESPACE_PATH_BYTES) {
    throw new FsError('ENAMETOOLONG', input.slice(0, 64) + '...', `path longer than ${MAX_NAMESPACE_PATH_BYTES} bytes`);
  }
  const segments = input.split('/').filter((s) => s.length > 0);
  for (const seg of segments) {
    if (seg === '.' || seg === '..') throw new FsError('EINVAL', input, `path contains a '${seg}' segment`);
    if (seg.length > MAX_NAME_BYTES / 4 && byteLength(seg) > MAX_NAME_BYTES) {
      throw new FsError('ENAMETOOLONG', input, `name longer than ${MAX_NAME_BYTES} bytes`);
    }
  }
  return '/' + segments.join('/');
}

/** Splits a normalised path into its segments (`/` gives []). */
export function segmentsOf(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

export function joinPath(base: string, ...names: string[]): string {
  let out = base;
  for (const name of names) {
    if (name === '' || name === '/') continue;
    const trimmed = name.replace(/^\/+/, '');
    out = out === '/' ? '/' + trimmed : out + '/' + trimmed;
  }
  return out;
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** True when `path` is `prefix` or lies below it on a segment boundary (`/goalsX` is not under `/goals`). */
export function isUnder(path: string, prefix: string): boolean {
  if (prefix === '/') return true;
  return path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47 /* / */);
}

/** `path` relative to `prefix` as an absolute path (`/a/b` under `/a` is `/b`). Assumes isUnder. */
export function relativeTo(path: string, prefix: string): string {
  if (prefix === '/') return path;
  return path.length === prefix.length ? '/' : path.slice(prefix.length);
}

/** Validates a single name (a directory entry, an id in a path). */
export function validateName(name: string, where: string): string {
  if (!name || name.includes('/') || name === '.' || name === '..' || CONTROL.test(name)) {
    throw new FsError('EINVAL', printablePath(where), `invalid name '${printablePath(name)}'`);
  }
  if (name.length > MAX_NAME_BYTES / 4 && byteLength(name) > MAX_NAME_BYTES) throw new FsError('ENAMETOOLONG', where, `name longer than ${MAX_NAME_BYTES} bytes`);
  return name;
}
