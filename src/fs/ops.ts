/** Whole-file operations over any FileService: what HTTP, the CLI and tests do in one call. */
import { concatBytes, copyBytes, EMPTY, toBytes, type Content } from './bytes.js';
import { FsError } from './errors.js';
import type { Cx, FileService, OpenFlags, Stat, StatAndData, WriteFileOptions } from './types.js';

const READ_CHUNK = 128 * 1024;

/** Reads a handle to its end (a stream: until it ends). */
export async function readAll(fs: FileService, path: string, cx: Cx, limit = Infinity): Promise<Uint8Array> {
  if (fs.readFile && limit === Infinity) return fs.readFile(path, cx);
  const handle = await fs.open(path, { read: true }, cx);
  try {
    return await drain(handle, limit);
  } finally {
    await handle.close();
  }
}

async function drain(handle: { read(len: number, off: number): Promise<Uint8Array> }, limit = Infinity): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (;;) {
    const chunk = await handle.read(READ_CHUNK, offset);
    if (chunk.length === 0) break;
    parts.push(copyBytes(chunk));
    offset += chunk.length;
    if (offset >= limit) break;
  }
  return parts.length === 0 ? EMPTY : concatBytes(parts, offset);
}

/**
 * Writes a whole file (create or replace), or appends one message with `append`: in one step when the
 * service offers writeFile, else through open/write/flush/close. `ifVersion` guards it (ESTALE).
 */
export async function writeAll(
  fs: FileService,
  path: string,
  data: Content,
  cx: Cx,
  opts: WriteFileOptions = {},
): Promise<Stat | undefined> {
  const bytes = toBytes(data);
  if (fs.writeFile) return fs.writeFile(path, bytes, opts, cx);
  if (opts.ifVersion !== undefined) {
    const current = await fs.stat(path, cx).then((st) => st.version, () => 0);
    if (current !== opts.ifVersion) throw new FsError('ESTALE', path, `version is ${current}, not ${opts.ifVersion}`);
  }
  const flags: OpenFlags = { write: true, create: true, truncate: !opts.append, append: !!opts.append };
  if (opts.mode !== undefined) flags.mode = opts.mode;
  const handle = await fs.open(path, flags, cx);
  try {
    if (bytes.length > 0) await handle.write(bytes, 0);
    await handle.flush();
  } finally {
    await handle.close();
  }
  return fs.stat(path, cx).catch(() => undefined);
}

/** Stat plus, where the service has it at hand (data files), the whole content, in one step. */
export function readStat(fs: FileService, path: string, cx: Cx): Promise<StatAndData> {
  return fs.readStat ? fs.readStat(path, cx) : fs.stat(path, cx).then((stat) => ({ stat }));
}

/** The call pattern: write a request, then read the answer on the same handle. */
export async function callFile(fs: FileService, path: string, request: Content, cx: Cx): Promise<Uint8Array> {
  const handle = await fs.open(path, { read: true, write: true }, cx);
  try {
    const bytes = toBytes(request);
    if (bytes.length > 0) await handle.write(bytes, 0);
    return await drain(handle);
  } finally {
    await handle.close();
  }
}
