/**
 * Hot reads of the data-file store: nodes (and the bytes of small files) by tree and path, so that
 * reading the same file again costs no query (and no file lock: each SQLite read takes and drops a
 * POSIX lock, which under load costs more than the query). The store empties it on every mutation,
 * whatever it touched. A commit by another connection to the database is noticed through PRAGMA
 * data_version, checked once per turn of the event loop: a read is never older than the start of the
 * current turn.
 */
import type { DataNode } from '../../fs/datafs.js';

/** Files up to this size are kept with their node; larger ones only by node. */
export const HOT_FILE_BYTES = 16 * 1024;
const HOT_MAX_ENTRIES = 4096;
const HOT_MAX_BYTES = 8 * 1024 * 1024;

export interface HotEntry {
  node: DataNode;
  data: Uint8Array | undefined;
}

export class HotReads {
  private readonly entries = new Map<string, HotEntry>();
  private bytes = 0;
  private seenDataVersion = -1;
  private checkedThisTurn = false;
  private readonly endTurn = () => {
    this.checkedThisTurn = false;
  };

  constructor(
    /** PRAGMA data_version of the store's connection. */
    private readonly dataVersion: () => number,
    /** Whether the connection is inside a transaction (a read there may be rolled back). */
    private readonly inTransaction: () => boolean,
  ) {}

  clear(): void {
    if (this.entries.size === 0) return;
    this.entries.clear();
    this.bytes = 0;
  }

  get(tree: string, path: string): HotEntry | undefined {
    if (this.entries.size === 0) return undefined;
    if (!this.checkedThisTurn) {
      this.checkedThisTurn = true;
      setImmediate(this.endTurn);
      const version = this.dataVersion();
      if (version !== this.seenDataVersion) {
        // Another connection committed: anything may have changed.
        this.seenDataVersion = version;
        this.clear();
        return undefined;
      }
    }
    return this.entries.get(tree + '\0' + path);
  }

  put(tree: string, path: string, node: DataNode, data: Uint8Array | undefined): void {
    // Inside a transaction a read may see what a rollback will undo: never cache it.
    if (this.inTransaction()) return;
    if (this.entries.size === 0) {
      // What is cached from now on is as of this version.
      this.seenDataVersion = this.dataVersion();
      this.checkedThisTurn = true;
      setImmediate(this.endTurn);
    }
    const key = tree + '\0' + path;
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= old.data?.length ?? 0;
      this.entries.delete(key);
      data ??= old.node.version === node.version ? old.data : undefined;
    }
    const kept = data !== undefined && data.length <= HOT_FILE_BYTES ? data : undefined;
    this.entries.set(key, { node: Object.freeze(node), data: kept });
    this.bytes += kept?.length ?? 0;
    // Oldest first: Map iteration follows insertion order, and a hit is re-inserted.
    for (const [k, v] of this.entries) {
      if (this.entries.size <= HOT_MAX_ENTRIES && this.bytes <= HOT_MAX_BYTES) break;
      this.entries.delete(k);
      this.bytes -= v.data?.length ?? 0;
    }
  }
}
