/** The core model: Stat, DirEntry, handles, FileService, and who is asking (Cx). */

/**
 * What a file is and how it behaves; transports use it to pick modes, caching and content types.
 * - data: durable bytes with random access
 * - view: content computed at open, a snapshot per handle
 * - message: writes buffered per handle and committed once, on close
 * - call: write a request, read the answer on the same handle
 * - stream: reads block until data arrives; EOF when the stream ends
 */
export type FileKind = 'dir' | 'data' | 'view' | 'message' | 'call' | 'stream';

/**
 * The POSIX type of a node. Data trees hold every one of them; the synthetic kinds are all `file`.
 * Symbolic links, FIFOs and sockets are nodes of data trees (kind `data`): a FIFO's or socket's data
 * passes between processes on a mount, in the kernel, never through a service.
 */
export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket';

export interface Stat {
  type: NodeType;
  kind: FileKind;
  size: number;
  /** Permission bits only (e.g. 0o644); the file type is `type`. */
  mode: number;
  /** Milliseconds since the epoch. */
  mtime: number;
  ctime: number;
  atime?: number;
  /** Nanoseconds past the millisecond of atime and mtime, where the service keeps them (0-999999). */
  atimeNs?: number;
  mtimeNs?: number;
  /**
   * Changes on every change of the file (Plan 9's qid.vers): the ETag. Stored versions increase; a view
   * that keeps none reports a digest of its content (contentVersion), which changes with it.
   */
  version: number;
  /**
   * The content's media type, where the service knows it better than a file's name or bytes would
   * tell (a stream of JSON lines, a process's raw output); transports that label content use it.
   */
  mediaType?: string;
  uid?: number;
  gid?: number;
  /**
   * Finite stream files (a job's stream, a session's or exec's output): the event id their data starts
   * after and whether they ended, so a watch without a cursor replays them from their beginning and a
   * watch of an ended one ends at once. Absent for endless streams (an agent's trace).
   */
  finite?: { after: number; ended: boolean };
  /** Names of a file (hard links; 0 once the last is gone but a handle is open); a directory: 2 + its subdirectories. */
  nlink?: number;
  /**
   * The node's number where the service keeps one (data trees): the same for every name of a hard-linked
   * file, never the same for two nodes that exist at once.
   */
  ino?: number;
  /** A symbolic link's target, as it was given. */
  target?: string;
}

export interface StatAndData {
  stat: Stat;
  data?: Uint8Array;
}

export interface DirEntry {
  name: string;
  stat: Stat;
}

export interface OpenFlags {
  read?: boolean;
  write?: boolean;
  create?: boolean;
  /** With create: fail with EEXIST when the file exists (O_EXCL). */
  exclusive?: boolean;
  truncate?: boolean;
  append?: boolean;
  /** Mode for a created file. */
  mode?: number;
}

export interface Principal {
  /** A name for logs and traces: `admin`, `token:<id>`, `agent:<id>`, `fuse:<uid>`. */
  id: string;
  /** Admins may write admin-only paths (policies). */
  admin: boolean;
  /** Set when the caller acts as an agent. */
  agentId?: string;
  uid?: number;
  gid?: number;
  /** The limits of the credential the caller presented (a bearer token); absent: none beyond `admin`. */
  grant?: Grant;
}

/** What a credential allows: whatever its holder hands on (a token it mints) stays within it. */
export interface Grant {
  /** The credential's id, for messages. */
  id: string;
  /** The agent whose namespace it sees at `/`. */
  agent?: string;
  /** Reachable path prefixes in its own view; empty means everything. */
  paths: readonly string[];
  readOnly: boolean;
  /** When it expires (ms since the epoch); absent: never. */
  expiresAt?: number;
}

/**
 * The process behind a request, where the transport knows it (FUSE does): what a caller creates is
 * owned by its uid and gid.
 */
export interface Caller {
  uid: number;
  gid: number;
  pid: number;
}

/** Who is asking, and until when. Services never learn the transport. */
export interface Cx {
  principal: Principal;
  signal?: AbortSignal;
  caller?: Caller;
  /**
   * Set, per request, by a transport that answers a write with what the write did (HTTP): a message
   * file whose commit has a result hands it here, once per committed write (the envelope an inbox
   * queued, the ticks a ctl ran). Never on a shared Cx; a shell's write has nobody to answer.
   */
  receipt?: (receipt: Receipt) => void;
  /**
   * How the caller names a path of the agent namespace the request reached (an agent-local path such
   * as `/compute/jobs/<id>`): `/agents/<id>/...` in the global view, unchanged in an agent's own
   * view. Set by the layers that move agent namespaces around (the global view, a rooted view); a
   * call answer names its files through it (`callerPath`), so they are valid where the call was made.
   */
  place?: (agentPath: string) => string;
}

/** What a committed write did, for the transport to answer with (HTTP: its JSON body). */
export interface Receipt {
  /** A JSON object: the answer. */
  value: Record<string, unknown>;
  /** The write made something new (an envelope was stored): HTTP answers 201 rather than 200. */
  created?: boolean;
}

/** The caller's name for a path of the agent namespace a request reached (see `Cx.place`). */
export function callerPath(cx: Cx, agentPath: string): string {
  return cx.place ? cx.place(agentPath) : agentPath;
}

/**
 * `cx` for the layer below one that renames paths: `map` turns a path as the layer below names it
 * into this layer's name for it, and the layers above map it on to the caller's.
 */
export function withPlace(cx: Cx, map: (path: string) => string): Cx {
  const outer = cx.place;
  return { ...cx, place: outer ? (p) => outer(map(p)) : map };
}

/**
 * A call answer's `paths` (an object of agent-local paths, as /compute and /containers answer) named
 * as the caller names them; any other value unchanged.
 */
export function placeAnswerPaths<T>(answer: T, cx: Cx): T {
  if (!cx.place || typeof answer !== 'object' || answer === null) return answer;
  const paths = (answer as { paths?: unknown }).paths;
  if (typeof paths !== 'object' || paths === null) return answer;
  const placed = Object.fromEntries(Object.entries(paths).map(([k, v]) => [k, typeof v === 'string' ? callerPath(cx, v) : v]));
  return { ...answer, paths: placed };
}

/** How a read may wait (a transport says it; services never learn which one asks). */
export interface ReadOptions {
  /**
   * How long, in ms, a read may wait for content that is not there yet (a running job's result):
   * absent or 0 answers at once (EAGAIN "not ready"); Infinity is a blocking read(2), which waits only
   * where the wait is bounded (a job, an exec, an ephemeral session; an interactive session's result
   * still answers EAGAIN at once); a finite number waits up to that long for any of them (HTTP ?wait).
   */
  waitMs?: number;
}

export interface Handle {
  readonly kind: FileKind;
  /** Reads up to `length` bytes at `offset`; an empty result is end of file. Streams ignore the offset. */
  read(length: number, offset: number, opts?: ReadOptions): Promise<Uint8Array>;
  /** Data files: reads up to `target.length` bytes at `offset` into `target`; returns how many (0: end). */
  readInto?(target: Uint8Array, offset: number): Promise<number>;
  /** Writes at `offset` (message and call files append to their buffer) and returns the bytes taken. */
  write(data: Uint8Array, offset: number): Promise<number>;
  /** Called on every close(2) of a descriptor (FUSE flush); message files commit here. */
  flush(): Promise<void>;
  /** Called once when the last descriptor is gone; commits anything still pending. */
  close(): Promise<void>;
  /** ftruncate on this handle. */
  truncate?(size: number): Promise<void>;
  /**
   * Data files under a quota: how many bytes the file's tree may still grow by now (Infinity without a
   * quota). A transport that buffers writes (the FUSE write-behind) writes through instead when what it
   * would hold comes near this, so a write past the quota fails at write(2), where every tool sees it.
   */
  room?(): number;
  /** fstat: the handle's view of the file (a view's snapshot size). */
  stat?(): Promise<Stat>;
}

export interface SetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  atime?: number;
  mtime?: number;
  /** With atime / mtime: the nanoseconds past their millisecond (utimensat's precision). */
  atimeNs?: number;
  mtimeNs?: number;
}

export interface WriteFileOptions {
  /** Fail with ESTALE unless the file's current version is this (0 = must not exist). */
  ifVersion?: number;
  mode?: number;
  append?: boolean;
}

/** A change or stream datum, as recorded in the event log. */
export type EventType = 'created' | 'modified' | 'deleted' | 'data' | 'end' | 'reset';

export interface FsEvent {
  /** Monotonically increasing over the whole server; the watch cursor. */
  id: number;
  type: EventType;
  /** The path in the watcher's namespace. */
  path: string;
  /** Milliseconds since the epoch. */
  time: number;
  version?: number;
  /** For data events: the datum (JSON value). For end/reset: a reason. */
  data?: unknown;
}

export interface FileService {
  stat(path: string, cx: Cx): Promise<Stat>;
  readdir(path: string, cx: Cx): Promise<DirEntry[]>;
  open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle>;
  mkdir?(path: string, mode: number, cx: Cx): Promise<void>;
  /** Removes a file, or an empty directory when `dir` is true (ENOTEMPTY otherwise). */
  remove?(path: string, cx: Cx, opts?: { dir?: boolean }): Promise<void>;
  rename?(from: string, to: string, cx: Cx): Promise<void>;
  truncate?(path: string, size: number, cx: Cx): Promise<void>;
  setattr?(path: string, attrs: SetAttr, cx: Cx): Promise<Stat>;
  /** Whole-file read in one step (data files); readAll falls back to open/read/close. */
  readFile?(path: string, cx: Cx): Promise<Uint8Array>;
  /**
   * The stat and, when the service keeps the content at hand (data files), the whole content, in one
   * step and from one snapshot: what an HTTP GET needs. `data` is absent for directories and for files
   * whose content is computed or streamed. Without it, callers use stat (see ops.ts `readStat`).
   */
  readStat?(path: string, cx: Cx): Promise<StatAndData>;
  /** Whole-file write in one step (HTTP PUT); the namespace falls back to open/write/close. */
  writeFile?(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat>;
  /**
   * Watches a file or subtree: replays events after `from`, then goes live.
   * Services that record their changes in the event log get this from the Namespace for free.
   */
  watch?(path: string, from: number | undefined, cx: Cx): AsyncIterable<FsEvent>;
  /** Makes `path` a symbolic link to `target` (never replaces: EEXIST). */
  symlink?(path: string, target: string, cx: Cx): Promise<Stat>;
  /** The target of the symbolic link at `path` (EINVAL for anything else). */
  readlink?(path: string, cx: Cx): Promise<string>;
  /** Makes `to` one more name of the file at `from` (a hard link; never replaces: EEXIST). */
  link?(from: string, to: string, cx: Cx): Promise<Stat>;
  /** Makes a FIFO or socket node at `path` (never replaces: EEXIST). */
  mknod?(path: string, type: 'fifo' | 'socket', mode: number, cx: Cx): Promise<Stat>;
  /**
   * Where `path` leads once the symbolic links on it are followed (among its directories and, with
   * `followLast`, the last name too), as long as they stay in the service's own tree: EINVAL for a link
   * leading out of it, ELOOP after 40 links. The last name need not exist (a dangling link leads to the
   * path it names).
   */
  realpath?(path: string, followLast: boolean, cx: Cx): Promise<string>;
  /**
   * The space of the tree holding `path`, as statfs(2) reports it: a data tree under a quota says its
   * limit and use. Services without it have no limit of their own (the Namespace answers NO_LIMIT).
   */
  statfs?(path: string, cx: Cx): Promise<FsSpace>;
  /** For /mounts: a short name of the service. */
  readonly serviceName?: string;
}

/** Space of a file tree in bytes (and entries), what statfs(2) and `df` show. */
export interface FsSpace {
  totalBytes: number;
  usedBytes: number;
  /** Bytes a caller may still write: totalBytes - usedBytes, never below 0. */
  freeBytes: number;
  /** Number of files and directories, when known. */
  files?: number;
}

/** What a tree without a quota of its own reports: 1 PiB, none of it used. */
export const NO_LIMIT: FsSpace = { totalBytes: 2 ** 50, usedBytes: 0, freeBytes: 2 ** 50 };

export const MODE = {
  dir: 0o755,
  data: 0o644,
  view: 0o444,
  message: 0o222,
  call: 0o666,
  stream: 0o444,
} as const;
