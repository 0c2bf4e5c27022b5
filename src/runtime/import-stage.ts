/**
 * Import in small steps: a bundle's records are written as they arrive, in short transactions, under a
 * hidden staging id (`~import-...`, never a valid agent id, so no listing, watch or tick sees it) and a
 * staging work dir (`work/.import-...`). Only `finish` makes the agent exist: one short transaction
 * gives every staged row, memory file and event to the new id (rows are re-keyed, no content is
 * copied). Enqueues to other agents interleave with the staging transactions and never wait on more
 * than one of them.
 *
 * A failed or abandoned import removes what it staged; the stagings a crash left are listed in the
 * `import_staging` table and removed at the next start (sweepStaleImports).
 */
import { randomUUID } from 'node:crypto';
import { constants as FS, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { chmod, mkdir, open, rm, utimes, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FsError } from '../fs/errors.js';
import type { AgentRuntime } from './agent-runtime.js';
import { memoryTree } from './agents.js';
import { checkAgentId, type Envelope } from './spec.js';
import { AGENT_COLUMNS } from './bundle.js';
import { bundlePathSegments, type BundleHeader, type BundleRecord, type FileEntryRecord, type ImportOptions } from './bundle-format.js';
import { agentWorkDir } from './agent-workdir.js';
import { DEFAULT_MEMORY_BYTES } from './quota.js';

const STAGING_PREFIX = '~import-';
const WORK_STAGING_PREFIX = '.import-';

/**
 * Removes every staging a previous run left (rows, memory files, events, work dirs) and the work dirs
 * of agents that do not exist (a crash between moving an import's work dir and its commit, or during a
 * delete). Called at start, before anything runs.
 */
export function sweepStaleImports(rt: AgentRuntime): number {
  const ids = rt.storage.db.prepare('SELECT id FROM import_staging').pluck().all() as string[];
  for (const id of ids) dropStagedRows(rt, id);
  const work = join(rt.home, 'work');
  let names: string[] = [];
  try {
    names = readdirSync(work);
  } catch {
    // no work dirs yet
  }
  for (const name of names) {
    if (name.startsWith(WORK_STAGING_PREFIX) || !rt.store.hasAgent(name)) rmSync(join(work, name), { recursive: true, force: true });
  }
  return ids.length;
}

function dropStagedRows(rt: AgentRuntime, stagingId: string): void {
  const { storage, store } = rt;
  storage.dataFiles.dropTree(memoryTree(stagingId));
  storage.tx(() => {
    store.deleteAgent(stagingId);
    storage.eventStore.purgeScope(stagingId);
    storage.db.prepare('DELETE FROM import_staging WHERE id = ?').run(stagingId);
  });
}

interface OpenFile {
  rec: FileEntryRecord;
  written: number;
  /** Memory file: its node in the staging tree. */
  node?: number;
  /** Work dir file: the file being written. */
  fh?: FileHandle;
}

export class ImportStage {
  readonly stagingId = STAGING_PREFIX + randomUUID();
  private readonly tree = memoryTree(this.stagingId);
  private readonly workStage: string;
  private target: string | undefined;
  private header: BundleHeader | undefined;
  private options: ImportOptions = {};
  private program = '';
  private records = 0;
  /** Bytes of work dir files staged so far (they count in the agent's data quota). */
  private workBytes = 0;
  private counts = { inbox: 0, deadletter: 0, seen: 0 };
  private hasIdentity = false;
  private file: OpenFile | undefined;
  private readonly dirTimes: { rel: string; mode: number; mtime: number; where: 'memory' | 'work' }[] = [];
  /** Hard links of the memory tree, made at the end (the file a name names may come later). */
  private readonly hardLinks: { path: string; of: string }[] = [];
  private done = false;

  constructor(
    private readonly rt: AgentRuntime,
    private readonly path: string,
  ) {
    this.workStage = join(rt.home, 'work', WORK_STAGING_PREFIX + this.stagingId.slice(STAGING_PREFIX.length));
    rt.storage.db.prepare('INSERT INTO import_staging (id, target, started_at) VALUES (?, NULL, ?)').run(this.stagingId, Date.now());
    mkdirSync(this.workStage, { recursive: true, mode: 0o700 });
  }

  private bad(why: string): FsError {
    return new FsError('EINVAL', this.path, `bundle record ${this.records}: ${why}`);
  }

  /** The header (and the options given before it): the target id and the program are checked now. */
  begin(header: BundleHeader, options: ImportOptions): void {
    this.header = header;
    this.options = options;
    this.target = checkAgentId(options.id ?? header.agent.id, this.path);
    this.program = JSON.stringify(this.rt.programs.validate(JSON.parse(String(header.agent.program)), this.path));
    if (this.rt.store.hasAgent(this.target)) throw new FsError('EEXIST', this.path, `agent '${this.target}' already exists`);
    this.rt.storage.db.prepare('UPDATE import_staging SET target = ? WHERE id = ?').run(this.target, this.stagingId);
  }

  /** Stages records; the database ones of one call in one transaction, work dir files as they come. */
  async add(records: readonly BundleRecord[]): Promise<boolean> {
    let batch: BundleRecord[] = [];
    const flush = () => {
      if (batch.length === 0) return;
      const todo = batch;
      batch = [];
      this.rt.storage.tx(() => {
        for (const r of todo) this.stageRow(r);
      });
    };
    for (const r of records) {
      if (this.done) throw this.bad('records after the end record');
      if (r.t === 'end') {
        flush();
        await this.end(r.records);
        return true;
      }
      const isWork = r.t === 'work' || (r.t === 'data' && this.file?.rec.t === 'work');
      if (isWork) {
        flush();
        await this.stageWork(r);
      } else {
        batch.push(r);
      }
    }
    flush();
    return false;
  }

  private count(r: BundleRecord): void {
    this.records++;
    if (this.file && r.t !== 'data') {
      throw this.bad(`${this.file.rec.t} file ${JSON.stringify(this.file.rec.path)} ends after ${this.file.written} of ${this.file.rec.size} bytes`);
    }
  }

  /** Adds a data line to the open file; true when the file is complete. */
  private takeData(data: string): { bytes: Buffer; offset: number; complete: boolean } {
    const f = this.file;
    if (!f) throw this.bad('a data record that follows no file record');
    const bytes = Buffer.from(data, 'base64');
    if (f.written + bytes.length > f.rec.size) throw this.bad(`more data than the ${f.rec.size} bytes of ${JSON.stringify(f.rec.path)}`);
    const offset = f.written;
    f.written += bytes.length;
    if (f.rec.t === 'work') this.workBytes += bytes.length;
    return { bytes, offset, complete: f.written === f.rec.size };
  }

  private stageRow(r: BundleRecord): void {
    const id = this.stagingId;
    const { store, storage } = this.rt;
    const now = Date.now();
    if (r.t === 'data') {
      const { bytes, offset, complete } = this.takeData(r.data);
      this.records++;
      storage.dataFiles.write(this.tree, this.file!.node!, offset, bytes);
      if (complete) this.closeMemoryFile();
      return;
    }
    this.count(r);
    switch (r.t) {
      case 'state':
        return store.importState(id, r.version, JSON.stringify(r.data));
      case 'kv':
        return store.kvSet(id, r.key, JSON.stringify(r.value));
      case 'inbox': {
        const env = r.envelope as unknown as Envelope;
        this.counts.inbox++;
        store.insertInbox(id, r.seq, env.id, String(env.from ?? 'unknown'), Number(env.created_at ?? now), JSON.stringify(env), r.attempts, r.last_error);
        return;
      }
      case 'deadletter':
        this.counts.deadletter++;
        return store.deadletterImport(id, r.seq, r.envelope.id, JSON.stringify(r.envelope), r.reason, r.error, r.attempts, r.at);
      case 'outbox':
        return store.outboxImport(id, r.seq, r.envelope.id, JSON.stringify(r.envelope), Number((r.envelope as { created_at?: unknown }).created_at ?? now));
      case 'goal':
        return store.goalImport(id, { goal_id: r.id, body: JSON.stringify(r.goal), version: r.version, created_at: r.created_at, updated_at: r.updated_at });
      case 'seen':
        store.seenImport(id, r.ids);
        this.counts.seen += r.ids.length;
        return;
      case 'identity':
        if (this.options.new_identity) return;
        this.rt.keys.importSealed(id, r, now, this.path);
        this.hasIdentity = true;
        return;
      case 'event': {
        const rec: Parameters<typeof storage.eventStore.append>[0] = { scope: id, path: r.path, type: r.type as never, time: r.time };
        if (r.version !== undefined) rec.version = r.version;
        if (r.data !== undefined) rec.data = r.data;
        storage.eventStore.append(rec);
        return;
      }
      case 'memory':
        return this.memoryEntry(r);
      default:
        throw this.bad(`unexpected ${r.t} record`);
    }
  }

  private memoryEntry(r: Extract<BundleRecord, { t: 'memory' }>): void {
    bundlePathSegments(r.path, 'memory', this.path);
    const files = this.rt.storage.dataFiles;
    const spec = { mode: r.mode, uid: 0, gid: 0, exclusive: true };
    let node: number;
    try {
      if (r.type === 'hardlink') {
        // The file it names may come later in path order: made once every record is in.
        if (r.of === undefined) throw this.bad(`memory hardlink ${JSON.stringify(r.path)} names no file ('of')`);
        bundlePathSegments(r.of, 'memory', this.path);
        this.hardLinks.push({ path: r.path, of: r.of });
        return;
      }
      if (r.type === 'symlink') {
        if (r.target === undefined) throw this.bad(`memory symlink ${JSON.stringify(r.path)} has no target`);
        files.symlink(this.tree, r.path, Buffer.from(r.target), spec);
        files.setattr(this.tree, r.path, { mtime: r.mtime });
        return;
      }
      node = files.create(this.tree, r.path, { ...spec, type: r.type }).node.id;
    } catch (err) {
      if (err instanceof FsError && err.path !== this.path) throw this.bad(`memory ${r.type} ${JSON.stringify(r.path)}: ${err.message}`);
      throw err;
    }
    if (r.type === 'dir') {
      this.dirTimes.push({ rel: r.path, mode: r.mode, mtime: r.mtime, where: 'memory' });
      return;
    }
    if (r.type !== 'file') {
      if (r.size !== 0) throw this.bad(`memory ${r.type} ${JSON.stringify(r.path)} has no content, not ${r.size} bytes`);
      files.setattr(this.tree, r.path, { mtime: r.mtime });
      return;
    }
    this.file = { rec: r, written: 0, node };
    if (r.size === 0) this.closeMemoryFile();
  }

  /** Further names of hard-linked files, once the files are all there; a name of nothing is EINVAL. */
  private linkNames(): void {
    const files = this.rt.storage.dataFiles;
    this.rt.storage.tx(() => {
      for (const l of this.hardLinks) {
        try {
          files.link(this.tree, l.of, l.path);
        } catch (err) {
          if (err instanceof FsError) throw this.bad(`memory hardlink ${JSON.stringify(l.path)} of ${JSON.stringify(l.of)}: ${err.message}`);
          throw err;
        }
      }
    });
  }

  private closeMemoryFile(): void {
    const f = this.file!;
    this.file = undefined;
    this.rt.storage.dataFiles.setattr(this.tree, f.rec.path, { mtime: f.rec.mtime });
  }

  /** Work dir records: only plain names, created below the fresh staging dir, never through a link. */
  private async stageWork(r: BundleRecord): Promise<void> {
    if (r.t === 'data') {
      const { bytes, offset, complete } = this.takeData(r.data);
      this.records++;
      await this.file!.fh!.write(bytes, 0, bytes.length, offset);
      if (complete) await this.closeWorkFile();
      return;
    }
    this.count(r);
    if (r.t !== 'work') throw this.bad(`unexpected ${r.t} record`);
    const where = `work path ${JSON.stringify(r.path)}`;
    const target = join(this.workStage, ...bundlePathSegments(r.path, 'work', this.path));
    try {
      if (r.type === 'dir') {
        await mkdir(target, { recursive: true, mode: 0o700 });
        this.dirTimes.push({ rel: target, mode: r.mode, mtime: r.mtime, where: 'work' });
        return;
      }
      await mkdir(dirname(target), { recursive: true, mode: 0o700 });
      const fh = await open(target, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW, 0o600);
      this.file = { rec: r, written: 0, fh };
      if (r.size === 0) await this.closeWorkFile();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'ELOOP') throw this.bad(`${where}: ${code} (named twice, or below a file)`);
      throw err;
    }
  }

  private async closeWorkFile(): Promise<void> {
    const f = this.file!;
    this.file = undefined;
    await f.fh!.chmod(f.rec.mode);
    await f.fh!.utimes(f.rec.mtime / 1000, f.rec.mtime / 1000);
    await f.fh!.close();
  }

  private async end(declared: number): Promise<void> {
    if (!this.header) throw this.bad('no header');
    if (this.file) throw this.bad(`file ${JSON.stringify(this.file.rec.path)} ends after ${this.file.written} of ${this.file.rec.size} bytes`);
    if (declared !== this.records) throw this.bad(`the end record counts ${declared} records, the bundle has ${this.records}`);
    this.done = true;
    this.linkNames();
    // Directory times last (creating children touched them), deepest first.
    for (const d of [...this.dirTimes].reverse()) {
      if (d.where === 'memory') this.rt.storage.dataFiles.setattr(this.tree, d.rel, { mtime: d.mtime });
      else {
        await chmod(d.rel, d.mode);
        await utimes(d.rel, d.mtime / 1000, d.mtime / 1000);
      }
    }
  }

  /**
   * Makes the agent exist, in one short transaction: the agents row, then every staged row, memory
   * file and event re-keyed to the new id. The work dir is moved into place just before it (a crash in
   * between leaves a work dir without agent, which the next start removes). Synchronous from the
   * checks to the commit, so no other create of the same name can come between.
   */
  finish(): string {
    const id = this.target!;
    const b = this.header!;
    const { store, storage, keys } = this.rt;
    if (store.hasAgent(id)) throw new FsError('EEXIST', this.path, `agent '${id}' already exists`);
    const workDir = agentWorkDir(this.rt.home, id);
    // What a delete of an older agent of this name may have left is not the new agent's.
    rmSync(workDir, { recursive: true, force: true });
    renameSync(this.workStage, workDir);
    try {
      this.rt.agents.adopt(id, () => {
        const row: Record<string, unknown> = { id };
        for (const col of AGENT_COLUMNS) if (col in b.agent) row[col] = b.agent[col];
        row['program'] = this.program;
        row['queue_depth'] = this.counts.inbox;
        row['deadletter_depth'] = this.counts.deadletter;
        row['seen_seq'] = this.counts.seen;
        store.importAgentRow(row);
        store.moveAgentRows(this.stagingId, id);
        storage.dataFiles.moveTree(this.tree, memoryTree(id));
        this.checkQuota(id, row);
        storage.eventStore.moveScope(this.stagingId, id);
        if (!this.hasIdentity) keys.create(id, Date.now());
        storage.db.prepare('DELETE FROM import_staging WHERE id = ?').run(this.stagingId);
        const fresh = !!this.options.new_identity || !this.hasIdentity;
        this.rt.tracer.emit(id, { type: 'imported', from: b.agent.id, exported_at: b.exported_at, new_identity: fresh });
      });
    } catch (err) {
      rmSync(workDir, { recursive: true, force: true });
      throw err;
    }
    return id;
  }

  /**
   * The imported agent must fit its own data quota (limits.memory_bytes, memory files plus work dir),
   * as every write does: else EDQUOT, and the transaction (with the row) rolls back.
   */
  private checkQuota(id: string, row: Record<string, unknown>): void {
    let limit = DEFAULT_MEMORY_BYTES;
    try {
      const limits = JSON.parse(String(row['limits'] ?? '{}')) as { memory_bytes?: unknown };
      if (typeof limits.memory_bytes === 'number') limit = limits.memory_bytes;
    } catch {
      /* the row's limits were checked when staged; a bad one keeps the default */
    }
    const memory = this.rt.quota.usage(id).memory_bytes;
    if (memory + this.workBytes > limit) {
      throw new FsError(
        'EDQUOT',
        this.path,
        `data quota exceeded: the bundle holds ${memory + this.workBytes} bytes (memory ${memory} + work dir ${this.workBytes}), over limits.memory_bytes ${limit}`,
      );
    }
  }

  /** Removes everything staged (an import that failed or was abandoned). */
  async abort(): Promise<void> {
    await this.file?.fh?.close().catch(() => undefined);
    this.file = undefined;
    dropStagedRows(this.rt, this.stagingId);
    await rm(this.workStage, { recursive: true, force: true });
  }
}
