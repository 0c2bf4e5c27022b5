/**
 * Export and import of one agent as a single JSON bundle: its row (config, lifecycle, counters, schedule),
 * program state, kv, inbox, deadletter, outbox, goals, seen cache, memory files, identity key (sealed
 * under the server key, never in clear) and retained event log. Export reads one consistent snapshot;
 * import writes everything in one transaction.
 */
import { z } from 'zod';
import { FsError } from '../fs/errors.js';
import type { DataNode } from '../fs/datafs.js';
import type { AgentRuntime } from './agent-runtime.js';
import { memoryTree } from './agents.js';
import { checkAgentId, validate, type Envelope } from './spec.js';
import type { AgentRow } from './agent-store/index.js';

export const BUNDLE_FORMAT = 'agent9.agent';
export const BUNDLE_VERSION = 1;

const MemoryEntry = z.object({
  path: z.string().startsWith('/'),
  type: z.enum(['file', 'dir']),
  mode: z.number().int(),
  mtime: z.number(),
  data: z.string().optional(),
});

const BundleSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  version: z.literal(BUNDLE_VERSION),
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
export type Bundle = z.infer<typeof BundleSchema>;

/** The columns a bundle may restore (all of the agents table but its key). */
const AGENT_COLUMNS: readonly (keyof AgentRow)[] = [
  'state', 'program', 'env', 'limits', 'schedule', 'inbox_policy', 'created_at', 'updated_at', 'last_tick_at',
  'last_tick_cause', 'last_tick_ms', 'last_error', 'tick_count', 'ticks_failed', 'consecutive_failures', 'tick_ms_total',
  'queue_depth', 'deadletter_depth', 'inbox_seq', 'inbox_version', 'inbox_mtime', 'deadletter_seq', 'outbox_seq',
  'seen_seq', 'enqueued', 'delivered', 'duplicates', 'dropped', 'deadlettered', 'discarded', 'rejected', 'replayed',
  'messages_out', 'next_alarm', 'next_run', 'retry_at',
];

export function exportBundle(rt: AgentRuntime, id: string, path: string): Bundle {
  const { store, storage } = rt;
  // One read transaction: every table seen at the same moment.
  return storage.tx((): Bundle => {
    const row = store.getAgent(id);
    if (!row) throw new FsError('ENOENT', path, `no agent '${id}'`);
    const state = store.getState(id);
    const tree = memoryTree(id);
    const memory: z.infer<typeof MemoryEntry>[] = [];
    const walk = (dir: string) => {
      for (const n of storage.dataFiles.children(tree, dir) as DataNode[]) {
        const entry: z.infer<typeof MemoryEntry> = { path: n.path, type: n.type, mode: n.mode, mtime: n.mtime };
        if (n.type === 'file') entry.data = Buffer.from(storage.dataFiles.read(tree, n.id, 0, n.size)).toString('base64');
        memory.push(entry);
        if (n.type === 'dir') walk(n.path);
      }
    };
    if (storage.dataFiles.lookup(tree, '/')) walk('/');
    return {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      exported_at: Date.now(),
      agent: { ...row },
      state: state ? { version: state.version, data: JSON.parse(state.data) } : null,
      kv: Object.fromEntries(store.kvList(id).map((r) => [r.key, JSON.parse(r.value)])),
      inbox: store.inboxHead(id, 1_000_000).map((r) => ({ seq: r.seq, envelope: JSON.parse(r.body), attempts: r.attempts, last_error: r.last_error })),
      deadletter: store.deadletterList(id).map((r) => ({ seq: r.seq, envelope: JSON.parse(r.body), reason: r.reason, error: r.error, attempts: r.attempts, at: r.at })),
      outbox: store.outboxList(id).map((r) => ({ seq: r.seq, envelope: JSON.parse(r.body) })),
      goals: store.goalList(id).map((g) => ({ id: g.goal_id, goal: JSON.parse(g.body), version: g.version, created_at: g.created_at, updated_at: g.updated_at })),
      seen: store.seenIds(id),
      memory,
      identity: rt.keys.exportSealed(id) ?? null,
      events: storage.eventStore.query(id, undefined).map((e) => {
        const ev: Bundle['events'][number] = { type: e.type, path: e.path, time: e.time };
        if (e.version !== undefined) ev.version = e.version;
        if (e.data !== undefined) ev.data = e.data;
        return ev;
      }),
    };
  });
}

const ImportRequest = z.object({ id: z.string().optional(), new_identity: z.boolean().optional(), bundle: z.unknown() }).strict();

/**
 * Imports a bundle: the request is the bundle itself, or `{id?, new_identity?, bundle}` to import under
 * another name or with a fresh identity key (when the bundle came from a server with another key).
 */
export function importBundle(rt: AgentRuntime, request: unknown, path: string): string {
  let target: string | undefined;
  let newIdentity = false;
  let raw = request;
  if (request && typeof request === 'object' && 'bundle' in request) {
    const r = validate(ImportRequest, request, path, 'import request');
    target = r.id;
    newIdentity = r.new_identity ?? false;
    raw = r.bundle;
  }
  const b = validate(BundleSchema, raw, path, 'bundle');
  const id = checkAgentId(target ?? b.agent.id, path);
  const program = rt.programs.validate(JSON.parse(String(b.agent.program)), path);
  const now = Date.now();
  const { store, storage } = rt;
  rt.agents.adopt(id, () => {
    if (store.hasAgent(id)) throw new FsError('EEXIST', path, `agent '${id}' already exists`);
    const row: Record<string, unknown> = { id };
    for (const col of AGENT_COLUMNS) if (col in b.agent) row[col] = b.agent[col];
    row['program'] = JSON.stringify(program);
    row['queue_depth'] = b.inbox.length;
    row['deadletter_depth'] = b.deadletter.length;
    row['seen_seq'] = b.seen.length;
    store.importAgentRow(row);
    if (b.state) store.importState(id, b.state.version, JSON.stringify(b.state.data));
    for (const [k, v] of Object.entries(b.kv)) store.kvSet(id, k, JSON.stringify(v));
    for (const q of b.inbox) {
      const env = q.envelope as unknown as Envelope;
      store.insertInbox(id, q.seq, env.id, String(env.from ?? 'unknown'), Number(env.created_at ?? now), JSON.stringify(env), q.attempts, q.last_error);
    }
    for (const d of b.deadletter) store.deadletterImport(id, d.seq, d.envelope.id, JSON.stringify(d.envelope), d.reason, d.error, d.attempts, d.at);
    for (const o of b.outbox) {
      store.outboxImport(id, o.seq, o.envelope.id, JSON.stringify(o.envelope), Number((o.envelope as { created_at?: unknown }).created_at ?? now));
    }
    for (const g of b.goals) store.goalImport(id, { goal_id: g.id, body: JSON.stringify(g.goal), version: g.version, created_at: g.created_at, updated_at: g.updated_at });
    store.seenImport(id, b.seen);
    if (b.identity && !newIdentity) rt.keys.importSealed(id, b.identity, now, path);
    else rt.keys.create(id, now);
    for (const e of b.events) {
      const rec: Parameters<typeof storage.eventStore.append>[0] = { scope: id, path: e.path, type: e.type as never, time: e.time };
      if (e.version !== undefined) rec.version = e.version;
      if (e.data !== undefined) rec.data = e.data;
      storage.eventStore.append(rec);
    }
    const tree = memoryTree(id);
    storage.dataFiles.dropTree(tree);
    for (const m of b.memory) {
      const spec = { type: m.type, mode: m.mode, uid: 0, gid: 0, exclusive: false };
      if (m.type === 'dir') storage.dataFiles.create(tree, m.path, { ...spec, exclusive: true });
      else storage.dataFiles.replace(tree, m.path, Uint8Array.from(Buffer.from(m.data ?? '', 'base64')), spec);
    }
    // Times last: creating children touched their directories.
    for (const m of [...b.memory].reverse()) storage.dataFiles.setattr(tree, m.path, { mtime: m.mtime });
    rt.tracer.emit(id, { type: 'imported', from: b.agent.id, exported_at: b.exported_at, new_identity: newIdentity || !b.identity });
  });
  return id;
}
