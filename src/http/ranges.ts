/**
 * Byte ranges of data files (RFC 9110 section 14): `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` give
 * 206 with that part and its `Content-Range`; a range that starts past the end is 416, whose
 * `Content-Range` gives the file's size.
 * A request for several ranges, or a Range header this does not parse, gets the whole file (200), as
 * the RFC lets a server do; so does one whose `If-Range` no longer matches the file.
 */
import type { FastifyRequest } from 'fastify';
import type { Stat } from '../fs/types.js';
import { httpDate, tagVersion } from './file-headers.js';

/** The part of the file to send, or `unsatisfiable`, or undefined: send it whole. */
export type RangeChoice = { start: number; end: number } | 'unsatisfiable' | undefined;

/** One `bytes=` range of a file of `size` bytes, end inclusive; undefined when the header is not one such range. */
export function parseRange(header: string, size: number): RangeChoice {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, first, last] = m as unknown as [string, string, string];
  if (first === '' && last === '') return undefined;
  if (first === '') {
    // The last n bytes; `-0` asks for none of them.
    const n = Number(last);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Number(last);
  if (end < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}

/** `If-Range` holds when it names the file's current ETag (strongly) or its Last-Modified date exactly. */
function ifRangeHolds(value: string, st: Stat): boolean {
  const v = value.trim();
  if (v.startsWith('"') || /^\d+$/.test(v)) return tagVersion(v) === st.version;
  return v === httpDate(st.mtime);
}

/** What a GET of a data file with this stat sends, by its Range and If-Range headers. */
export function chooseRange(request: FastifyRequest, st: Stat): RangeChoice {
  const header = request.headers.range;
  if (header === undefined) return undefined;
  const ifRange = request.headers['if-range'];
  if (typeof ifRange === 'string' && !ifRangeHolds(ifRange, st)) return undefined;
  return parseRange(header, st.size);
}
