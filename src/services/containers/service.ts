/**
 * One agent's /containers as files, over the shared ContainerEngine:
 *
 *   new                                call: session request JSON -> {session_id, status, paths}
 *   sessions/                          one directory per session of this agent (finished ones too)
 *   sessions/<sid>/status              view: state, limits, times, exit code, error, cost
 *   sessions/<sid>/result              view: the outcome; EAGAIN "not ready" until the session ends
 *   sessions/<sid>/usage               view: cpu, peak memory, duration, cost (live while it runs)
 *   sessions/<sid>/output              stream: {session_id, exec_id, stream, data} per line, from its beginning
 *   sessions/<sid>/ctl                 message: stop | kill
 *   sessions/<sid>/exec/new            call: a command line or {command, stdin, timeout_secs, env, workdir, user}
 *   sessions/<sid>/exec/<eid>/status   view
 *   sessions/<sid>/exec/<eid>/result   view: exit code, stdout, stderr, timed_out, killed, oom_killed
 *   sessions/<sid>/exec/<eid>/output   stream: as the session's, for this command only
 *   sessions/<sid>/exec/<eid>/stdout   stream: the command's stdout as raw text
 *   sessions/<sid>/exec/<eid>/stderr   stream: its stderr as raw text
 *   sessions/<sid>/exec/<eid>/stdin    message: each write goes to its stdin (started with "stdin": true)
 *   sessions/<sid>/exec/<eid>/ctl      message: kill | signal NAME | eof
 *   sessions/<sid>/files/<path>        the workdir as a real tree (see files.ts)
 *   providers/<id>/{info,health,images}
 *   policy                             view, writable (admin-write where mounted)
 *   usage                              view: budget windows, scopes, session counts
 */
import { jsonText } from '../../fs/bytes.js';
import { FsError } from '../../fs/errors.js';
import type { EventRecord, Matcher } from '../../fs/events.js';
import type { WatchSource } from '../../fs/namespace.js';
import { isUnder } from '../../fs/paths.js';
import { SyntheticFs, call, completeJsonObject, dir, jsonView, message, stream, type DirNode, type Node } from '../../fs/synthetic.js';
import type { Cx, DirEntry, FileService, FsEvent, Handle, OpenFlags, SetAttr, Stat, WriteFileOptions } from '../../fs/types.js';
import { MODE, placeAnswerPaths } from '../../fs/types.js';
import { capabilityRoot, recordFiles, recordMeta, recordStream } from '../kit/surface.js';
import { parseExecCommand, parseSessionCommand } from './commands.js';
import type { ContainerEngine } from './engine.js';
import { SessionFiles, type FileTarget } from './files.js';
import { SESSION_TERMINAL, type ExecRecord, type OutputChunk, type SessionRecord } from './types.js';

export interface ContainersServiceOptions {
  engine: ContainerEngine;
  agentId: string;
}

/** Paths of this service only an admin may write (pass to mountWithAccess as `adminWrite`). */
export const CONTAINERS_ADMIN_WRITE = ['/policy'] as const;

const filesByEngine = new WeakMap<ContainerEngine, SessionFiles>();

function filesOf(engine: ContainerEngine): SessionFiles {
  let f = filesByEngine.get(engine);
  if (!f) filesByEngine.set(engine, (f = new SessionFiles(engine)));
  return f;
}

const FILES_PATH = /^\/sessions\/([^/]+)\/files(?:\/(.*))?$/s;
const RAW_STREAM_PATH = /^\/sessions\/([^/]+)\/exec\/([^/]+)\/(stdout|stderr)$/;

/** The FileService an agent's namespace mounts at /containers (policy admin-write: CONTAINERS_ADMIN_WRITE). */
export function createContainersService({ engine, agentId }: ContainersServiceOptions): FileService & WatchSource {
  return new ContainersFs(engine, agentId);
}

class ContainersFs implements FileService, WatchSource {
  readonly serviceName = 'containers';
  private readonly tree: SyntheticFs;
  private readonly files: SessionFiles;

  constructor(
    private readonly engine: ContainerEngine,
    private readonly agentId: string,
  ) {
    this.files = filesOf(engine);
    this.tree = new SyntheticFs(this.root(), 'containers');
  }

  private root(): DirNode {
    const { engine, agentId } = this;
    return capabilityRoot({
      submit: (request) => engine.submit(agentId, request, '/new'),
      records: {
        name: 'sessions',
        ids: () => engine.sessions.ids(agentId),
        get: (sid) => {
          const rec = engine.session(agentId, sid);
          return rec ? this.sessionDir(rec) : undefined;
        },
      },
      providers: {
        ids: () => engine.providers().map((p) => p.id),
        views: (id) => {
          const provider = engine.provider(id);
          if (!provider) return undefined;
          return { info: () => provider.info(), health: () => engine.health(provider), images: () => provider.images() };
        },
      },
      policy: { entry: () => engine.policies.get(agentId), write: (value) => void engine.setPolicy(agentId, value, '/policy') },
      usage: () => engine.usage(agentId),
    });
  }

  private sessionDir(rec: SessionRecord): DirNode {
    const { engine, agentId } = this;
    const sid = rec.id;
    const base = `/sessions/${sid}`;
    const fresh = (path: string) => engine.needSession(agentId, sid, path);
    const meta = recordMeta(() => engine.session(agentId, sid), rec.createdAt);
    const f = recordFiles<SessionRecord>({
      base,
      fresh,
      meta,
      status: (r) => engine.statusOf(r),
      result: (r, path) => engine.resultOf(r, path),
      // An interactive session lives until it is stopped: a read of its result does not wait for that.
      bounded: (r) => r.request.kind === 'ephemeral',
      channel: engine.channel(agentId),
      stream: {
        events: (_cx, signal) => sessionOutput(engine, agentId, sid, signal),
        mtime: () => rec.createdAt,
        finite: () => {
          const now = engine.session(agentId, sid);
          return { after: rec.streamFrom, ended: !now || SESSION_TERMINAL.has(now.status) };
        },
      },
      checkCtl: (command, path) => void parseSessionCommand(command, path),
      ctl: (command, path) => engine.ctl(agentId, sid, command, path),
    });
    const children: Record<string, Node> = {
      // Status (its running execs) and usage are partly live: their versions are digests of what they
      // show, not the record's, which does not change with them.
      status: jsonView(() => engine.statusOf(fresh(`${base}/status`)), { mtime: meta.mtime }),
      result: f.result,
      usage: jsonView(() => engine.sessionUsage(fresh(`${base}/usage`)), { mtime: meta.mtime, sizeAtStat: false }),
      output: f.stream,
      ctl: f.ctl,
      exec: {
        kind: 'dir',
        children: {
          // A JSON request is sent by the write that completes it; a plain command line at the first read or close.
          new: call(async (request, cx) => jsonText(placeAnswerPaths(await engine.execNew(agentId, sid, request, `${base}/exec/new`), cx)), {
            complete: completeJsonObject,
          }),
        },
        dynamic: {
          list: () => engine.sessions.execIds(sid),
          get: (eid) => {
            const ex = engine.exec(agentId, sid, eid);
            return ex ? this.execDir(ex) : undefined;
          },
        },
      },
      // A placeholder for listings of the session; every path below it is served by SessionFiles.
      files: dir({}, { mtime: () => rec.createdAt }),
    };
    return dir(children, meta);
  }

  private execDir(ex: ExecRecord): DirNode {
    const { engine, agentId } = this;
    const { sessionId: sid, id: eid } = ex;
    const base = `/sessions/${sid}/exec/${eid}`;
    const meta = recordMeta(() => engine.exec(agentId, sid, eid), ex.createdAt);
    const finite = () => {
      const now = engine.exec(agentId, sid, eid);
      return { after: ex.streamFrom, ended: !now || now.finishedAt !== null };
    };
    const raw = (which: 'stdout' | 'stderr') =>
      // The process's own bytes, not JSON lines.
      stream((_cx, signal) => execOutput(engine, agentId, sid, eid, signal), { format: rawFormat(which), mtime: () => ex.createdAt, mediaType: 'application/octet-stream', finite });
    const f = recordFiles<ExecRecord>({
      base,
      fresh: (path) => engine.needExec(agentId, sid, eid, path),
      meta,
      status: (r) => engine.execStatusOf(r),
      result: (r, path) => engine.execResultFile(r, path),
      bounded: () => true,
      channel: engine.channel(agentId),
      stream: { events: (_cx, signal) => execOutput(engine, agentId, sid, eid, signal), mtime: () => ex.createdAt, finite },
      checkCtl: (command, path) => void parseExecCommand(command, path),
      ctl: (command, path) => engine.execCtl(agentId, sid, eid, command, path),
    });
    return dir(
      {
        status: f.status,
        result: f.result,
        output: f.stream,
        stdout: raw('stdout'),
        stderr: raw('stderr'),
        stdin: message(async (data) => engine.execStdin(agentId, sid, eid, data, `${base}/stdin`), { maxBytes: 16 * 1024 * 1024 }),
        ctl: f.ctl,
      },
      meta,
    );
  }

  // --- routing: files/ goes to SessionFiles, everything else to the synthetic tree ---

  private filesTarget(path: string): FileTarget | undefined {
    const m = FILES_PATH.exec(path);
    if (!m) return undefined;
    const sid = m[1]!;
    this.engine.needSession(this.agentId, sid, path);
    return { agentId: this.agentId, sid, rel: m[2] ?? '', path };
  }

  /** The workdir's root of a session whose container is gone: still a directory in listings. */
  private placeholderStat(t: FileTarget): Stat | undefined {
    if (t.rel !== '') return undefined;
    const rec = this.engine.session(this.agentId, t.sid)!;
    if (!SESSION_TERMINAL.has(rec.status)) return undefined;
    return { type: 'dir', kind: 'dir', size: 0, mode: MODE.dir, mtime: rec.createdAt, ctime: rec.createdAt, version: 0 };
  }

  async stat(path: string, cx: Cx): Promise<Stat> {
    const t = this.filesTarget(path);
    if (!t) return this.tree.stat(path, cx);
    return this.placeholderStat(t) ?? this.files.stat(t);
  }

  async readdir(path: string, cx: Cx): Promise<DirEntry[]> {
    const t = this.filesTarget(path);
    return t ? this.files.readdir(t) : this.tree.readdir(path, cx);
  }

  async open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    const t = this.filesTarget(path);
    return t ? this.files.open(t, flags) : this.tree.open(path, flags, cx);
  }

  async readFile(path: string, cx: Cx): Promise<Uint8Array> {
    const t = this.filesTarget(path);
    if (!t) {
      const handle = await this.tree.open(path, { read: true }, cx);
      try {
        const parts: Uint8Array[] = [];
        for (let off = 0; ; ) {
          const chunk = await handle.read(128 * 1024, off);
          if (chunk.length === 0) break;
          parts.push(chunk.slice());
          off += chunk.length;
        }
        return Buffer.concat(parts);
      } finally {
        await handle.close();
      }
    }
    if (t.rel === '') throw new FsError('EISDIR', path, 'is a directory');
    return this.files.readFile(t);
  }

  async writeFile(path: string, data: Uint8Array, opts: WriteFileOptions, cx: Cx): Promise<Stat> {
    const t = this.filesTarget(path);
    if (t) return this.files.writeFile(t, data, opts);
    if (opts.ifVersion !== undefined) {
      const current = await this.tree.stat(path, cx).then((s) => s.version, () => 0);
      if (current !== opts.ifVersion) throw new FsError('ESTALE', path, `version is ${current}, not ${opts.ifVersion}`);
    }
    const handle = await this.tree.open(path, { write: true, truncate: !opts.append, append: !!opts.append }, cx);
    try {
      if (data.length > 0) await handle.write(data, 0);
      await handle.flush();
    } finally {
      await handle.close();
    }
    return this.tree.stat(path, cx);
  }

  async mkdir(path: string, mode: number): Promise<void> {
    const t = this.filesTarget(path);
    if (!t) throw new FsError('EPERM', path, 'only the files/ tree of a session takes new directories');
    return this.files.mkdir(t, mode);
  }

  async remove(path: string, _cx: Cx, opts?: { dir?: boolean }): Promise<void> {
    const t = this.filesTarget(path);
    if (!t) throw new FsError('EPERM', path, 'sessions and their files are kept until retention drops them; stop a session with its ctl');
    return this.files.remove(t, opts?.dir);
  }

  async rename(from: string, to: string): Promise<void> {
    const a = this.filesTarget(from);
    const b = FILES_PATH.exec(to);
    if (!a) throw new FsError('EPERM', from, 'only files of a session can be renamed');
    if (!b || b[1] !== a.sid) throw new FsError('EXDEV', from, `cannot rename outside the session's files (to ${to})`);
    return this.files.rename(a, b[2] ?? '', to);
  }

  async truncate(path: string, size: number, cx: Cx): Promise<void> {
    const t = this.filesTarget(path);
    return t ? this.files.truncate(t, size) : this.tree.truncate(path, size, cx);
  }

  async setattr(path: string, attrs: SetAttr, cx: Cx): Promise<Stat> {
    const t = this.filesTarget(path);
    if (!t) {
      // touch on a synthetic file: accept times, refuse the rest.
      if (attrs.mode !== undefined || attrs.uid !== undefined || attrs.gid !== undefined) {
        throw new FsError('EPERM', path, 'modes and owners of these files are fixed');
      }
      return this.tree.stat(path, cx);
    }
    return this.files.setattr(t, attrs);
  }

  /** An exec's stdout/stderr are views of its output events: watching one sees that stream's data. */
  async watchMatcher(path: string): Promise<Matcher | undefined> {
    const m = RAW_STREAM_PATH.exec(path);
    if (!m) return undefined;
    const [, sid, eid, which] = m;
    const ch = this.engine.channel(this.agentId);
    const outputAbs = ch.absolute(`/sessions/${sid}/exec/${eid}/output`);
    const scope = ch.scope;
    return {
      scopes: [scope],
      map: (rec: EventRecord) => {
        if (rec.scope !== scope || !isUnder(rec.path, outputAbs) || rec.path !== outputAbs) return undefined;
        if (rec.type === 'data' && (rec.data as OutputChunk | undefined)?.stream !== which) return undefined;
        return path;
      },
    };
  }
}

function rawFormat(which: 'stdout' | 'stderr') {
  return (ev: FsEvent) => {
    const chunk = ev.data as OutputChunk | undefined;
    return chunk?.stream === which && chunk.data ? chunk.data : undefined;
  };
}

/** What retention dropped of a finished session's output, rebuilt from its records (stdout, then stderr, per exec). */
function* replayRecords(sid: string, execs: ExecRecord[], path: string, status: string, time: number): Generator<FsEvent> {
  for (const ex of execs) {
    for (const stream of ['stdout', 'stderr'] as const) {
      const data = ex[stream];
      if (data) yield { id: 0, type: 'data', path, time, data: { session_id: sid, exec_id: ex.id, stream, data } satisfies OutputChunk };
    }
  }
  yield { id: 0, type: 'end', path, time, data: { status } };
}

/** A session's output from its beginning: the chunks in the event log, then live ones, until `end`. */
async function* sessionOutput(engine: ContainerEngine, agentId: string, sid: string, signal: AbortSignal): AsyncGenerator<FsEvent> {
  const rec = engine.session(agentId, sid);
  if (!rec) return;
  const rel = `/sessions/${sid}/output`;
  yield* recordStream({
    storage: engine.storage,
    channel: engine.channel(agentId),
    agentId,
    rel,
    streamFrom: rec.streamFrom,
    finished: SESSION_TERMINAL.has(rec.status),
    replay: () => replayRecords(sid, engine.sessions.execs(sid), `${engine.mountPath}${rel}`, rec.status, rec.finishedAt ?? Date.now()),
    signal,
  });
}

/** One exec's output from its beginning. */
async function* execOutput(engine: ContainerEngine, agentId: string, sid: string, eid: string, signal: AbortSignal): AsyncGenerator<FsEvent> {
  const ex = engine.exec(agentId, sid, eid);
  if (!ex) return;
  const rel = `/sessions/${sid}/exec/${eid}/output`;
  yield* recordStream({
    storage: engine.storage,
    channel: engine.channel(agentId),
    agentId,
    rel,
    streamFrom: ex.streamFrom,
    finished: ex.finishedAt !== null,
    replay: () => replayRecords(sid, [ex], `${engine.mountPath}${rel}`, ex.status, ex.finishedAt ?? Date.now()),
    signal,
  });
}
