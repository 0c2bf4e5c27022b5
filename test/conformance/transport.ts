import type { NodeType } from '../../src/fs/types.js';

/** What a conformance case can do; each transport (in-process, HTTP, FUSE, CLI) implements it. */
export interface Entry {
  name: string;
  type: NodeType;
  size: number;
}

export interface WatchedEvent {
  id: number;
  type: string;
  path: string;
  data?: unknown;
}

/** Errors from a transport carry the POSIX code (from the JSON body, errno, or exit status). */
export class TransportError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Transport {
  name: string;
  /** Whether this transport can say who is admin (FUSE users are whoever mounted). */
  admin: boolean;
  read(path: string): Promise<string>;
  write(path: string, data: string): Promise<void>;
  append(path: string, data: string): Promise<void>;
  call(path: string, data: string): Promise<string>;
  list(path: string): Promise<Entry[]>;
  stat(path: string): Promise<{ type: NodeType; size: number; version: number }>;
  remove(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  rename?(from: string, to: string): Promise<void>;
  /** Reads a stream file until it ends. */
  readStream(path: string): Promise<string>;
  /** Watches a path from a cursor and returns the first `n` events (or fewer after `ms`). */
  watch(path: string, from: number | undefined, n: number, ms?: number): Promise<WatchedEvent[]>;
  close?(): Promise<void>;
}
