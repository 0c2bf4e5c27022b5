/**
 * Building blocks for services whose files are computed: a tree of directory and file nodes, where
 * each file node is one of the file kinds (view, message, call, stream). A service describes its tree
 * once and SyntheticFs does path walking, stat, listing, open flags and errors.
 */
import { contentVersion, jsonText, toBytes, type Content } from './bytes.js';
import { FsError } from './errors.js';
import { SyntheticHandle, streamBytes, defaultStreamFormat, DEFAULT_MESSAGE_CAP } from './handles.js';
import { segmentsOf } from './paths.js';
import type { Cx, DirEntry, FileKind, FileService, FsEvent, Handle, OpenFlags, Stat } from './types.js';
import { MODE } from './types.js';

export interface NodeMeta {
  /** Permission bits; by default from the kind (view r--, message -w-, call rw-). */
  mode?: number;
  mtime?: () => number;
  /**
   * A stored version that changes whenever the content does (a record's, a policy's). Without it, a
   * view's version is a digest of its content (contentVersion), so it changes with what is read.
   */
  version?: () => number;
  /** The media type of the content (Stat.mediaType); streams default to JSON lines. */
  mediaType?: string;
}

export interface ViewNode extends NodeMeta {
  kind: 'view';
  read: (cx: Cx) => Promise<Content> | Content;
  /**
   * Makes the view writable (policies, config): one JSON object, applied by the write that completes it
   * (so that write reports a refusal), else when the handle is closed.
   */
  write?: (data: Uint8Array, cx: Cx) => Promise<void> | void;
  /** Computing the content for stat is cheap by default; set false to report size 0. */
  sizeAtStat?: boolean;
  maxBytes?: number;
  /**
   * A view that is not ready yet (its read throws EAGAIN, a running job's result) and will be: it opens
   * anyway (stat says size 0 meanwhile), and a read may wait for it (ReadOptions.waitMs: a blocking
   * read on the mount, HTTP ?wait) instead of answering EAGAIN.
   */
  ready?: {
    /** Resolves when the content may be there (something changed, or a while passed); and on abort. */
    wait: (cx: Cx, signal: AbortSignal) => Promise<void>;
    /** Whether a blocking read waits: the wait is bounded (a job, an exec; not an interactive session). */
    bounded: () => boolean;
  };
}

export interface MessageNode extends NodeMeta {
  kind: 'message';
  commit: (data: Uint8Array, cx: Cx) => Promise<void> | void;
  /**
   * Checked when the file is opened for writing, to refuse early what the commit would refuse (a full
   * queue): a shell's `echo x > inbox` then reports it, while an error of the commit on close(2) is
   * ignored by bash's builtin echo. The commit still decides.
   */
  admit?: (cx: Cx) => Promise<void> | void;
  /** Optional read side: a view of what was sent (the inbox reads as a JSON array). */
  read?: (cx: Cx) => Promise<Content> | Content;
  maxBytes?: number;
  /**
   * Command files (`ctl`): checks each complete line at the write that completes it (trimmed, blank
   * lines skipped), so `echo bogus > ctl` fails at write(2), which bash's builtin echo reports; a bad
   * line refuses the whole message. The commit at close still runs (and checks) everything written.
   */
  checkLine?: (line: string, cx: Cx) => Promise<void> | void;
}

export interface CallNode extends NodeMeta {
  kind: 'call';
  call: (request: Uint8Array, cx: Cx) => Promise<Content | undefined> | Content | undefined;
  maxBytes?: number;
  /**
   * Says when the bytes written so far are a whole request: the call is then sent by the write that
   * completed it, so that the write itself fails when the call does (bash's builtin echo ignores errors
   * of close(2)). Whitespace written after it is ignored. See completeJsonObject.
   */
  complete?: (request: Uint8Array) => boolean;
}

/** A whole request when the bytes are one JSON object (a prefix of an object never is one). */
export function completeJsonObject(request: Uint8Array): boolean {
  let end = request.length - 1;
  while (end >= 0 && (request[end] === 0x20 || request[end] === 0x0a || request[end] === 0x0d || request[end] === 0x09)) end--;
  if (end < 0 || request[end] !== 0x7d /* } */) return false;
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(request));
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

export interface StreamNode extends NodeMeta {
  kind: 'stream';
  events: (cx: Cx, signal: AbortSignal) => AsyncIterable<FsEvent>;
  format?: (ev: FsEvent) => Content | undefined;
  /** A finite stream: where its events start and whether it ended (Stat.finite); absent: endless. */
  finite?: () => { after: number; ended: boolean };
}

export type FileNode = ViewNode | MessageNode | CallNode | StreamNode;

export interface DirNode extends NodeMeta {
  kind: 'dir';
  /** Fixed children. */
  children?: Record<string, Node>;
  /** Children that come and go (jobs, sessions): names to list, and a lookup that may say none. */
  dynamic?: {
    list: (cx: Cx) => Promise<string[]> | string[];
    get: (name: string, cx: Cx) => Promise<Node | undefined> | Node | undefined;
  };
}

export type Node = FileNode | DirNode;

export const dir = (children: Record<string, Node>, meta: Omit<DirNode, 'kind' | 'children'> = {}): DirNode => ({
  kind: 'dir',
  children,
  ...meta,
});

export const view = (read: ViewNode['read'], extra: Omit<ViewNode, 'kind' | 'read'> = {}): ViewNode => ({
  kind: 'view',
  read,
  ...extra,
});

/** A view of a JSON value, pretty-printed. */
export const jsonView = (read: (cx: Cx) => unknown, extra: Omit<ViewNode, 'kind' | 'read'> = {}): ViewNode =>
  view(async (cx) => jsonText(await read(cx)), extra);

export const message = (commit: MessageNode['commit'], extra: Omit<MessageNode, 'kind' | 'commit'> = {}): MessageNode => ({
  kind: 'message',
  commit,
  ...extra,
});

export const call = (fn: CallNode['call'], extra: Omit<CallNode, 'kind' | 'call'> = {}): CallNode => ({
  kind: 'call',
  call: fn,
  ...extra,
});

export const stream = (events: StreamNode['events'], extra: Omit<StreamNode, 'kind' | 'events'> = {}): StreamNode => ({
  kind: 'stream',
  events,
  ...extra,
});

const BOOT_TIME = Date.now();

/** What a stream carries unless its node says otherwise: one JSON value (or text line) per datum. */
export const JSON_LINES = 'application/x-ndjson; charset=utf-8';

function defaultMode(node: Node): number {
  if (node.mode !== undefined) return node.mode;
  switch (node.kind) {
    case 'dir':
      return MODE.dir;
    case 'view':
      return node.write ? 0o644 : MODE.view;
    case 'message':
      return node.read ? 0o644 : MODE.message;
    case 'call':
      return MODE.call;
    case 'stream':
      return MODE.stream;
  }
}

export class SyntheticFs implements FileService {
  constructor(
    private readonly root: Node,
    readonly serviceName = 'synthetic',
  ) {}

  /** Walks to the node at `path`; ENOENT/ENOTDIR name the path. */
  async lookup(path: string, cx: Cx): Promise<Node> {
    let node: Node = this.root;
    for (const name of segmentsOf(path)) {
      if (node.kind !== 'dir') throw new FsError('ENOTDIR', path, 'not a directory');
      const child: Node | undefined = node.children?.[name] ?? (await node.dynamic?.get(name, cx));
      if (!child) throw new FsError('ENOENT', path, 'no such file or directory');
      node = child;
    }
    return node;
  }

  async stat(path: string, cx: Cx): Promise<Stat> {
    return this.statNode(await this.lookup(path, cx), cx);
  }

  private async statNode(node: Node, cx: Cx, computeSize = true): Promise<Stat> {
    const mtime = node.mtime?.() ?? BOOT_TIME;
    let size = 0;
    let version = node.version?.();
    if (computeSize && node.kind === 'view' && node.sizeAtStat !== false) {
      // A view not ready yet (a running job's result) has size 0 and no digest (`cat` must still open it).
      const content = await viewSnapshot(node, cx);
      size = content ? content.length : 0;
      if (content) version ??= contentVersion(content);
    }
    const st: Stat = {
      type: node.kind === 'dir' ? 'dir' : 'file',
      kind: node.kind as FileKind,
      size,
      mode: defaultMode(node),
      mtime,
      ctime: mtime,
      version: version ?? 0,
    };
    const mediaType = node.mediaType ?? (node.kind === 'stream' ? JSON_LINES : undefined);
    if (mediaType !== undefined) st.mediaType = mediaType;
    if (node.kind === 'stream' && node.finite) st.finite = node.finite();
    return st;
  }

  async readdir(path: string, cx: Cx): Promise<DirEntry[]> {
    const node = await this.lookup(path, cx);
    if (node.kind !== 'dir') throw new FsError('ENOTDIR', path, 'not a directory');
    const names = new Map<string, Node | undefined>(Object.entries(node.children ?? {}));
    if (node.dynamic) for (const name of await node.dynamic.list(cx)) if (!names.has(name)) names.set(name, undefined);
    const entries: DirEntry[] = [];
    for (const [name, known] of names) {
      const child = known ?? (await node.dynamic!.get(name, cx));
      if (!child) continue; // vanished between list and get
      try {
        entries.push({ name, stat: await this.statNode(child, cx) });
      } catch (err) {
        // A view that cannot render still shows in its directory.
        if (!(err instanceof FsError)) throw err;
        entries.push({ name, stat: await this.statNode(child, cx, false) });
      }
    }
    return entries;
  }

  async open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    const node = await this.lookup(path, cx);
    if (node.kind === 'dir') throw new FsError('EISDIR', path, 'is a directory');
    if (flags.create && flags.exclusive) throw new FsError('EEXIST', path, 'file exists');
    const canRead = flags.read ?? !flags.write;
    const canWrite = !!flags.write;
    const stat = () => this.statNode(node, cx);
    switch (node.kind) {
      case 'view': {
        if (canWrite && !node.write) throw new FsError('EACCES', path, 'read-only file');
        const write = node.write;
        // The handle's stat is its snapshot's: a stored version read before the content (never newer
        // than the bytes), else the digest of the bytes themselves.
        const stored = node.version?.();
        const snapshot = canRead ? await viewSnapshot(node, cx) : undefined;
        const version = stored ?? (snapshot ? contentVersion(snapshot) : undefined);
        const snapshotStat = async () => {
          const st = await this.statNode(node, cx, false);
          return version === undefined ? st : { ...st, version };
        };
        const { ready } = node;
        return new SyntheticHandle({
          path,
          kind: 'view',
          canRead,
          canWrite,
          stat: snapshotStat,
          maxBytes: node.maxBytes ?? DEFAULT_MESSAGE_CAP,
          ...(snapshot ? { snapshot } : {}),
          ...(canRead && !snapshot && ready
            ? { later: { read: async () => node.read(cx), wait: (signal: AbortSignal) => ready.wait(cx, signal), bounded: ready.bounded } }
            : {}),
          // Every writable view takes one JSON object: the write that completes it applies it.
          ...(write ? { commit: async (data: Uint8Array) => write(data, cx), complete: completeJsonObject } : {}),
        });
      }
      case 'message': {
        const read = node.read;
        if (canRead && !read) throw new FsError('EACCES', path, 'write-only file');
        if (canWrite && node.admit) await node.admit(cx);
        // As a view's: the version read before the snapshot, so the handle's is never newer than its bytes.
        const stored = canRead ? node.version?.() : undefined;
        const snapshot = canRead && read ? toBytes(await read(cx)) : undefined;
        return new SyntheticHandle({
          path,
          kind: 'message',
          canRead,
          canWrite,
          stat: stored === undefined ? stat : async () => ({ ...(await stat()), version: stored }),
          maxBytes: node.maxBytes ?? DEFAULT_MESSAGE_CAP,
          commit: async (data) => node.commit(data, cx),
          ...(node.checkLine ? { checkLine: (line: string) => node.checkLine!(line, cx) } : {}),
          ...(snapshot ? { snapshot } : {}),
        });
      }
      case 'call':
        return new SyntheticHandle({
          path,
          kind: 'call',
          canRead,
          canWrite,
          stat,
          maxBytes: node.maxBytes ?? DEFAULT_MESSAGE_CAP,
          call: async (req) => node.call(req, cx),
          ...(node.complete ? { complete: node.complete } : {}),
        });
      case 'stream': {
        if (canWrite) throw new FsError('EACCES', path, 'stream files are read-only');
        const format = node.format ?? defaultStreamFormat;
        return new SyntheticHandle({
          path,
          kind: 'stream',
          canRead,
          canWrite,
          stat,
          stream: (signal) => streamBytes(node.events(cx, signal), format),
        });
      }
    }
  }

  async truncate(path: string, size: number, cx: Cx): Promise<void> {
    // `echo x > ctl` truncates before writing; writable synthetic files start empty on every open.
    const node = await this.lookup(path, cx);
    const writable = node.kind === 'message' || node.kind === 'call' || (node.kind === 'view' && node.write);
    if (!writable) throw new FsError(node.kind === 'dir' ? 'EISDIR' : 'EACCES', path, 'cannot truncate this file');
    if (size !== 0) throw new FsError('EINVAL', path, 'only truncation to 0 is supported');
  }
}

/** A view's content at open; undefined for a view that is not ready yet and will be (ViewNode.ready). */
async function viewSnapshot(node: ViewNode, cx: Cx): Promise<Uint8Array | undefined> {
  try {
    return toBytes(await node.read(cx));
  } catch (err) {
    if (node.ready && err instanceof FsError && err.code === 'EAGAIN') return undefined;
    throw err;
  }
}

/** Parses a JSON request body, with EINVAL naming the path on failure. */
export function parseJson(data: Uint8Array | string, path: string): unknown {
  const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FsError('EINVAL', path, `malformed JSON: ${(err as Error).message}`);
  }
}
