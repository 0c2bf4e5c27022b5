/**
 * Version 1 of the export bundle: one JSON document (what v0.1.0 wrote), kept so that its bundles still
 * import. Export writes version 2 (bundle-format.ts); a v1 bundle is read whole (as v0.1.0 did, up to
 * MAX_V1_BUNDLE_BYTES) and turned into the same records a v2 bundle holds, then staged the same way.
 */
import { z } from 'zod';
import { BUNDLE_FORMAT, BUNDLE_V2, DATA_CHUNK, type BundleHeader, type BundleRecord, type ImportOptions } from './bundle-format.js';
import { validate } from './spec.js';
import type { AgentRow } from './agent-store/index.js';

export const BUNDLE_VERSION_1 = 1;
export const MAX_V1_BUNDLE_BYTES = 512 * 1024 * 1024;

const MemoryEntry = z.object({
  path: z.string().startsWith('/'),
  type: z.enum(['file', 'dir']),
  mode: z.number().int(),
  mtime: z.number(),
  data: z.string().optional(),
});

const BundleSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  version: z.literal(BUNDLE_VERSION_1),
  exported_at: z.number(),
  agent: z.looseObject({ id: z.string(), state: z.string(), program: z.string() }),
  state: z.object({ version: z.number().int(), data: z.unknown() }).nullable(),
  kv: z.record(z.string(), z.unknown()),
  inbox: z.array(z.object({ seq: z.number().int(), envelope: z.looseObject({ id: z.string() }), attempts: z.number().int(), last_error: z.string().nullable() })),
  deadletter: z.array(
    z.object({ seq: z.number().int(), envelope: z.looseObject({ id: z.string() }), reason: z.string(), error: z.string().nullable(), attempts: z.number().int(), at: z.number() }),
  ),
  outbox: z.array(z.object({ seq: z.number().int(), envelope: z.looseObject({ id: z.string() }) })),
  goals: z.array(z.object({ id: z.string(), goal: z.unknown(), version: z.number().int(), created_at: z.number(), updated_at: z.number() })),
  seen: z.array(z.string()),
  memory: z.array(MemoryEntry),
  identity: z.object({ pubkey: z.string(), sealed: z.string(), key_id: z.string() }).nullable(),
  events: z.array(z.object({ type: z.string(), path: z.string(), time: z.number(), version: z.number().optional(), data: z.unknown().optional() })),
});
export type BundleV1 = z.infer<typeof BundleSchema>;

/** The columns a bundle may restore (all of the agents table but its key). */
export const AGENT_COLUMNS: readonly (keyof AgentRow)[] = [
  'state', 'program', 'env', 'limits', 'schedule', 'inbox_policy', 'created_at', 'updated_at', 'last_tick_at',
  'last_tick_cause', 'last_tick_ms', 'last_error', 'tick_count', 'ticks_failed', 'consecutive_failures', 'tick_ms_total',
  'queue_depth', 'deadletter_depth', 'inbox_seq', 'inbox_version', 'inbox_mtime', 'deadletter_seq', 'outbox_seq',
  'seen_seq', 'enqueued', 'delivered', 'duplicates', 'dropped', 'deadlettered', 'discarded', 'rejected', 'replayed',
  'messages_out', 'next_alarm', 'next_run', 'retry_at',
];

const ImportRequest = z.object({ id: z.string().optional(), new_identity: z.boolean().optional(), bundle: z.unknown() }).strict();

/**
 * A v1 import request (the bundle itself, or `{id?, new_identity?, bundle}`) as the header, options and
 * records of a v2 bundle; EINVAL naming `path` when it is not one.
 */
export function fromV1(request: unknown, path: string): { header: BundleHeader; options: ImportOptions; records: Generator<BundleRecord> } {
  const options: ImportOptions = {};
  let raw = request;
  if (request && typeof request === 'object' && 'bundle' in request) {
    const r = validate(ImportRequest, request, path, 'import request');
    if (r.id !== undefined) options.id = r.id;
    if (r.new_identity !== undefined) options.new_identity = r.new_identity;
    raw = r.bundle;
  }
  const b = validate(BundleSchema, raw, path, 'bundle');
  const header: BundleHeader = { format: BUNDLE_FORMAT, version: BUNDLE_V2, exported_at: b.exported_at, agent: b.agent };
  return { header, options, records: v1Records(b) };
}

function* v1Records(b: BundleV1): Generator<BundleRecord> {
  let n = 0;
  const count = <T>(r: T): T => {
    n++;
    return r;
  };
  if (b.state) yield count({ t: 'state', version: b.state.version, data: b.state.data });
  for (const [key, value] of Object.entries(b.kv)) yield count({ t: 'kv', key, value });
  for (const q of b.inbox) yield count({ t: 'inbox', ...q });
  for (const d of b.deadletter) yield count({ t: 'deadletter', ...d });
  for (const o of b.outbox) yield count({ t: 'outbox', ...o });
  for (const g of b.goals) yield count({ t: 'goal', ...g });
  for (let i = 0; i < b.seen.length; i += 1000) yield count({ t: 'seen', ids: b.seen.slice(i, i + 1000) });
  if (b.identity) yield count({ t: 'identity', ...b.identity });
  for (const e of b.events) yield count({ t: 'event', ...e });
  for (const m of b.memory) {
    const bytes = m.type === 'file' ? Buffer.from(m.data ?? '', 'base64') : Buffer.alloc(0);
    yield count({ t: 'memory', path: m.path, type: m.type, mode: m.mode, mtime: m.mtime, size: bytes.length });
    for (let off = 0; off < bytes.length; off += DATA_CHUNK) yield count({ t: 'data', data: bytes.subarray(off, off + DATA_CHUNK).toString('base64') });
  }
  yield { t: 'end', records: n };
}
