/**
 * The file surface as MCP tools, each the FileService calls an HTTP route makes for the same thing:
 *   list     GET /p/        read    GET /p          stat    HEAD /p
 *   write    PUT /p         append  POST /p?append=1 (on a message file: one message)
 *   mkdir    PUT /p/        remove  DELETE /p        call    POST /p (a call file: request, answer)
 *   watch    GET /p?watch=1 from a cursor, answered with the events that came within a time limit
 * Paths are the session's namespace paths; a relative one is taken from `/`.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { FsError } from '../fs/errors.js';
import { callFile, writeAll } from '../fs/ops.js';
import { normalizePath, segmentsOf } from '../fs/paths.js';
import type { Cx, FileService, FsEvent, Receipt, Stat, WriteFileOptions } from '../fs/types.js';
import { readContent } from './content.js';
import { asText, base64, jsonResult, mimeTypeOf, statJson } from './results.js';
import type { McpScope } from './session.js';
import { tool, type ToolDef } from './tool-table.js';
import { uriOf } from './uris.js';

/** A path argument: absolute, or relative to `/`; normalised and checked as every transport checks it. */
export function pathArg(path: string): string {
  return normalizePath(path.startsWith('/') ? path : `/${path}`);
}

const path = z.string().min(1).describe('a path of the namespace, e.g. /memory/notes.txt (relative paths start at /)');
const content = z.string().describe('what to write: text, or base64 with encoding "base64"');
const encoding = z.enum(['utf8', 'base64']).optional().describe('how `content` is encoded (default utf8)');
const mode = z
  .string()
  .regex(/^0?[0-7]{3,4}$/, 'an octal mode such as 0644')
  .optional()
  .describe('octal permission bits for a new file or directory, e.g. 0600');

function bytesOf(text: string, enc: 'utf8' | 'base64' | undefined): Uint8Array {
  return enc === 'base64' ? new Uint8Array(Buffer.from(text, 'base64')) : new TextEncoder().encode(text);
}

/** A write's Cx that keeps what the written file reported (an inbox: the envelope it queued). */
export function receiving(cx: Cx): { cx: Cx; receipt: () => Receipt | undefined } {
  let got: Receipt | undefined;
  return { cx: { ...cx, receipt: (r) => (got = r) }, receipt: () => got };
}

async function written(view: FileService, p: string, data: Uint8Array, cx: Cx, opts: WriteFileOptions): Promise<CallToolResult> {
  const answering = receiving(cx);
  const st: Stat | undefined = await writeAll(view, p, data, answering.cx, opts);
  const receipt = answering.receipt();
  const answer: Record<string, unknown> = st ? statJson(st, { path: p }) : { path: p };
  if (receipt) answer['receipt'] = receipt.value;
  return jsonResult(answer);
}

const list = tool({
  name: 'list',
  title: 'List a directory',
  description: 'The entries of a directory, sorted by name: name, type (file|dir), kind (data, view, message, call, stream, dir), size, mode, mtime, version.',
  schema: z.strictObject({ path }),
  annotations: { readOnlyHint: true },
  async run(args, { scope, cx }) {
    const p = pathArg(args.path);
    const entries = await scope.view.readdir(p, cx);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return jsonResult({ path: p, entries: entries.map((e) => statJson(e.stat, { name: e.name })) });
  },
});

const read = tool({
  name: 'read',
  title: 'Read a file',
  description:
    'The content of a file as text (base64 when it is not UTF-8), from `offset`, at most `length` bytes (1 MiB by default). ' +
    'A directory answers its listing. A stream file (a job stream, logs/trace) is followed until it ends or `timeout_ms` passes.',
  schema: z.strictObject({
    path,
    offset: z.number().int().min(0).optional().describe('first byte to read (data files and views)'),
    length: z.number().int().min(1).optional().describe('most bytes to read (default 1048576)'),
    timeout_ms: z.number().int().min(0).max(600_000).optional().describe('how long to follow a stream file (default 5000)'),
  }),
  annotations: { readOnlyHint: true },
  async run(args, { scope, cx }) {
    const p = pathArg(args.path);
    const got = await readContent(scope.view, p, cx, {
      ...(args.offset !== undefined ? { offset: args.offset } : {}),
      ...(args.length !== undefined ? { length: args.length } : {}),
      ...(args.timeout_ms !== undefined ? { timeoutMs: args.timeout_ms } : {}),
    });
    if ('listing' in got) return jsonResult({ path: p, entries: got.listing.map((e) => statJson(e.stat, { name: e.name })) });
    const meta: Record<string, unknown> = { path: p, kind: got.stat.kind, version: got.stat.version, size: got.stat.size, truncated: got.truncated };
    if (got.ended !== undefined) meta['ended'] = got.ended;
    const text = asText(got.bytes);
    if (text !== undefined) return { content: [{ type: 'text', text }], _meta: { 'agent9/file': meta } };
    return {
      content: [{ type: 'resource', resource: { uri: uriOf(p), mimeType: mimeTypeOf(p, undefined), blob: base64(got.bytes) } }],
      _meta: { 'agent9/file': { ...meta, encoding: 'base64' } },
    };
  },
});

const stat = tool({
  name: 'stat',
  title: 'Stat a file',
  description: 'type, kind, size, mode, times and version of a file or directory (the version increases on every change: the HTTP ETag).',
  schema: z.strictObject({ path }),
  annotations: { readOnlyHint: true },
  async run(args, { scope, cx }) {
    const p = pathArg(args.path);
    return jsonResult(statJson(await scope.view.stat(p, cx), { path: p }));
  },
});

const write = tool({
  name: 'write',
  title: 'Write a file',
  description:
    'Replace a file with `content` (creating it). `if_version` writes only if the file is at that version (ESTALE otherwise); ' +
    '`create_only` only if it does not exist. On a message file (an inbox) it sends one message; on a writable view (a policy) it replaces it.',
  schema: z.strictObject({
    path,
    content,
    encoding,
    if_version: z.number().int().min(1).optional().describe('the version the file must be at'),
    create_only: z.boolean().optional().describe('write only if the file does not exist yet (ESTALE otherwise)'),
    mode,
  }),
  annotations: { destructiveHint: true, idempotentHint: true },
  async run(args, { scope, cx }) {
    const p = pathArg(args.path);
    if (args.if_version !== undefined && args.create_only) throw new FsError('EINVAL', p, "give 'if_version' or 'create_only', not both");
    const opts: WriteFileOptions = {};
    if (args.if_version !== undefined) opts.ifVersion = args.if_version;
    if (args.create_only) opts.ifVersion = 0;
    if (args.mode !== undefined) opts.mode = parseInt(args.mode, 8);
    return written(scope.view, p, bytesOf(args.content, args.encoding), cx, opts);
  },
});

const append = tool({
  name: 'append',
  title: 'Append to a file',
  description: 'Append `content` to a data file (at its end, whoever else writes), or send it as one message to a message file such as an inbox.',
  schema: z.strictObject({ path, content, encoding }),
  annotations: { destructiveHint: false },
  async run(args, { scope, cx }) {
    const p = pathArg(args.path);
    return written(scope.view, p, bytesOf(args.content, args.encoding), cx, { append: true });
  },
});

const mkdir = tool({
  name: 'mkdir',
  title: 'Make a directory',
  description: 'Make a directory (EEXIST if it exists); `parents` makes the missing ones above it too and accepts one that exists.',
  schema: z.strictObject({ path, parents: z.boolean().optional().describe('like mkdir -p'), mode }),
  async run(args, { scope, cx }) {
    const p = pathArg(args.path);
    const view = scope.view;
    if (!view.mkdir) throw new FsError('ENOSYS', p, 'mkdir is not supported here');
    const m = args.mode !== undefined ? parseInt(args.mode, 8) : 0o755;
    const targets = args.parents ? segmentsOf(p).map((_, i, segs) => '/' + segs.slice(0, i + 1).join('/')) : [p];
    for (const t of targets) {
      try {
        await view.mkdir(t, m, cx);
      } catch (err) {
        // -p: what exists already is fine when it is a directory.
        if (!(args.parents && err instanceof FsError && err.code === 'EEXIST' && (await view.stat(t, cx)).type === 'dir')) throw err;
      }
    }
    return jsonResult(statJson(await view.stat(p, cx), { path: p }));
  },
});

const remove = tool({
  name: 'remove',
  title: 'Remove a file',
  description: 'Remove a file or an empty directory (ENOTEMPTY otherwise). Removing /agents/<id> deletes that agent.',
  schema: z.strictObject({ path }),
  annotations: { destructiveHint: true },
  async run(args, { scope, cx }) {
    const p = pathArg(args.path);
    const view = scope.view;
    if (!view.remove) throw new FsError('ENOSYS', p, 'remove is not supported here');
    const st = await view.stat(p, cx);
    await view.remove(p, cx, { dir: st.type === 'dir' });
    return jsonResult({ path: p, removed: true });
  },
});

const call = tool({
  name: 'call',
  title: 'Call a call file',
  description:
    'Write `request` to a call file and return its answer, on one handle (agents/new, runtime/tokens/new, compute/new, containers/new, identity/sign, logs/query...). ' +
    'A JSON request is given as its JSON text.',
  schema: z.strictObject({ path, request: z.string().describe('the request: text, or base64 with encoding "base64"'), encoding }),
  async run(args, { scope, cx }) {
    const p = pathArg(args.path);
    const answer = await callFile(scope.view, p, bytesOf(args.request, args.encoding), cx);
    const text = asText(answer);
    if (text === undefined) return { content: [{ type: 'resource', resource: { uri: uriOf(p), mimeType: 'application/octet-stream', blob: base64(answer) } }] };
    return { content: [{ type: 'text', text }] };
  },
});

const MAX_EVENTS = 1000;

const watch = tool({
  name: 'watch',
  title: 'Watch for changes',
  description:
    'The events (created, modified, deleted, data, end, reset) of a file or of a whole subtree after cursor `from` (an event id), ' +
    'replayed from the event log and then live, until `max_events` arrived or `timeout_ms` passed. Without `from` it waits for what happens from now on. ' +
    'Answers the events and `cursor`: pass it as `from` next time to miss nothing and repeat nothing.',
  schema: z.strictObject({
    path,
    from: z.number().int().min(0).optional().describe('the event id to continue after'),
    max_events: z.number().int().min(1).max(MAX_EVENTS).optional().describe('stop after this many events (default 100)'),
    timeout_ms: z.number().int().min(0).max(600_000).optional().describe('stop after this long (default 2000)'),
  }),
  annotations: { readOnlyHint: true },
  async run(args, { scope, cx }) {
    const p = pathArg(args.path);
    const { events, cursor } = await watchEvents(scope, p, cx, args.from, args.max_events ?? 100, args.timeout_ms ?? 2000);
    return jsonResult({ path: p, events, cursor });
  },
});

/** Events of `path` after `from` (or from now), until `max` or the deadline; and where to continue. */
export async function watchEvents(
  scope: McpScope,
  p: string,
  cx: Cx,
  from: number | undefined,
  max: number,
  timeoutMs: number,
): Promise<{ events: FsEvent[]; cursor: number | null }> {
  const view = scope.view;
  if (!view.watch) throw new FsError('ENOSYS', p, 'this namespace cannot be watched');
  // As the HTTP watch: access errors come first; a path that does not exist yet can be watched.
  await view.stat(p, cx).catch((err: unknown) => {
    if (!(err instanceof FsError && err.code === 'ENOENT')) throw err;
  });
  const start = from ?? scope.cursor?.();
  const abort = new AbortController();
  cx.signal?.addEventListener('abort', () => abort.abort(), { once: true });
  const it = view.watch(p, start, { ...cx, signal: abort.signal })[Symbol.asyncIterator]();
  const events: FsEvent[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  try {
    while (events.length < max) {
      const next = await Promise.race([it.next(), deadline]);
      if (next === 'timeout' || next.done) break;
      events.push(next.value);
      if (next.value.type === 'end' && next.value.path === p) break;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
    void it.return?.();
  }
  const last = events.length > 0 ? events[events.length - 1]!.id : start;
  return { events, cursor: last ?? null };
}

export const FILE_TOOLS: readonly ToolDef[] = [list, read, stat, write, append, mkdir, remove, call, watch];

