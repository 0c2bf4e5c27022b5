/**
 * The streamed export bundle, version 2 (CONTRACT section 8): JSON lines. A header line, then one record
 * per line, then an `end` record that counts them. Large contents (memory files, work dir files) follow
 * their file's record as `data` lines of base64, so no line is ever larger than a chunk: export writes and
 * import reads a bundle of any size line by line, never holding it whole.
 */
import { z } from 'zod';
import { FsError } from '../fs/errors.js';

export const BUNDLE_FORMAT = 'agent9.agent';
export const BUNDLE_V2 = 2;
/** Raw bytes per `data` line (base64 makes it a third larger). */
export const DATA_CHUNK = 192 * 1024;
/** The longest line an import accepts (program state and kv values are at most a few MiB). */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

const Envelope = z.looseObject({ id: z.string() });

export const HeaderSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  version: z.literal(BUNDLE_V2),
  exported_at: z.number(),
  agent: z.looseObject({ id: z.string(), state: z.string(), program: z.string() }),
});
export type BundleHeader = z.infer<typeof HeaderSchema>;

/** What an import may say before the header: another name, a fresh identity. */
export const ImportOptionsSchema = z.object({ id: z.string().optional(), new_identity: z.boolean().optional() }).strict();
export type ImportOptions = z.infer<typeof ImportOptionsSchema>;

const FileRecord = {
  path: z.string(),
  type: z.enum(['file', 'dir']),
  mode: z.number().int().min(0).max(0o7777),
  mtime: z.number(),
  size: z.number().int().min(0),
};

/**
 * A memory record may also be a symbolic link (`target`, its text), a FIFO or socket node, or one more
 * name of a hard-linked file (`of`: the path of that file's own record, which may come later). Bundles
 * written before these existed hold files and directories only, and read the same.
 */
const MemoryRecord = {
  ...FileRecord,
  type: z.enum(['file', 'dir', 'symlink', 'fifo', 'socket', 'hardlink']),
  target: z.string().min(1).max(4095).optional(),
  of: z.string().optional(),
};

export const RecordSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('state'), version: z.number().int(), data: z.unknown() }),
  z.object({ t: z.literal('kv'), key: z.string(), value: z.unknown() }),
  z.object({ t: z.literal('inbox'), seq: z.number().int(), envelope: Envelope, attempts: z.number().int(), last_error: z.string().nullable() }),
  z.object({
    t: z.literal('deadletter'),
    seq: z.number().int(),
    envelope: Envelope,
    reason: z.string(),
    error: z.string().nullable(),
    attempts: z.number().int(),
    at: z.number(),
  }),
  z.object({ t: z.literal('outbox'), seq: z.number().int(), envelope: Envelope }),
  z.object({ t: z.literal('goal'), id: z.string(), goal: z.unknown(), version: z.number().int(), created_at: z.number(), updated_at: z.number() }),
  z.object({ t: z.literal('seen'), ids: z.array(z.string()) }),
  z.object({ t: z.literal('identity'), pubkey: z.string(), sealed: z.string(), key_id: z.string() }),
  z.object({ t: z.literal('event'), type: z.string(), path: z.string(), time: z.number(), version: z.number().optional(), data: z.unknown().optional() }),
  z.object({ t: z.literal('memory'), ...MemoryRecord }),
  z.object({ t: z.literal('work'), ...FileRecord }),
  z.object({ t: z.literal('data'), data: z.string() }),
  z.object({ t: z.literal('end'), records: z.number().int() }),
]);
export type BundleRecord = z.infer<typeof RecordSchema>;
export type FileEntryRecord = Extract<BundleRecord, { t: 'memory' | 'work' }>;

/** One line of the bundle. */
export function line(value: unknown): string {
  return JSON.stringify(value) + '\n';
}

// A name from a bundle is data from anywhere: only plain names below the root are ever written.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The segments of a path a bundle names, or EINVAL naming the bundle's path: no empty, `.` or `..`
 * segment, no NUL or control character; memory paths are absolute ('/a/b'), work dir paths relative ('a/b').
 */
export function bundlePathSegments(name: string, kind: 'memory' | 'work', where: string): string[] {
  const bad = (why: string) => new FsError('EINVAL', where, `${kind} path ${JSON.stringify(name)} ${why}`);
  if (CONTROL.test(name)) throw bad('holds a NUL or control character');
  if (kind === 'memory' && !name.startsWith('/')) throw bad('must be absolute');
  if (kind === 'work' && name.startsWith('/')) throw bad('must be relative to the work dir');
  if (name.length > 4096) throw bad('is longer than 4096 bytes');
  const segments = (kind === 'memory' ? name.slice(1) : name).split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..') throw bad(`has a '${s || '(empty)'}' segment`);
    if (Buffer.byteLength(s) > 255) throw bad('has a segment longer than 255 bytes');
  }
  return segments;
}
