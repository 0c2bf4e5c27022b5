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

export interface Stat {
  type: 'file' | 'dir';
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
  /** Increases on every change of the file (Plan 9's qid.vers): the ETag. */
  version: number;
  uid?: number;
  gid?: number;
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
  /** A name for logs and traces: `admin`, `token:<id>`, `agent:<id>`, `operator` (people on a mount), `user:<uid>`. */
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
}

export interface Handle {
  readonly kind: FileKind;
  /** Reads up to `length` bytes at `offset`; an empty result is end of file. Streams ignore the offset. */
  read(length: number, offset: number): Promise<Uint8Array>;
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
