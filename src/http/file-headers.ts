/**
 * A file's metadata in HTTP terms: its stat as headers (ETag is the version), listings as JSON, and
 * the preconditions (If-Match / If-None-Match) a write must meet.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { FsError } from '../fs/errors.js';
import type { Cx, DirEntry, FileService, Stat } from '../fs/types.js';

export const etagOf = (st: Stat): string => `"${st.version}"`;

/** HTTP dates of recent mtimes: the same file read again formats no date. */
const httpDates = new Map<number, string>();
export function httpDate(ms: number): string {
  let d = httpDates.get(ms);
  if (d === undefined) {
    d = new Date(ms).toUTCString();
    if (httpDates.size >= 1024) httpDates.clear();
    httpDates.set(ms, d);
  }
  return d;
}

/** Stat as headers, for HEAD and beside every write. */
export function statHeaders(reply: FastifyReply, st: Stat): FastifyReply {
  reply
    .header('etag', etagOf(st))
    .header('last-modified', httpDate(st.mtime))
    .header('x-agent9-type', st.type)
    .header('x-agent9-kind', st.kind)
    .header('x-agent9-size', String(st.size))
    .header('x-agent9-mode', st.mode.toString(8).padStart(4, '0'))
    .header('x-agent9-version', String(st.version))
    .header('x-agent9-mtime', String(st.mtime))
    .header('x-agent9-ctime', String(st.ctime));
  if (st.nlink !== undefined) reply.header('x-agent9-nlink', String(st.nlink));
  if (st.ino !== undefined) reply.header('x-agent9-ino', String(st.ino));
  if (st.target !== undefined) reply.header('x-agent9-target', encodeURIComponent(st.target));
  return reply;
}

export function listingJson(entries: DirEntry[]): string {
  const rows = entries
    .map((e) => ({
      name: e.name,
      type: e.stat.type,
      kind: e.stat.kind,
      size: e.stat.size,
      mode: e.stat.mode,
      mtime: e.stat.mtime,
      ctime: e.stat.ctime,
      version: e.stat.version,
      ...(e.stat.nlink !== undefined ? { nlink: e.stat.nlink } : {}),
      ...(e.stat.ino !== undefined ? { ino: e.stat.ino } : {}),
      ...(e.stat.target !== undefined ? { target: e.stat.target } : {}),
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return JSON.stringify(rows) + '\n';
}

/** Parses one entity tag (`"5"`, `5`); weak tags never match (If-Match uses strong comparison). */
export function tagVersion(tag: string): number | undefined {
  const t = tag.trim();
  const m = /^"?(\d{1,15})"?$/.exec(t);
  return m ? Number(m[1]) : undefined;
}

/** The version a write must find, from If-Match / If-None-Match; ESTALE (412) when it cannot hold. */
export async function precondition(request: FastifyRequest, view: FileService, path: string, cx: Cx): Promise<number | undefined> {
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== '*') throw new FsError('EINVAL', path, 'If-None-Match on a write must be *');
    return 0;
  }
  const ifMatch = request.headers['if-match'];
  if (ifMatch === undefined) return undefined;
  const current = await view.stat(path, cx).then(
    (st) => st.version,
    (err: unknown) => {
      if (err instanceof FsError && err.code === 'ENOENT') return undefined;
      throw err;
    },
  );
  if (ifMatch.trim() === '*') {
    if (current === undefined) throw new FsError('ESTALE', path, 'If-Match: * but the file does not exist');
    return current;
  }
  const wanted = ifMatch.split(',').map(tagVersion);
  if (current === undefined) throw new FsError('ESTALE', path, `version is none (no such file), not ${ifMatch.trim()}`);
  if (!wanted.includes(current)) throw new FsError('ESTALE', path, `version is ${current}, not ${ifMatch.trim()}`);
  return current;
}

export function parseCursor(text: string | undefined | null, path: string, what: string): number | undefined {
  if (text === undefined || text === null || text === '') return undefined;
  if (!/^\d{1,15}$/.test(text.trim())) throw new FsError('EINVAL', path, `${what} must be an event id (a non-negative integer)`);
  return Number(text.trim());
}

export function parseMode(text: string | null, path: string): number | undefined {
  if (text === null) return undefined;
  if (!/^0?[0-7]{3,4}$/.test(text)) throw new FsError('EINVAL', path, `mode must be octal permission bits like 0644, not '${text}'`);
  return parseInt(text, 8) & 0o7777;
}

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
