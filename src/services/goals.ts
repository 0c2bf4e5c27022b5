/**
 * /goals: one JSON file per goal, `<id>.json`, validated on write ({description, priority, status, ...});
 * create or replace by writing, read, list, `rm`, rename; `new` is a call file that creates a goal with a
 * fresh id (or the `id` given) and answers `{id, path}`.
 */
import { FsError } from '../fs/errors.js';
import { jsonText } from '../fs/bytes.js';
import { SyntheticHandle } from '../fs/handles.js';
import { parseJson } from '../fs/synthetic.js';
import type { Cx, DirEntry, FileService, Handle, OpenFlags, Stat, WriteFileOptions } from '../fs/types.js';
import { callerPath, MODE } from '../fs/types.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import type { GoalRow } from '../runtime/agent-store/index.js';
import { newId } from '../runtime/envelope.js';
import { GoalSchema, RECORD_ID_RE, validate } from '../runtime/spec.js';

const SUFFIX = '.json';
const MAX_GOAL_BYTES = 256 * 1024;

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

  private newStat(): Stat {
    const s = this.rootStat();
    return { ...s, type: 'file', kind: 'call', mode: MODE.call };
  }

  async stat(path: string): Promise<Stat> {
    if (path === '/') return this.rootStat();
    if (path === '/new') return this.newStat();
    const row = this.rt.store.goalOne(this.id, this.goalId(path));
    if (!row) throw new FsError('ENOENT', path, 'no such goal');
    return this.rowStat(row);
  }

  async readdir(path: string): Promise<DirEntry[]> {
    if (path !== '/') {
      await this.stat(path);
      throw new FsError('ENOTDIR', path, 'not a directory');
    }
    return [
      { name: 'new', stat: this.newStat() },
      ...this.rt.store.goalList(this.id).map((r) => ({ name: r.goal_id + SUFFIX, stat: this.rowStat(r) })),
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
    if (!row && !(canWrite && flags.create)) throw new FsError('ENOENT', path, 'no such goal');
    if (row && flags.create && flags.exclusive) throw new FsError('EEXIST', path, 'goal exists');
    return new SyntheticHandle({
      path,
      kind: 'view',
      canRead,
      canWrite,
      maxBytes: MAX_GOAL_BYTES,
      ...(canRead ? { snapshot: new TextEncoder().encode(row ? jsonText(JSON.parse(row.body)) : '') } : {}),
      ...(canWrite ? { commit: async (data: Uint8Array) => void this.put(goalId, data, path) } : {}),
      stat: () => this.stat(path),
    });
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
