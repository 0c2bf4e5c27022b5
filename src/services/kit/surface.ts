/**
 * The file surface every capability shares, built from SyntheticFs nodes:
 *
 *   new                            call: a request (JSON) -> the answer of the engine's submit
 *   <kind>/                        one directory per record of this agent (`jobs/`, `sessions/`)
 *   <kind>/<id>/{status,result,ctl,stream|output,...}   the record's files (recordMeta, recordStream)
 *   providers/<id>/{info,health,...}                    views of each provider
 *   policy                         view, writable (admin-write where mounted): what was written over the defaults
 *   usage                          view: budget windows and the service's counts
 *
 * The engine says what each file holds; the shape of the tree, the call's completion rule, the
 * policy file and the replay of a record's stream from its beginning are the same for every capability.
 */
import { jsonText, utf8 } from '../../fs/bytes.js';
import type { EventChannel } from '../../fs/events.js';
import { placeAnswerPaths, type Cx, type FsEvent } from '../../fs/types.js';
import { call, completeJsonObject, dir, jsonView, message, parseJson, stream, type DirNode, type Node, type NodeMeta, type StreamNode } from '../../fs/synthetic.js';
import type { Storage } from '../../runtime/storage/index.js';
import type { PolicyEntry } from './policy-store.js';

export interface CapabilitySurface {
  /** What `new` does with a request; its answer is the file's content (JSON). */
  submit(request: Uint8Array): Promise<unknown>;
  /** The records' directory: its name and, per id, the record's files. */
  records: { name: string; ids(): string[]; get(id: string): DirNode | undefined };
  /** Each provider's views (`info`, `health`, ...), by provider id. */
  providers: { ids(): string[]; views(id: string): Record<string, (cx: Cx) => unknown> | undefined };
  policy: { entry(): PolicyEntry<object>; write(value: unknown): void };
  usage(): unknown;
}

/** The root of a capability's tree; engines add their own entries through `extra`. */
export function capabilityRoot(s: CapabilitySurface, extra: Record<string, DirNode> = {}): DirNode {
  return dir({
    // Sent by the write that completes the JSON object: `echo '{...}' > new` then reports a refusal.
    // Its answer's paths are named as the caller names them (valid where the call was made).
    new: call(async (request, cx) => jsonText(placeAnswerPaths(await s.submit(request), cx)), { complete: completeJsonObject }),
    [s.records.name]: { kind: 'dir', dynamic: { list: () => s.records.ids(), get: (id) => s.records.get(id) } },
    providers: {
      kind: 'dir',
      dynamic: {
        list: () => s.providers.ids(),
        get: (id) => {
          const views = s.providers.views(id);
          return views ? dir(Object.fromEntries(Object.entries(views).map(([name, read]) => [name, jsonView(read)]))) : undefined;
        },
      },
    },
    policy: jsonView(() => s.policy.entry().policy, {
      write: (data) => s.policy.write(parseJson(data, '/policy')),
      version: () => s.policy.entry().version,
      mtime: () => s.policy.entry().updatedAt || Date.now(),
    }),
    usage: jsonView(() => s.usage()),
    ...extra,
  });
}

/** A record's version and mtime for its files' stat, read fresh each time (`created` once it is gone). */
export function recordMeta(stamp: () => { version: number; updatedAt: number } | undefined, created: number): Required<Pick<NodeMeta, 'version' | 'mtime'>> {
  return { version: () => stamp()?.version ?? 0, mtime: () => stamp()?.updatedAt ?? created };
}

export interface RecordFilesSpec<R> {
  /** The record's directory under the mount (`/jobs/<id>`), for the paths errors name. */
  base: string;
  /** The record as it is now; ENOENT at `path` once it is gone. */
  fresh(path: string): R;
  meta: Required<Pick<NodeMeta, 'version' | 'mtime'>>;
  status(rec: R): unknown;
  /** The outcome; EAGAIN "not ready" until the record is finished. */
  result(rec: R, path: string): unknown;
  /** Whether waiting for the result is bounded (a job, an exec, an ephemeral session): a blocking read then waits for it. */
  bounded(rec: R): boolean;
  /** The agent's event channel: a reader waiting for the result wakes at each change of the record. */
  channel: EventChannel;
  /** The record's stream file (`stream`, `output`): its events from the beginning, its mtime, where it starts and whether it ended. */
  stream: { events: StreamNode['events']; mtime: () => number; finite: NonNullable<StreamNode['finite']> };
  /** One command of `ctl` (a line, trimmed): EINVAL unless it is one. Checked at the write that completes the line. */
  checkCtl(command: string, path: string): void;
  /** Runs one command written to `ctl`. */
  ctl(command: string, path: string): Promise<void>;
}

/** The files every record has: `status`, `result`, its stream, `ctl` (the caller names and orders them in its directory). */
export function recordFiles<R>(o: RecordFilesSpec<R>): { status: Node; result: Node; stream: Node; ctl: Node } {
  return {
    status: jsonView(() => o.status(o.fresh(`${o.base}/status`)), o.meta),
    result: jsonView(() => o.result(o.fresh(`${o.base}/result`), `${o.base}/result`), {
      ...o.meta,
      ready: {
        wait: (_cx, signal) => nextChange(o.channel, o.base, signal),
        bounded: () => o.bounded(o.fresh(`${o.base}/result`)),
      },
    }),
    stream: stream(o.stream.events, { mtime: o.stream.mtime, finite: o.stream.finite }),
    ctl: message((data) => runCommands(utf8(data), `${o.base}/ctl`, o), { checkLine: (line) => o.checkCtl(line, `${o.base}/ctl`) }),
  };
}

/** How long a reader waiting for a result sleeps at most before it looks again (a change it missed). */
const RESULT_POLL_MS = 1000;

/**
 * Resolves at the next event under `rel` (the record changed: a status, a chunk, its end), after
 * RESULT_POLL_MS at the latest, or when `signal` aborts.
 */
async function nextChange(channel: EventChannel, rel: string, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  const ac = new AbortController();
  const stop = () => ac.abort();
  const timer = setTimeout(stop, RESULT_POLL_MS);
  signal.addEventListener('abort', stop);
  try {
    for await (const _ of channel.subscribe(rel, undefined, ac.signal)) break;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', stop);
    ac.abort();
  }
}

/** A `ctl` message: one command per line, all checked before the first runs; none is the command's usage error. */
async function runCommands(text: string, path: string, o: Pick<RecordFilesSpec<unknown>, 'checkCtl' | 'ctl'>): Promise<void> {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  if (lines.length === 0) lines.push('');
  for (const line of lines) o.checkCtl(line, path);
  for (const line of lines) await o.ctl(line, path);
}

export interface RecordStreamOptions {
  storage: Storage;
  channel: EventChannel;
  agentId: string;
  /** The stream's path under the mount (`/jobs/<id>/stream`). */
  rel: string;
  /** The event id before the record's first stream event. */
  streamFrom: number;
  finished: boolean;
  /** What retention dropped of a finished record's stream, rebuilt from the record. */
  replay: () => Iterable<FsEvent>;
  /** A finished record's stream is read from its stored events by path (no live subscription). */
  storedWhenFinished?: boolean;
  signal: AbortSignal;
}

/**
 * A record's stream from its beginning: the events recorded since `streamFrom`, then live ones until
 * `end`. When retention already dropped part of a finished record's events, the record is replayed.
 */
export async function* recordStream(o: RecordStreamOptions): AsyncGenerator<FsEvent> {
  const events = o.storage.eventStore;
  if (o.finished && events.watermark([o.agentId]) > o.streamFrom) {
    yield* o.replay();
    return;
  }
  if (o.finished && o.storedWhenFinished) {
    const path = o.channel.absolute(o.rel);
    for (const rec of events.query(o.agentId, path, { afterId: o.streamFrom })) {
      yield { id: rec.id, type: rec.type, path, time: rec.time, ...(rec.data !== undefined ? { data: rec.data } : {}) };
      if (rec.type === 'end') return;
    }
    return;
  }
  yield* o.channel.subscribe(o.rel, o.streamFrom, o.signal, { endsWithStream: true });
}
