/**
 * Reading a file for an MCP client, the way `GET /p` reads it (same FileService calls), bounded so that
 * one answer stays a sensible size for a language model: a directory is its listing; a data file or view
 * its bytes (from `offset`, at most `length`, 1 MiB by default: `truncated` says there is more); a stream
 * is read until it ends or `timeoutMs` passes (`ended` says which), since a stream such as `logs/trace`
 * may never end.
 */
import { concatBytes, copyBytes } from '../fs/bytes.js';
import { readStat } from '../fs/ops.js';
import type { Cx, DirEntry, FileService, Handle, Stat } from '../fs/types.js';

export const DEFAULT_READ_BYTES = 1024 * 1024;
export const DEFAULT_STREAM_MS = 5000;
const READ_CHUNK = 256 * 1024;

export interface ReadOptions {
  offset?: number;
  length?: number;
  /** How long a stream is followed before what arrived is returned. */
  timeoutMs?: number;
}

export type Content =
  | { stat: Stat; listing: DirEntry[] }
  | { stat: Stat; bytes: Uint8Array; truncated: boolean; ended?: boolean };

export async function readContent(view: FileService, path: string, cx: Cx, opts: ReadOptions = {}): Promise<Content> {
  const offset = opts.offset ?? 0;
  const length = opts.length ?? DEFAULT_READ_BYTES;
  const { stat, data } = await readStat(view, path, cx);
  if (stat.type === 'dir') return { stat, listing: await view.readdir(path, cx) };
  // The common case, a small data file: stat and bytes from one snapshot, nothing opened.
  if (data) {
    const end = Math.min(data.length, offset + length);
    return { stat, bytes: data.subarray(Math.min(offset, end), end), truncated: end < data.length };
  }
  const handle = await view.open(path, { read: true }, cx);
  try {
    if (stat.kind === 'stream') return { stat, ...(await follow(handle, length, opts.timeoutMs ?? DEFAULT_STREAM_MS, cx.signal)) };
    return { stat, ...(await readRange(handle, offset, length)) };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function readRange(handle: Handle, offset: number, length: number): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const parts: Uint8Array[] = [];
  let got = 0;
  while (got < length) {
    const chunk = await handle.read(Math.min(READ_CHUNK, length - got), offset + got);
    if (chunk.length === 0) return { bytes: concatBytes(parts, got), truncated: false };
    parts.push(copyBytes(chunk));
    got += chunk.length;
  }
  // Exactly `length` read: one more byte says whether the file goes on.
  const more = await handle.read(1, offset + got);
  return { bytes: concatBytes(parts, got), truncated: more.length > 0 };
}

/** A stream read until its end, `length` bytes, or the deadline, whichever comes first. */
async function follow(handle: Handle, length: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<{ bytes: Uint8Array; truncated: boolean; ended: boolean }> {
  const parts: Uint8Array[] = [];
  let got = 0;
  const deadline = new Promise<'timeout'>((resolve) => {
    const t = setTimeout(() => resolve('timeout'), timeoutMs);
    t.unref?.();
    signal?.addEventListener('abort', () => resolve('timeout'), { once: true });
  });
  while (got < length) {
    // A read that loses the race is abandoned with the handle (closing it ends the read).
    const next = await Promise.race([handle.read(Math.min(READ_CHUNK, length - got), got), deadline]);
    if (next === 'timeout') return { bytes: concatBytes(parts, got), truncated: false, ended: false };
    if (next.length === 0) return { bytes: concatBytes(parts, got), truncated: false, ended: true };
    parts.push(copyBytes(next));
    got += next.length;
  }
  return { bytes: concatBytes(parts, got), truncated: true, ended: false };
}
