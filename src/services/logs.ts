/**
 * /logs: the agent's trace, kept in the event log (bounded by its retention).
 * - `trace`: stream; each trace event as one JSON line `{id, time, type, ...}`, live from open;
 * - `recent`: view; the last 100 trace events as a JSON array;
 * - `trajectory`: view; every retained trace event as JSONL, oldest first;
 * - `query`: call; `{from?, to?, after?, types?, limit?}` answers the matching events as JSONL
 *   (`from`/`to`: ms since the epoch or ISO 8601, inclusive; `after`: an event id, exclusive).
 */
import { z } from 'zod';
import { JSON_LINES, SyntheticFs, call, dir, jsonView, stream, view } from '../fs/synthetic.js';
import type { EventRecord } from '../fs/events.js';
import type { FsEvent } from '../fs/types.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import { TRACE_PATH } from '../runtime/trace.js';
import { parseJsonObject, validate } from '../runtime/spec.js';

export const RECENT_COUNT = 100;

type Line = Record<string, unknown>;

function lineOf(ev: { id: number; time: number; data?: unknown }): Line {
  const data = ev.data && typeof ev.data === 'object' && !Array.isArray(ev.data) ? (ev.data as Record<string, unknown>) : { data: ev.data };
  return { id: ev.id, time: ev.time, ...data };
}

const jsonl = (recs: readonly EventRecord[]) => recs.map((r) => JSON.stringify(lineOf(r)) + '\n').join('');

const Time = z.union([z.number().int().min(0), z.iso.datetime({ offset: true }).transform((s) => Date.parse(s))]);
const QuerySchema = z
  .object({
    from: Time.optional(),
    to: Time.optional(),
    after: z.number().int().min(0).optional(),
    types: z.array(z.string()).max(100).optional(),
    limit: z.number().int().min(1).max(100_000).optional(),
  })
  .strict();

export function logsService(rt: AgentRuntime, id: string): SyntheticFs {
  const store = rt.storage.eventStore;
  const channel = rt.storage.events.channel(id, '/logs');
  return new SyntheticFs(
    dir({
      trace: stream((_cx, signal) => channel.subscribe('/trace', undefined, signal, { endsWithStream: true }), {
        format: (ev: FsEvent) => JSON.stringify(lineOf(ev)) + '\n',
      }),
      recent: jsonView(() => store.query(id, TRACE_PATH, { limit: RECENT_COUNT, newest: true }).filter((r) => r.type === 'data').map(lineOf)),
      trajectory: view(() => jsonl(store.query(id, TRACE_PATH).filter((r) => r.type === 'data')), { sizeAtStat: false, mediaType: JSON_LINES }),
    }),
    'logs',
  );
}

/** `/logs/query`, mounted on its own (read-write) so that the rest of /logs stays a read-only mount. */
export function logsQueryService(rt: AgentRuntime, id: string): SyntheticFs {
  const store = rt.storage.eventStore;
  return new SyntheticFs(
    call((req) => {
      const q = validate(QuerySchema, req.length ? parseJsonObject(req, '/') : {}, '/', 'query');
      const opts: { afterId?: number; fromTime?: number; toTime?: number } = {};
      if (q.after !== undefined) opts.afterId = q.after;
      if (q.from !== undefined) opts.fromTime = q.from;
      if (q.to !== undefined) opts.toTime = q.to;
      let recs = store.query(id, TRACE_PATH, opts).filter((r) => r.type === 'data');
      if (q.types) {
        const types = new Set(q.types);
        recs = recs.filter((r) => types.has(String((r.data as { type?: unknown } | undefined)?.type)));
      }
      if (q.limit !== undefined) recs = recs.slice(0, q.limit);
      return jsonl(recs);
    }),
    'logs',
  );
}
