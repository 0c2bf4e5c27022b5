/**
 * Files as MCP resources (`agent9:///path`, uris.ts):
 * - resources/list: the data files and views near the top of the session's view (breadth first, a few
 *   levels, at most LIST_LIMIT); every other file is reachable through the template `agent9:///{+path}`;
 * - resources/read: the file read as the `read` tool reads it (a directory: its listing as JSON);
 * - resources/subscribe: a watch of the file (or subtree) on the event log from the moment of the
 *   subscription; each event sends `notifications/resources/updated` with the URI of the file it
 *   concerns. unsubscribe, or the end of the session, ends the watch.
 */
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { ReadResourceResult, Resource } from '@modelcontextprotocol/sdk/types.js';
import { FsError } from '../fs/errors.js';
import { joinPath } from '../fs/paths.js';
import type { Cx, DirEntry } from '../fs/types.js';
import { readContent } from './content.js';
import { asText, base64, mimeTypeOf, protocolError, statJson } from './results.js';
import type { McpScope } from './session.js';
import { pathOfUri, uriOf, URI_TEMPLATE } from './uris.js';

const LIST_LIMIT = 200;
const LIST_DEPTH = 3;
/** Subscriptions one session may hold at once. */
export const MAX_SUBSCRIPTIONS = 256;

export const RESOURCE_TEMPLATES = [
  {
    uriTemplate: URI_TEMPLATE,
    name: 'file',
    title: 'A file of the namespace',
    description: 'Any file or directory of this session\'s view, by its path: agent9:///memory/notes.txt, agent9:///status',
  },
];

/** Kinds a client can read as a document (calls need a request, streams may never end, messages are write-only). */
const READABLE = new Set(['data', 'view']);

export async function listResources(scope: McpScope, cx: Cx): Promise<Resource[]> {
  const out: Resource[] = [];
  let level: string[] = ['/'];
  for (let depth = 0; depth < LIST_DEPTH && level.length > 0 && out.length < LIST_LIMIT; depth++) {
    const next: string[] = [];
    for (const dir of level) {
      let entries: DirEntry[];
      try {
        entries = await scope.view.readdir(dir, cx);
      } catch {
        continue; // a directory this session may not list (a token's paths, a disabled mount)
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        const p = joinPath(dir, e.name);
        if (e.stat.type === 'dir') next.push(p);
        else if (READABLE.has(e.stat.kind) && out.length < LIST_LIMIT) {
          out.push({ uri: uriOf(p), name: p, ...(e.stat.kind === 'data' ? { size: e.stat.size } : {}), _meta: { 'agent9/stat': statJson(e.stat) } });
        }
      }
    }
    level = next;
  }
  return out;
}

export async function readResource(scope: McpScope, uri: string, cx: Cx): Promise<ReadResourceResult> {
  let path = '/';
  try {
    path = pathOfUri(uri);
    const got = await readContent(scope.view, path, cx);
    if ('listing' in got) {
      const listing = got.listing.map((e) => statJson(e.stat, { name: e.name, uri: uriOf(joinPath(path, e.name)) }));
      return { contents: [{ uri, mimeType: 'application/json', text: JSON.stringify(listing) }] };
    }
    const text = asText(got.bytes);
    const meta = { 'agent9/file': { kind: got.stat.kind, version: got.stat.version, truncated: got.truncated } };
    if (text !== undefined) return { contents: [{ uri, mimeType: mimeTypeOf(path, text), text, _meta: meta }] };
    return { contents: [{ uri, mimeType: mimeTypeOf(path, undefined), blob: base64(got.bytes), _meta: meta }] };
  } catch (err) {
    throw protocolError(err, path);
  }
}

/** A session's subscriptions: one watch each, ended by unsubscribe or when the session closes. */
export class Subscriptions {
  private readonly watches = new Map<string, AbortController>();

  constructor(
    private readonly server: Server,
    private readonly scope: McpScope,
  ) {}

  async subscribe(uri: string): Promise<void> {
    let path = '/';
    try {
      path = pathOfUri(uri);
      if (this.watches.has(uri)) return;
      if (this.watches.size >= MAX_SUBSCRIPTIONS) throw new FsError('EAGAIN', path, `a session holds at most ${MAX_SUBSCRIPTIONS} subscriptions`);
      const view = this.scope.view;
      if (!view.watch) throw new FsError('ENOSYS', path, 'this namespace cannot be watched');
      const cx = this.scope.cx;
      // Access is checked now, as for an HTTP watch; a file that does not exist yet can be subscribed to.
      await view.stat(path, cx).catch((err: unknown) => {
        if (!(err instanceof FsError && err.code === 'ENOENT')) throw err;
      });
      const abort = new AbortController();
      this.watches.set(uri, abort);
      const events = view.watch(path, this.scope.cursor?.(), { ...cx, signal: abort.signal });
      void this.forward(uri, events, abort);
    } catch (err) {
      throw protocolError(err, path);
    }
  }

  private async forward(uri: string, events: AsyncIterable<{ type: string; path: string }>, abort: AbortController): Promise<void> {
    try {
      for await (const ev of events) {
        if (abort.signal.aborted) break;
        if (ev.type === 'reset') continue;
        await this.server.sendResourceUpdated({ uri: ev.path === pathOfUri(uri) ? uri : uriOf(ev.path) });
      }
    } catch {
      // The watch ended (the session closed, its token went away): nothing more to tell.
    } finally {
      if (this.watches.get(uri) === abort) this.watches.delete(uri);
    }
  }

  unsubscribe(uri: string): void {
    this.watches.get(uri)?.abort();
    this.watches.delete(uri);
  }

  close(): void {
    for (const abort of this.watches.values()) abort.abort();
    this.watches.clear();
  }
}
