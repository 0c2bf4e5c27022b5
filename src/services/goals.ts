/**
 * /goals: one JSON file per goal, `<id>.json`, validated on write ({description, priority, status, ...});
 * create or replace by writing, read, list, `rm`, rename; `new` is a call file that creates a goal with a
 * fresh id (or the `id` given) and answers `{id, path}`.
 */
import { FsError } from '../fs/errors.js';
import { jsonText } from '../fs/bytes.js';
import { SyntheticHandle } from '../fs/handles.js';
import { completeJsonObject, parseJson } from '../fs/synthetic.js';
import type { Cx, DirEntry, FileService, Handle, OpenFlags, ReadOptions, SetAttr, Stat, WriteFileOptions } from '../fs/types.js';
import { callerPath, MODE } from '../fs/types.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import type { GoalRow } from '../runtime/agent-store/index.js';
import { newId } from '../runtime/envelope.js';
import { GoalSchema, RECORD_ID_RE, validate } from '../runtime/spec.js';

const SUFFIX = '.json';
const MAX_GOAL_BYTES = 256 * 1024;

/**
 * Goals being created by an open handle (`echo '{...}' > goals/g1.json` on the mount): the goal exists
 * from the create on for stat (the kernel stats what it created) and listings, empty, until the writer's
 * close stores it. Kept per runtime, not per GoalsFs: an agent's view may be rebuilt while a handle is open.
 */
const creating = new WeakMap<AgentRuntime, Map<string, number>>();

function creatingOf(rt: AgentRuntime): Map<string, number> {
  let m = creating.get(rt);
  if (!m) creating.set(rt, (m = new Map()));
  return m;
}

export class GoalsFs implements FileService {
  readonly serviceName = 'goals';

  constructor(
    private readonly rt: AgentRuntime,
    private readonly id: string,
  ) {}

  /** The goal id a path names (`/<id>.json`), or EINVAL/ENOENT. */
  private goalId(path: string): string {
    const name = path.slice(1);
    if (name.includes('/')) throw new FsError('ENOENT', path, 'goals is a flat directory');
    if (!name.endsWith(SUFFIX)) throw new FsError('ENOENT', path, 'goal files are named <id>.json');
    const goalId = name.slice(0, -SUFFIX.length);
    if (!RECORD_ID_RE.test(goalId)) throw new FsError('EINVAL', path, `invalid goal id '${goalId}' (use [A-Za-z0-9._:@+=-], not starting with . or -)`);
    return goalId;
  }

  private rowStat(row: GoalRow, size = jsonText(JSON.parse(row.body)).length): Stat {
    return { type: 'file', kind: 'view', size, mode: 0o644, mtime: row.updated_at, ctime: row.created_at, version: row.version };
  }

  private rootStat(): Stat {
    const agent = this.rt.store.getAgent(this.id);
    const t = agent?.created_at ?? Date.now();
    return { type: 'dir', kind: 'dir', size: 0, mode: MODE.dir, mtime: t, ctime: t, version: 0 };
  }

  private isCreating(goalId: string): boolean {
    return creatingOf(this.rt).has(`${this.id}/${goalId}`);
  }

  /** A goal being created by an open handle: empty until its writer closes. */
  private creatingStat(): Stat {
    const t = Date.now();
    return { type: 'file', kind: 'view', size: 0, mode: 0o644, mtime: t, ctime: t, version: 0 };
  }

  private newStat(): Stat {
    const s = this.rootStat();
    return { ...s, type: 'file', kind: 'call', mode: MODE.call };
  }

  async stat(path: string): Promise<Stat> {
    if (path === '/') return this.rootStat();
    if (path === '/new') return this.newStat();
    const goalId = this.goalId(path);
    const row = this.rt.store.goalOne(this.id, goalId);
    if (row) return this.rowStat(row);
    if (this.isCreating(goalId)) return this.creatingStat();
    throw new FsError('ENOENT', path, 'no such goal');
  }

  async readdir(path: string): Promise<DirEntry[]> {
    if (path !== '/') {
      await this.stat(path);
      throw new FsError('ENOTDIR', path, 'not a directory');
    }
    const rows = this.rt.store.goalList(this.id);
    const stored = new Set(rows.map((r) => r.goal_id));
    const prefix = `${this.id}/`;
    const beingCreated = [...creatingOf(this.rt).keys()]
      .filter((k) => k.startsWith(prefix) && !stored.has(k.slice(prefix.length)))
      .map((k) => ({ name: k.slice(prefix.length) + SUFFIX, stat: this.creatingStat() }));
    return [
      { name: 'new', stat: this.newStat() },
      ...rows.map((r) => ({ name: r.goal_id + SUFFIX, stat: this.rowStat(r) })),
      ...beingCreated,
    ];
  }

  /** Validates and stores a goal; emits created/modified with the new version. */
  private put(goalId: string, data: Uint8Array, path: string, ifVersion?: number): GoalRow {
    if (data.length > MAX_GOAL_BYTES) throw new FsError('EFBIG', path, `goal larger than ${MAX_GOAL_BYTES} bytes`);
    const goal = validate(GoalSchema, parseJson(data, path), path, 'goal');
    return this.rt.storage.tx(() => {
      const current = this.rt.store.goalOne(this.id, goalId);
      if (ifVersion !== undefined && (current?.version ?? 0) !== ifVersion) {
        throw new FsError('ESTALE', path, `version is ${current?.version ?? 0}, not ${ifVersion}`);
      }
      const row = this.rt.store.goalPut(this.id, goalId, JSON.stringify(goal), Date.now());
      this.rt.storage.events.emit(this.id, `/goals/${goalId}${SUFFIX}`, current ? 'modified' : 'created', { version: row.version });
      return row;
    });
  }

  async open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    if (path === '/') throw new FsError('EISDIR', path, 'is a directory');
    const canRead = flags.read ?? !flags.write;
    const canWrite = !!flags.write;
    if (path === '/new') {
      return new SyntheticHandle({ path, kind: 'call', canRead, canWrite, maxBytes: MAX_GOAL_BYTES, call: async (req) => this.create(req, path, cx) });
    }
    const goalId = this.goalId(path);
    const row = this.rt.store.goalOne(this.id, goalId);
    const exists = row !== undefined || this.isCreating(goalId);
    if (!exists && !(canWrite && flags.create)) throw new FsError('ENOENT', path, 'no such goal');
    if (exists && flags.create && flags.exclusive) throw new FsError('EEXIST', path, 'goal exists');
    const handle = new SyntheticHandle({
      path,
      kind: 'view',
      canRead,
      canWrite,
      maxBytes: MAX_GOAL_BYTES,
      ...(canRead ? { snapshot: new TextEncoder().encode(row ? jsonText(JSON.parse(row.body)) : '') } : {}),
      // Stored by the write that completes the JSON object, so `echo '{bad field}' > g.json` fails at write(2).
      ...(canWrite ? { commit: async (data: Uint8Array) => void this.put(goalId, data, path), complete: completeJsonObject } : {}),
      stat: () => this.stat(path),
    });
    return exists ? handle : new CreatingGoal(handle, creatingOf(this.rt), `${this.id}/${goalId}`, path);
  }

  private create(req: Uint8Array, path: string, cx: Cx): string {
    const body = parseJson(req, path);
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new FsError('EINVAL', path, 'expected a JSON object');
    const { id: given, ...goal } = body as Record<string, unknown>;
    if (given !== undefined && (typeof given !== 'string' || !RECORD_ID_RE.test(given))) throw new FsError('EINVAL', path, 'id: invalid goal id');
    const goalId = (given as string | undefined) ?? `goal-${newId()}`;
    if (this.rt.store.goalOne(this.id, goalId)) throw new FsError('EEXIST', path, `goal '${goalId}' exists`);
    this.put(goalId, new TextEncoder().encode(JSON.stringify(goal)), path, 0);
    // Named where the call was made (`/agents/<id>/goals/...` through the global view).
    return jsonText({ id: goalId, path: callerPath(cx, `/goals/${goalId}${SUFFIX}`) });
  }

  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions): Promise<Stat> {
    if (opts.append) throw new FsError('EINVAL', path, 'goals are whole JSON documents; write, do not append');
    if (path === '/new') throw new FsError('EINVAL', path, 'new is a call file: write and read on one handle (HTTP POST)');
    return this.rowStat(this.put(this.goalId(path), data, path, opts.ifVersion));
  }

  /**
   * `touch` on a goal (and editors that set times or the mode they found): times are taken and not
   * kept (a goal's mtime is when it was last written), the goal's own mode is accepted; anything else
   * is EPERM.
   */
  async setattr(path: string, attrs: SetAttr): Promise<Stat> {
    const st = await this.stat(path);
    if (st.type === 'dir' || path === '/new') throw new FsError('EPERM', path, 'cannot change attributes here');
    if ((attrs.mode !== undefined && attrs.mode !== st.mode) || attrs.uid !== undefined || attrs.gid !== undefined) {
      throw new FsError('EPERM', path, 'the mode and owner of a goal are fixed');
    }
    return st;
  }

  async truncate(path: string, size: number): Promise<void> {
    // `echo ... > goals/x.json` truncates first; the content is replaced when the writer closes.
    await this.stat(path);
    if (size !== 0) throw new FsError('EINVAL', path, 'only truncation to 0 is supported');
  }

  async remove(path: string, _cx: Cx, opts: { dir?: boolean } = {}): Promise<void> {
    if (path === '/' || path === '/new') throw new FsError('EBUSY', path, 'cannot remove this');
    if (opts.dir) throw new FsError('ENOTDIR', path, 'not a directory');
    const goalId = this.goalId(path);
    this.rt.storage.tx(() => {
      if (!this.rt.store.goalDelete(this.id, goalId)) throw new FsError('ENOENT', path, 'no such goal');
      this.rt.storage.events.emit(this.id, `/goals/${goalId}${SUFFIX}`, 'deleted');
    });
  }

  async rename(from: string, to: string): Promise<void> {
    const a = this.goalId(from);
    const b = this.goalId(to);
    if (a === b) return;
    this.rt.storage.tx(() => {
      const row = this.rt.store.goalOne(this.id, a);
      if (!row) throw new FsError('ENOENT', from, 'no such goal');
      const now = Date.now();
      this.rt.store.goalDelete(this.id, b);
      const moved = this.rt.store.goalPut(this.id, b, row.body, now);
      this.rt.store.goalDelete(this.id, a);
      this.rt.storage.events.emit(this.id, `/goals/${a}${SUFFIX}`, 'deleted');
      this.rt.storage.events.emit(this.id, `/goals/${b}${SUFFIX}`, 'created', { version: moved.version });
    });
  }
}

/**
 * The handle that creates a goal (an open with O_CREAT of one that does not exist): the goal is listed
 * from the open on and stored at the writer's close. A close with nothing written fails with EINVAL
 * (`touch goals/g.json`: a goal is its JSON, and an empty file is none), so nothing is made silently.
 */
class CreatingGoal implements Handle {
  readonly kind = 'view' as const;
  private written = false;
  private closed = false;
  readonly stat: () => Promise<Stat>;

  constructor(
    private readonly inner: SyntheticHandle,
    private readonly registry: Map<string, number>,
    private readonly key: string,
    private readonly path: string,
  ) {
    registry.set(key, (registry.get(key) ?? 0) + 1);
    this.stat = () => inner.stat();
  }

  read(length: number, offset: number, opts?: ReadOptions): Promise<Uint8Array> {
    return this.inner.read(length, offset, opts);
  }

  async write(data: Uint8Array, offset: number): Promise<number> {
    // A write refused (EFBIG) was reported by that write: the close does not add "nothing written".
    if (data.length > 0) this.written = true;
    return this.inner.write(data, offset);
  }

  async flush(): Promise<void> {
    if (!this.written) {
      throw new FsError('EINVAL', this.path, 'nothing written: a goal is created by writing its JSON to it, {"description": "..."}');
    }
    await this.inner.flush();
  }

  async truncate(size: number): Promise<void> {
    return this.inner.truncate(size);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      // With nothing written the inner handle has nothing to commit (the refusal was flush's).
      await this.inner.close();
    } finally {
      const left = (this.registry.get(this.key) ?? 1) - 1;
      if (left > 0) this.registry.set(this.key, left);
      else this.registry.delete(this.key);
    }
  }
}
