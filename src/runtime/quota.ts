/**
 * Each agent's data quota, `limits.memory_bytes`: the bytes of its memory files plus its work dir.
 *
 * - The memory part is a running total per data tree in SQLite (`data_usage`), kept by triggers on
 *   `data_nodes`, so it changes in the same transaction as every write, whoever writes (the memory
 *   service, a bundle import, a delete of the tree).
 * - The work dir part is written by exec programs directly on the host, so it cannot be refused; it is
 *   counted by walking the directory, cached, refreshed at the end of each tick and at most every
 *   WORK_DIR_REFRESH_MS (a write never walks).
 * - A write through the memory service (write, truncate, whole-file replace) runs in a transaction
 *   that reads the total before and after it; when it grew and the result is over the limit, the
 *   transaction rolls back and the write fails with EDQUOT naming the path, the use and the limit.
 *   Removing and shrinking always work; lowering the limit below the use deletes nothing.
 */
import { FsError } from '../fs/errors.js';
import type { DataFileStore, DataNode } from '../fs/datafs.js';
import type { FsSpace } from '../fs/types.js';
import type { Storage } from './storage/index.js';
import type { Migration } from './storage/db.js';
import { workDirBytes as countWorkDir } from './agent-workdir.js';
import { configSection } from './home-config.js';
import { DEFAULT_MAX_FILE_BYTES } from '../fs/datafs.js';

/** The default of limits.memory_bytes: 1 GiB. */
export const DEFAULT_MEMORY_BYTES = 1024 ** 3;

/** How stale the cached work dir size may get (and how often it may be walked at most). */
export const WORK_DIR_REFRESH_MS = 3000;

/** Bytes and nodes of one tree, as a row of data_usage changes: files count their size, every node one. */
const ADD_NEW = `INSERT INTO data_usage (tree, bytes, nodes) VALUES (NEW.tree, CASE WHEN NEW.type = 'file' THEN NEW.size ELSE 0 END, 1)
    ON CONFLICT (tree) DO UPDATE SET bytes = bytes + excluded.bytes, nodes = nodes + 1;`;
const SUB_OLD = `UPDATE data_usage SET bytes = bytes - (CASE WHEN OLD.type = 'file' THEN OLD.size ELSE 0 END), nodes = nodes - 1
    WHERE tree = OLD.tree;`;
/** Since migration 71: a further name of a hard-linked file (type 'name') is no node of its own. */
const NODE_NEW = "(CASE WHEN NEW.type = 'name' THEN 0 ELSE 1 END)";
const NODE_OLD = "(CASE WHEN OLD.type = 'name' THEN 0 ELSE 1 END)";
const ADD_NEW_71 = `INSERT INTO data_usage (tree, bytes, nodes) VALUES (NEW.tree, CASE WHEN NEW.type = 'file' THEN NEW.size ELSE 0 END, ${NODE_NEW})
    ON CONFLICT (tree) DO UPDATE SET bytes = bytes + excluded.bytes, nodes = nodes + excluded.nodes;`;
const SUB_OLD_71 = `UPDATE data_usage SET bytes = bytes - (CASE WHEN OLD.type = 'file' THEN OLD.size ELSE 0 END), nodes = nodes - ${NODE_OLD}
    WHERE tree = OLD.tree;`;

export const quotaMigrations: Migration[] = [
  {
    // 11 is the import staging table (h/export).
    version: 12,
    name: 'data usage per tree (memory quota)',
    up: `
      CREATE TABLE data_usage (tree TEXT PRIMARY KEY, bytes INTEGER NOT NULL, nodes INTEGER NOT NULL);
      INSERT INTO data_usage (tree, bytes, nodes)
        SELECT tree, COALESCE(SUM(CASE WHEN type = 'file' THEN size ELSE 0 END), 0), COUNT(*) FROM data_nodes GROUP BY tree;
      CREATE TRIGGER data_usage_insert AFTER INSERT ON data_nodes BEGIN ${ADD_NEW} END;
      CREATE TRIGGER data_usage_delete AFTER DELETE ON data_nodes BEGIN ${SUB_OLD} END;
      CREATE TRIGGER data_usage_update AFTER UPDATE OF size, type, tree ON data_nodes
        WHEN OLD.size IS NOT NEW.size OR OLD.type IS NOT NEW.type OR OLD.tree IS NOT NEW.tree
        BEGIN ${SUB_OLD} ${ADD_NEW} END;`,
  },
  {
    // Hard links (migration 70): a file's further names add neither bytes nor a node (`df -i` counts
    // files, not names); before 70 there were no such rows, so the totals kept are right as they are.
    version: 71,
    name: 'data usage counts a hard-linked file once',
    up: `
      DROP TRIGGER data_usage_insert;
      DROP TRIGGER data_usage_delete;
      DROP TRIGGER data_usage_update;
      CREATE TRIGGER data_usage_insert AFTER INSERT ON data_nodes BEGIN ${ADD_NEW_71} END;
      CREATE TRIGGER data_usage_delete AFTER DELETE ON data_nodes BEGIN ${SUB_OLD_71} END;
      CREATE TRIGGER data_usage_update AFTER UPDATE OF size, type, tree ON data_nodes
        WHEN OLD.size IS NOT NEW.size OR OLD.type IS NOT NEW.type OR OLD.tree IS NOT NEW.tree
        BEGIN ${SUB_OLD_71} ${ADD_NEW_71} END;`,
  },
];

/** The largest a memory file may be: at most this many bytes (2^50, as limits.memory_bytes). */
const MAX_FILE_BYTES_LIMIT = 2 ** 50;

/**
 * config.json `memory.max_file_bytes`: the largest memory file (EFBIG beyond), default 1 GiB; read at
 * start. A bad value stops the start with EINVAL naming the file.
 */
export function maxFileBytesFromConfig(home: string): number {
  const { value, file } = configSection(home, 'memory');
  if (value === undefined) return DEFAULT_MAX_FILE_BYTES;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FsError('EINVAL', file, 'memory must be an object like {"max_file_bytes": 1073741824}');
  const unknown = Object.keys(value).filter((k) => k !== 'max_file_bytes');
  if (unknown.length > 0) throw new FsError('EINVAL', file, `memory: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}`);
  const n = (value as { max_file_bytes?: unknown }).max_file_bytes;
  if (n === undefined) return DEFAULT_MAX_FILE_BYTES;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_FILE_BYTES_LIMIT) {
    throw new FsError('EINVAL', file, `memory: field 'max_file_bytes': must be an integer from 1 to 2^50, not ${JSON.stringify(n)}`);
  }
  return n;
}

/** One agent's use and limit, as /status shows it. */
export interface MemoryUsage {
  limit_bytes: number;
  used_bytes: number;
  free_bytes: number;
  memory_bytes: number;
  work_dir_bytes: number;
  files: number;
}

interface WorkDirCount {
  bytes: number;
  /** When the last walk started (0: never). */
  walkedAt: number;
  walking?: Promise<number> | undefined;
  timer?: NodeJS.Timeout | undefined;
}

export class MemoryQuota {
  private readonly usageOf;
  private readonly work = new Map<string, WorkDirCount>();
  /**
   * Each agent's limit, read once per turn of the event loop (a turn carries a batch of requests) and
   * dropped at its end, and whenever the agent changes (config, import, delete): never staler than
   * the turn it was read in.
   */
  private readonly limits = new Map<string, number>();
  private limitsClearing = false;

  constructor(
    private readonly storage: Storage,
    private readonly home: string,
    /** The agent's limits.memory_bytes, or undefined when it has none (no such agent). */
    private readonly limitOf: (agentId: string) => number | undefined,
    /** The data tree of an agent's memory. */
    private readonly treeOf: (agentId: string) => string,
  ) {
    this.usageOf = storage.db.prepare('SELECT bytes, nodes FROM data_usage WHERE tree = ?');
  }

  private limit(agentId: string): number {
    let limit = this.limits.get(agentId);
    if (limit === undefined) {
      limit = this.limitOf(agentId) ?? DEFAULT_MEMORY_BYTES;
      this.limits.set(agentId, limit);
      if (!this.limitsClearing) {
        this.limitsClearing = true;
        setImmediate(() => {
          this.limitsClearing = false;
          this.limits.clear();
        });
      }
    }
    return limit;
  }

  /** The agent changed (config, lifecycle, import): its limit is read again. */
  changed(agentId: string): void {
    this.limits.delete(agentId);
  }

  /**
   * Whether `bytes` more can be written without any chance of passing the limit: then a write that
   * grows a file by at most that much needs no guard (no savepoint, no second read of the total).
   */
  fits(agentId: string, bytes: number): boolean {
    return this.memory(agentId).bytes + this.workDirBytes(agentId) + bytes <= this.limit(agentId);
  }

  private memory(agentId: string): { bytes: number; nodes: number } {
    return (this.usageOf.get(this.treeOf(agentId)) as { bytes: number; nodes: number } | undefined) ?? { bytes: 0, nodes: 0 };
  }

  /** The cached size of the agent's work dir; starts a walk when it is stale. */
  workDirBytes(agentId: string): number {
    const w = this.entry(agentId);
    if (Date.now() - w.walkedAt >= WORK_DIR_REFRESH_MS) void this.walk(agentId, w);
    return w.bytes;
  }

  private entry(agentId: string): WorkDirCount {
    let w = this.work.get(agentId);
    if (!w) {
      w = { bytes: 0, walkedAt: 0 };
      this.work.set(agentId, w);
    }
    return w;
  }

  private walk(agentId: string, w: WorkDirCount): Promise<number> {
    if (w.walking) return w.walking;
    w.walkedAt = Date.now();
    w.walking = countWorkDir(this.home, agentId)
      .then(
        (bytes) => {
          if (this.work.get(agentId) === w) w.bytes = bytes;
          return w.bytes;
        },
        () => w.bytes,
      )
      .finally(() => {
        w.walking = undefined;
      });
    return w.walking;
  }

  /**
   * A tick of the agent ended (its exec program may have written the work dir): count it again now,
   * or when the last walk is WORK_DIR_REFRESH_MS old, so a busy agent is walked at most that often.
   */
  tickDone(agentId: string): void {
    const w = this.entry(agentId);
    const wait = w.walkedAt + WORK_DIR_REFRESH_MS - Date.now();
    if (wait <= 0) {
      void this.walk(agentId, w);
      return;
    }
    if (w.timer) return;
    w.timer = setTimeout(() => {
      w.timer = undefined;
      if (this.work.get(agentId) === w) void this.walk(agentId, w);
    }, wait);
    w.timer.unref();
  }

  /** The agent is gone: forget its work dir count. */
  forget(agentId: string): void {
    this.limits.delete(agentId);
    const w = this.work.get(agentId);
    if (w?.timer) clearTimeout(w.timer);
    this.work.delete(agentId);
  }

  usage(agentId: string): MemoryUsage {
    const limit = this.limit(agentId);
    const mem = this.memory(agentId);
    const work = this.workDirBytes(agentId);
    const used = mem.bytes + work;
    return { limit_bytes: limit, used_bytes: used, free_bytes: Math.max(0, limit - used), memory_bytes: mem.bytes, work_dir_bytes: work, files: mem.nodes };
  }

  /** statfs of the agent's memory tree; a work dir never counted yet is counted first. */
  async space(agentId: string): Promise<FsSpace> {
    const w = this.entry(agentId);
    if (w.walkedAt === 0 || w.walking) await this.walk(agentId, w);
    const u = this.usage(agentId);
    return { totalBytes: u.limit_bytes, usedBytes: u.used_bytes, freeBytes: u.free_bytes, files: u.files };
  }

  /**
   * Runs one write of the agent's memory in a transaction and refuses it (rolling it back) when it
   * grew the use past the limit. `fn` returns the node written, whose path the error names.
   */
  guard(agentId: string, fn: () => DataNode): DataNode {
    // Immediate: the total read first must be the one the write changes (no other connection between).
    return this.storage.tx(() => {
      const before = this.memory(agentId).bytes;
      const node = fn();
      const after = this.memory(agentId).bytes;
      if (after > before) {
        const limit = this.limit(agentId);
        const work = this.workDirBytes(agentId);
        if (after + work > limit) {
          throw new FsError(
            'EDQUOT',
            node.path,
            `data quota exceeded: this write would use ${after + work} bytes (memory ${after} + work dir ${work}), ` +
              `over limits.memory_bytes ${limit} (${before + work} used before it)`,
          );
        }
      }
      return node;
    }, { immediate: true });
  }

  /** The agent's memory store: the shared one, with every write that can grow a file guarded. */
  store(agentId: string, inner: DataFileStore): DataFileStore {
    return new QuotaStore(inner, (fn) => this.guard(agentId, fn), () => this.usage(agentId).free_bytes, (bytes) => this.fits(agentId, bytes));
  }
}

/** A DataFileStore whose growing writes go through a quota guard; everything else is the inner store's. */
class QuotaStore implements DataFileStore {
  constructor(
    private readonly inner: DataFileStore,
    private readonly guard: (fn: () => DataNode) => DataNode,
    private readonly free: () => number,
    private readonly fits: (bytes: number) => boolean,
  ) {}

  room(_tree: string): number {
    return this.free();
  }

  /** Undefined when the inner store has no one-step read: DataFs then reads by node. */
  readWhole(tree: string, path: string) {
    return this.inner.readWhole?.(tree, path);
  }
  readData(tree: string, path: string) {
    return this.inner.readData?.(tree, path);
  }

  ensureTree(tree: string) {
    this.inner.ensureTree(tree);
  }
  lookup(tree: string, path: string) {
    return this.inner.lookup(tree, path);
  }
  get(tree: string, id: number) {
    return this.inner.get(tree, id);
  }
  children(tree: string, path: string) {
    return this.inner.children(tree, path);
  }
  /** Creating adds no bytes (a new file is empty). */
  create(...args: Parameters<DataFileStore['create']>) {
    return this.inner.create(...args);
  }
  read(tree: string, id: number, offset: number, length: number) {
    return this.inner.read(tree, id, offset, length);
  }
  readInto(tree: string, id: number, offset: number, target: Uint8Array) {
    return this.inner.readInto(tree, id, offset, target);
  }
  write(...args: Parameters<DataFileStore['write']>) {
    return this.guard(() => this.inner.write(...args));
  }
  truncate(...args: Parameters<DataFileStore['truncate']>) {
    return this.guard(() => this.inner.truncate(...args));
  }
  replace(...args: Parameters<DataFileStore['replace']>) {
    // The tree's root is made (and remembered by the store) outside any transaction that may roll back;
    // a lookup of '/' here instead cost a SELECT per PUT (the hot cache is emptied by every write).
    this.inner.ensureTree(args[0]);
    // A replace grows the tree by at most its data (an append by exactly that): when even that fits,
    // it cannot pass the limit and runs unguarded (the common PUT: no savepoint, one read of the total).
    if (this.fits(args[2].length)) return this.inner.replace(...args);
    return this.guard(() => this.inner.replace(...args));
  }
  remove(...args: Parameters<DataFileStore['remove']>) {
    return this.inner.remove(...args);
  }
  /** A rename moves bytes or drops the file it replaces: never more. */
  rename(...args: Parameters<DataFileStore['rename']>) {
    return this.inner.rename(...args);
  }
  setattr(...args: Parameters<DataFileStore['setattr']>) {
    return this.inner.setattr(...args);
  }
  /** A link adds no bytes of a file (a symbolic link's target is not counted, a further name shares its file's). */
  symlink(...args: Parameters<DataFileStore['symlink']>) {
    return this.inner.symlink(...args);
  }
  link(...args: Parameters<DataFileStore['link']>) {
    return this.inner.link(...args);
  }
  retain(tree: string, id: number) {
    this.inner.retain?.(tree, id);
  }
  release(tree: string, id: number) {
    this.inner.release?.(tree, id);
  }
}
