/**
 * The server's namespace (the global view): `/agents` lists the agents and nests each agent's local
 * namespace at `/agents/<id>`; `/agents/new` and `/agents/import` create agents; removing `/agents/<id>`
 * deletes one; `/runtime/status` describes the server, `/runtime/tokens` manages tokens, `/runtime/metrics`
 * is its Prometheus text. Agent namespaces are built on first access and a
 * bounded number are cached (LRU), so idle agents cost no objects.
 */
import { FsError, rebaseError } from '../fs/errors.js';
import { SERVER_SCOPE, prefixMatcher, unionMatcher, type Matcher } from '../fs/events.js';
import { Namespace, rebasedHandle, type WatchSource } from '../fs/namespace.js';
import { SyntheticHandle } from '../fs/handles.js';
import { SyntheticFs, dir, jsonView, parseJson } from '../fs/synthetic.js';
import { isUnder, joinPath, relativeTo, segmentsOf } from '../fs/paths.js';
import { jsonText } from '../fs/bytes.js';
import type { Cx, DirEntry, FileService, FsSpace, Handle, OpenFlags, SetAttr, Stat, StatAndData, WriteFileOptions } from '../fs/types.js';
import { MODE, NO_LIMIT, withPlace } from '../fs/types.js';
import type { Registry } from 'prom-client';
import { mountWithAccess, ReadOnly, ReadWrite } from './access.js';
import type { AccessLevel } from '../fs/access-levels.js';
import { buildAgentView, type AgentMount } from './agent-view.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import { statusOf } from '../services/status.js';
import { agentRoot, type TokenStore } from '../runtime/token-store.js';
import { prometheusFile } from '../services/prometheus-file.js';
import { TokenService } from '../services/token-files.js';
import { ImportHandle } from '../runtime/import-handle.js';
import { agent9Version } from '../runtime/version.js';

const CREATE_FILES = ['new', 'import'] as const;
const READ_ALL = 1 << 30;

/** Agent namespaces, built on demand; the `capacity` most recently used are kept. */
export class AgentViews {
  private readonly cache = new Map<string, Namespace>();

  constructor(
    private readonly rt: AgentRuntime,
    private readonly mounts: () => readonly AgentMount[],
    readonly capacity = 256,
  ) {}

  get size(): number {
    return this.cache.size;
  }

  /** The agent's namespace, or ENOENT naming `path`. */
  get(id: string, path = '/'): Namespace {
    const hit = this.cache.get(id);
    if (hit) {
      this.cache.delete(id);
      this.cache.set(id, hit);
      return hit;
    }
    if (!this.rt.agents.has(id)) throw new FsError('ENOENT', path, `no agent '${id}'`);
    const ns = buildAgentView(this.rt, id, this.mounts());
    this.cache.set(id, ns);
    if (this.cache.size > this.capacity) this.cache.delete(this.cache.keys().next().value as string);
    return ns;
  }

  evict(id: string): void {
    this.cache.delete(id);
  }

  clear(): void {
    this.cache.clear();
  }
}

function dirStat(t: number, version = 0): Stat {
  return { type: 'dir', kind: 'dir', size: 0, mode: MODE.dir, mtime: t, ctime: t, version };
}

/** `/agents`: one directory per agent (its local namespace), plus the `new` and `import` call files. */
export class AgentsFs implements FileService, WatchSource {
  readonly serviceName = 'agents';
  private readonly bootTime = Date.now();

  constructor(
    private readonly rt: AgentRuntime,
    private readonly views: AgentViews,
  ) {}

  /** Splits `/<id>/rest` into the agent and the path inside its namespace. */
  private split(path: string): { id: string; rest: string } | undefined {
    // Paths come normalised ('/', or '/a/b' without a trailing slash): the first segment is up to the next '/'.
    if (path === '/') return undefined;
    const slash = path.indexOf('/', 1);
    const id = slash < 0 ? path.slice(1) : path.slice(1, slash);
    if ((CREATE_FILES as readonly string[]).includes(id)) return undefined;
    return { id, rest: slash < 0 ? '/' : path.slice(slash) };
  }

  private async inAgent<T>(path: string, fn: (ns: Namespace, rest: string, id: string) => Promise<T>): Promise<T> {
    const target = this.split(path)!;
    const ns = this.views.get(target.id, path);
    try {
      return await fn(ns, target.rest, target.id);
    } catch (err) {
      throw rebaseError(err, `/${target.id}`, target.rest);
    }
  }

  private callStat(): Stat {
    return { type: 'file', kind: 'call', size: 0, mode: MODE.call, mtime: this.bootTime, ctime: this.bootTime, version: 0 };
  }

  private agentDirStat(id: string, path: string): Stat {
    const row = this.rt.store.getAgent(id);
    if (!row) throw new FsError('ENOENT', path, `no agent '${id}'`);
    return dirStat(row.updated_at, row.inbox_version + row.tick_count);
  }

  async stat(path: string, cx: Cx): Promise<Stat> {
    if (path === '/') return dirStat(this.bootTime, this.rt.agents.count);
    const target = this.split(path);
    if (!target) {
      if (segmentsOf(path).length === 1) return this.callStat();
      throw new FsError('ENOTDIR', path, 'not a directory');
    }
    if (target.rest === '/') return this.agentDirStat(target.id, path);
    return this.inAgent(path, (ns, rest) => ns.stat(rest, cx));
  }

  async readdir(path: string, cx: Cx): Promise<DirEntry[]> {
    if (path === '/') {
      const entries: DirEntry[] = CREATE_FILES.map((name) => ({ name, stat: this.callStat() }));
      for (const a of this.rt.store.listAgents()) entries.push({ name: a.id, stat: dirStat(a.updated_at) });
      return entries;
    }
    const target = this.split(path);
    if (!target) throw new FsError('ENOTDIR', path, 'not a directory');
    return this.inAgent(path, (ns, rest) => ns.readdir(rest, cx));
  }

  async open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    if (path === '/') throw new FsError('EISDIR', path, 'is a directory');
    const target = this.split(path);
    if (!target) {
      const name = segmentsOf(path)[0]!;
      if (segmentsOf(path).length > 1) throw new FsError('ENOTDIR', path, 'not a directory');
      const canRead = flags.read ?? !flags.write;
      const canWrite = !!flags.write;
      if (name === 'new') {
        return new SyntheticHandle({ path, kind: 'call', canRead, canWrite, call: async (req) => this.create(req, path), stat: async () => this.callStat() });
      }
      // Import reads the bundle as it is written (staged as it arrives), never holding it whole.
      if (!canWrite) return new SyntheticHandle({ path, kind: 'call', canRead, canWrite, call: async () => this.import(path), stat: async () => this.callStat() });
      return new ImportHandle(this.rt, path, canRead, (id) => jsonText(statusOf(this.rt, id, path)), () => this.callStat());
    }
    if (target.rest === '/') throw new FsError('EISDIR', path, 'is a directory');
    // A call's answer names the agent's files where this view has them (`/agents/<id>/compute/jobs/...`).
    return this.inAgent(path, async (ns, rest, id) => rebasedHandle(await ns.open(rest, flags, withPlace(cx, (p) => joinPath(agentRoot(id), p))), `/${id}`, rest));
  }

  private create(req: Uint8Array, path: string): string {
    if (req.length === 0) throw new FsError('EINVAL', path, 'write an agent spec: {"name": ..., "program": ...}');
    const agent = this.rt.agents.create(parseJson(req, path), path);
    return jsonText(statusOf(this.rt, agent.id, path));
  }

  private import(path: string): string {
    throw new FsError('EINVAL', path, 'write an export bundle');
  }

  async mkdir(path: string, _mode: number, cx: Cx): Promise<void> {
    const target = this.split(path);
    if (!target || target.rest === '/') {
      if (target && this.rt.agents.has(target.id)) throw new FsError('EEXIST', path, 'agent exists');
      throw new FsError('EPERM', path, 'create agents by writing a spec to /agents/new');
    }
    return this.inAgent(path, (ns, rest) => ns.mkdir(rest, _mode, cx));
  }

  async remove(path: string, cx: Cx, opts?: { dir?: boolean }): Promise<void> {
    const target = this.split(path);
    if (!target) throw new FsError('EBUSY', path, 'cannot remove this');
    if (target.rest === '/') return this.rt.agents.delete(target.id, path);
    return this.inAgent(path, (ns, rest) => ns.remove(rest, cx, opts));
  }

  async rename(from: string, to: string, cx: Cx): Promise<void> {
    const a = this.split(from);
    const b = this.split(to);
    if (!a || !b || a.rest === '/' || b.rest === '/') throw new FsError('EPERM', from, 'agents cannot be renamed (export and import under the new name)');
    if (a.id !== b.id) throw new FsError('EXDEV', from, `cannot rename across agents to ${to}`);
    return this.inAgent(from, (ns, rest) => ns.rename(rest, b.rest, cx));
  }

  async truncate(path: string, size: number, cx: Cx): Promise<void> {
    if (!this.split(path)) {
      // `echo spec > /agents/new` opens with O_TRUNC: call files start empty.
      if (size !== 0) throw new FsError('EINVAL', path, 'only truncation to 0 is supported');
      return;
    }
    return this.inAgent(path, (ns, rest) => ns.truncate(rest, size, cx));
  }

  /** A new name inside an agent (symlink, mknod, link): agents and the call files are not made this way. */
  private newName(path: string): { id: string; rest: string } {
    const target = this.split(path);
    if (!target || target.rest === '/') {
      if (target && !this.rt.agents.has(target.id)) throw new FsError('EPERM', path, 'create agents by writing a spec to /agents/new');
      throw new FsError('EEXIST', path, 'file exists');
    }
    return target;
  }

  async symlink(path: string, target: string, cx: Cx): Promise<Stat> {
    this.newName(path);
    return this.inAgent(path, (ns, rest) => ns.symlink(rest, target, cx));
  }

  async readlink(path: string, cx: Cx): Promise<string> {
    const target = this.split(path);
    if (!target || target.rest === '/') throw new FsError('EINVAL', path, 'not a symbolic link');
    return this.inAgent(path, (ns, rest) => ns.readlink(rest, cx));
  }

  async link(from: string, to: string, cx: Cx): Promise<Stat> {
    const a = this.split(from);
    const b = this.newName(to);
    if (!a || a.rest === '/') throw new FsError('EPERM', from, 'hard links to directories and call files are not allowed');
    if (a.id !== b.id) throw new FsError('EXDEV', to, `cannot link across agents to ${from}`);
    return this.inAgent(to, (ns, rest) => ns.link(a.rest, rest, cx));
  }

  async mknod(path: string, type: 'fifo' | 'socket', mode: number, cx: Cx): Promise<Stat> {
    this.newName(path);
    return this.inAgent(path, (ns, rest) => ns.mknod(rest, type, mode, cx));
  }

  async realpath(path: string, followLast: boolean, cx: Cx): Promise<string> {
    const target = this.split(path);
    if (!target || target.rest === '/') return path;
    const inner = await this.inAgent(path, (ns, rest) => ns.realpath(rest, followLast, cx));
    return inner === '/' ? `/${target.id}` : `/${target.id}${inner}`;
  }

  /** The space of a path inside an agent (its memory reports its quota); the rest has no limit. */
  async statfs(path: string, cx: Cx): Promise<FsSpace> {
    const target = this.split(path);
    if (!target || target.rest === '/') return NO_LIMIT;
    return this.inAgent(path, (ns, rest) => ns.statfs(rest, cx));
  }

  async setattr(path: string, attrs: SetAttr, cx: Cx): Promise<Stat> {
    if (!this.split(path)) throw new FsError('EPERM', path, 'cannot change attributes here');
    return this.inAgent(path, (ns, rest) => ns.setattr(rest, attrs, cx));
  }

  async readFile(path: string, cx: Cx): Promise<Uint8Array> {
    const target = this.split(path);
    if (!target) {
      // Reading a call file without a request gives its usage error, as any call file does.
      const handle = await this.open(path, { read: true }, cx);
      try {
        return await handle.read(READ_ALL, 0);
      } finally {
        await handle.close();
      }
    }
    if (target.rest === '/') throw new FsError('EISDIR', path, 'is a directory');
    return this.inAgent(path, (ns, rest) => ns.readFile(rest, cx));
  }

  /** Stat and content in one step where the agent's service has it (data files): one walk per GET, not two. */
  async readStat(path: string, cx: Cx): Promise<StatAndData> {
    const target = this.split(path);
    if (!target || target.rest === '/') return { stat: await this.stat(path, cx) };
    return this.inAgent(path, (ns, rest) => ns.readStat(rest, cx));
  }

  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat> {
    const target = this.split(path);
    if (!target || target.rest === '/') {
      throw new FsError('EINVAL', path, 'call file: write a request and read the answer on one handle (HTTP POST)');
    }
    return this.inAgent(path, (ns, rest) => ns.writeFile(rest, data, opts, cx));
  }

  async watchMatcher(path: string, cx: Cx): Promise<Matcher | undefined> {
    const agents = this.rt.agents;
    const serverUnder = (prefix: string): Matcher => ({
      scopes: [SERVER_SCOPE],
      map: (rec) => (rec.scope === SERVER_SCOPE && isUnder(rec.path, prefix) ? relativeTo(rec.path, '/agents') : undefined),
    });
    if (path === '/') {
      return unionMatcher([
        serverUnder('/agents'),
        { scopes: '*', map: (rec) => (rec.scope !== SERVER_SCOPE && agents.has(rec.scope) ? `/${rec.scope}${rec.path === '/' ? '' : rec.path}` : undefined) },
      ]);
    }
    const target = this.split(path);
    if (!target) return undefined;
    const parts: Matcher[] = [serverUnder(`/agents${path}`)];
    if (agents.has(target.id)) {
      const inner = await this.inAgent(path, (ns, rest) => ns.watchMatcher(rest, cx));
      if (inner) parts.push(prefixMatcher(inner, `/${target.id}`));
    } else {
      // Not created yet: its events will be in its own scope.
      parts.push({
        scopes: [target.id],
        map: (rec) => (rec.scope === target.id && isUnder(rec.path, target.rest) ? `/${target.id}${rec.path === '/' ? '' : rec.path}` : undefined),
      });
    }
    return unionMatcher(parts);
  }
}

/** `/runtime`: server-level files. */
export function runtimeService(rt: AgentRuntime, views: AgentViews): SyntheticFs {
  return new SyntheticFs(
    dir({
      status: jsonView(() => ({
        version: agent9Version(),
        started_at: rt.startedAt,
        uptime_ms: Date.now() - rt.startedAt,
        agents: { total: rt.agents.count, by_state: rt.store.countByState() },
        ticks_running: rt.engine.locks.size,
        enqueue_commits: rt.queues.commitStats,
        tick_commits: rt.engine.commits.stats,
        data_file_commits: rt.storage.dataFileCommits,
        scheduler: rt.scheduler.isRunning ? rt.scheduler.stats() : null,
        namespaces_cached: views.size,
        watchers: rt.storage.events.subscriberCount,
        programs: rt.programs.names(),
        budgets: rt.engine.budgets ? 'ledger' : 'none',
        database: rt.storage.file,
      })),
    }),
    'runtime',
  );
}

/** A server-level file of a capability (`/runtime/nostr`), mounted behind its access level. */
export interface ServerMount {
  path: string;
  service: FileService;
  access: AccessLevel;
}

/** What `/runtime` serves besides `status`: token management, the server's metrics, the capabilities' files. */
export interface ServerFiles {
  tokens: TokenStore;
  /** Read together into `/runtime/metrics` (the server's registry and the process-wide one). */
  metrics: Registry[];
  /** Files of the capabilities under `/runtime`. */
  mounts?: readonly ServerMount[];
}

/**
 * Mounts `/runtime/tokens` and `/runtime/metrics` into a global view. The assembly does it once, so that
 * `/runtime` holds the same entries whichever transport serves it (HTTP, FUSE, both, or none).
 */
export function mountServerFiles(ns: Namespace, files: ServerFiles): void {
  mountWithAccess(ns, '/runtime/tokens', new TokenService(files.tokens), ReadWrite);
  mountWithAccess(ns, '/runtime/metrics', prometheusFile(...files.metrics), ReadOnly);
  for (const m of files.mounts ?? []) {
    if (!isUnder(m.path, '/runtime') || m.path === '/runtime') throw new Error(`a capability's server file must be under /runtime (got ${m.path})`);
    mountWithAccess(ns, m.path, m.service, m.access);
  }
}

/** The global view: `/agents` and `/runtime` (status, tokens, metrics), plus the `/mounts` every namespace has. */
export function buildGlobalView(rt: AgentRuntime, views: AgentViews, files: ServerFiles): Namespace {
  const ns = new Namespace({ scope: SERVER_SCOPE, events: rt.storage.events, name: 'server' });
  mountWithAccess(ns, '/agents', new AgentsFs(rt, views), ReadWrite);
  mountWithAccess(ns, '/runtime', runtimeService(rt, views), ReadOnly);
  mountServerFiles(ns, files);
  return ns;
}
