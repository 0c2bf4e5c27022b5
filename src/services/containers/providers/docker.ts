/**
 * The `docker` provider: real containers on a Docker engine through dockerode (the engine's socket,
 * /var/run/docker.sock by default). A session is one container idling under an init process (tini) with
 * a read-only root, a tmpfs workdir and /tmp, no network unless asked, and memory (no swap), CPU and pids
 * limits; commands run in it as execs whose stdout and stderr arrive separately.
 */
import Docker from 'dockerode';
import { readFile } from 'node:fs/promises';
import type { Duplex, Readable } from 'node:stream';
import { FsError } from '../../../fs/errors.js';
import { checkImageReference } from '../reference.js';
import { engineId, engineMessage, isConnectionError, statusOf } from './docker-errors.js';
import { SIGNAL_TREE_SCRIPT, USAGE_SCRIPT } from './scripts.js';
import type {
  CgroupUsage,
  ContainerProvider,
  ContainerState,
  EngineContainer,
  ExecIO,
  ExecSpec,
  ProviderHealth,
  ProviderInfo,
  RunOptions,
  RunResult,
  RunningExec,
  SessionSpec,
} from './types.js';

export interface DockerProviderOptions {
  /** Default: DOCKER_HOST when it is a unix socket, else /var/run/docker.sock. */
  socketPath?: string;
  /** How long a health answer is reused (default 5 s when available, 1 s when not). */
  healthTtlMs?: number;
  /**
   * Where the engine's cgroups are mounted on this host (default /sys/fs/cgroup): usage is read there
   * without entering the container when the engine runs here; null always asks inside the container.
   */
  hostCgroupRoot?: string | null;
  now?: () => number;
}

/** The session container's main process: idles until SIGTERM (tini forwards it), then exits at once. */
const IDLE = 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done';

const MAX_HELPER_STDERR = 64 * 1024;

/**
 * Runs a command with the highest OOM score, so that when a session runs out of memory the kernel kills
 * the command (reported as exit 137) and not the session's init, which would end the whole session.
 * Raising one's own score needs no privilege; the command's argv is passed through unchanged.
 */
function victimFirst(argv: string[]): string[] {
  return ['/bin/sh', '-c', 'echo 1000 > /proc/self/oom_score_adj 2>/dev/null; exec "$0" "$@"', ...argv];
}

export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const host = env['DOCKER_HOST'];
  if (host?.startsWith('unix://')) return host.slice('unix://'.length);
  return '/var/run/docker.sock';
}

/** `busybox` → `busybox:latest`; references with a tag or digest are kept as they are. */
export function normalizeImage(image: string): string {
  const lastSlash = image.lastIndexOf('/');
  const name = image.slice(lastSlash + 1);
  return name.includes(':') || name.includes('@') ? image : `${image}:latest`;
}

/**
 * Splits Docker's multiplexed exec stream (8-byte headers: stream type, 3 zero bytes, big-endian length)
 * into stdout and stderr chunks. Frames may arrive split across reads.
 */
export class Demuxer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly io: ExecIO) {}

  push(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= 8) {
      const head = this.peek(8);
      const size = head.readUInt32BE(4);
      if (this.pendingBytes < 8 + size) return;
      const frame = this.take(8 + size);
      const payload = frame.subarray(8);
      if (payload.length === 0) continue;
      if (head[0] === 2) this.io.stderr(payload);
      else this.io.stdout(payload);
    }
  }

  private peek(n: number): Buffer {
    if (this.pending[0]!.length >= n) return this.pending[0]!;
    return Buffer.concat(this.pending).subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return out;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends a signal; a process that is already gone is fine. */
function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

export class DockerProvider implements ContainerProvider {
  readonly id = 'docker';
  readonly socketPath: string;
  private readonly docker: Docker;
  /** A separate client with a short timeout, so a hung engine cannot hang a health read. */
  private readonly probe: Docker;
  private readonly healthTtlMs: number;
  private readonly hostCgroupRoot: string | null;
  private readonly now: () => number;
  private cachedHealth: ProviderHealth | undefined;
  /** Images seen present, and when: a submit need not ask the engine again for a while. */
  private readonly seenImages = new Map<string, number>();
  private healthInFlight: Promise<ProviderHealth> | undefined;

  constructor(options: DockerProviderOptions = {}) {
    this.socketPath = options.socketPath ?? defaultSocketPath();
    this.docker = new Docker({ socketPath: this.socketPath });
    this.probe = new Docker({ socketPath: this.socketPath, timeout: 3000 });
    this.healthTtlMs = options.healthTtlMs ?? 5000;
    this.hostCgroupRoot = options.hostCgroupRoot === undefined ? '/sys/fs/cgroup' : options.hostCgroupRoot;
    this.now = options.now ?? (() => Date.now());
  }

  info(): ProviderInfo {
    return {
      id: this.id,
      name: 'Docker',
      description: 'Containers on the local Docker engine (no registry pulls: images must be present in the engine)',
      isolation: 'container (namespaces + cgroups), read-only root, tmpfs workdir, no network by default',
      capabilities: ['exec', 'stdin', 'files', 'interactive', 'streaming', 'limits', 'network-off'],
      endpoint: `unix://${this.socketPath}`,
    };
  }

  async health(opts: { fresh?: boolean } = {}): Promise<ProviderHealth> {
    const cached = this.cachedHealth;
    if (!opts.fresh && cached) {
      const ttl = cached.status === 'available' ? this.healthTtlMs : Math.min(1000, this.healthTtlMs);
      if (this.now() - cached.checked_at < ttl) return cached;
    }
    this.healthInFlight ??= this.checkHealth().finally(() => {
      this.healthInFlight = undefined;
    });
    return this.healthInFlight;
  }

  private async checkHealth(): Promise<ProviderHealth> {
    const checked_at = this.now();
    try {
      const v = await this.probe.version();
      this.cachedHealth = {
        status: 'available',
        reason: null,
        checked_at,
        engine: { version: v.Version, api_version: v.ApiVersion, os: `${v.Os}/${v.Arch}`, kernel: v.KernelVersion ?? '' },
      };
    } catch (err) {
      this.cachedHealth = {
        status: 'unavailable',
        reason: `cannot reach the Docker engine at unix://${this.socketPath}: ${engineMessage(err)}`,
        checked_at,
      };
    }
    return this.cachedHealth;
  }

  /**
   * Engine failures as FsErrors: EREMOTEIO with the engine's reason (an unreachable engine marks health);
   * a request the engine calls invalid (HTTP 400) is EINVAL naming `field` when one is given.
   */
  private fail(err: unknown, what: string, field?: string): FsError {
    if (err instanceof FsError) return err;
    if (isConnectionError(err)) {
      const reason = `cannot reach the Docker engine at unix://${this.socketPath}: ${engineMessage(err)}`;
      this.cachedHealth = { status: 'unavailable', reason, checked_at: this.now() };
      return new FsError('EREMOTEIO', '/', `${what}: ${reason}`, { cause: err });
    }
    if (statusOf(err) === 400) {
      return new FsError('EINVAL', '/', `${field ? `field '${field}': ` : ''}${what}: the engine refused it: ${engineMessage(err)}`, { cause: err });
    }
    return new FsError('EREMOTEIO', '/', `${what}: docker: ${engineMessage(err)}`, { cause: err });
  }

  /** A container of the engine, by an id that is safe in an API path. */
  private container(id: string): Docker.Container {
    return this.docker.getContainer(engineId(id));
  }

  async images(): Promise<string[]> {
    try {
      const list = await this.docker.listImages();
      return list
        .flatMap((img) => img.RepoTags ?? [])
        .filter((t) => t !== '<none>:<none>')
        .sort();
    } catch (err) {
      throw this.fail(err, 'listing images');
    }
  }

  async hasImage(image: string): Promise<boolean> {
    // The reference becomes a path segment (/images/<ref>/json): only a valid one is ever sent.
    const ref = normalizeImage(checkImageReference(image, '/'));
    const seen = this.seenImages.get(ref);
    if (seen !== undefined && this.now() - seen < this.healthTtlMs) return true;
    try {
      await this.docker.getImage(ref).inspect();
      this.seenImages.set(ref, this.now());
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw this.fail(err, `looking up image ${image}`, 'image');
    }
  }

  async createSession(spec: SessionSpec, signal?: AbortSignal): Promise<{ containerId: string }> {
    const mb = 1024 * 1024;
    const tmpfs: Record<string, string> = {
      '/tmp': `rw,exec,nosuid,nodev,size=${spec.diskMb}m,mode=1777`,
      [spec.workdir]: `rw,exec,nosuid,nodev,size=${spec.diskMb}m,mode=1777`,
    };
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        Image: normalizeImage(checkImageReference(spec.image, '/')),
        Entrypoint: ['/bin/sh', '-c'],
        Cmd: [IDLE],
        Labels: spec.labels,
        Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
        WorkingDir: spec.workdir,
        ...(spec.user !== undefined ? { User: spec.user } : {}),
        Tty: false,
        OpenStdin: false,
        NetworkDisabled: !spec.network,
        HostConfig: {
          NetworkMode: spec.network ? spec.networkMode : 'none',
          Memory: spec.memoryMb * mb,
          MemorySwap: spec.memoryMb * mb,
          NanoCpus: Math.round(spec.cpuCores * 1e9),
          PidsLimit: spec.pids,
          ReadonlyRootfs: true,
          Tmpfs: tmpfs,
          Init: true,
          SecurityOpt: ['no-new-privileges'],
          CapDrop: ['NET_RAW', 'MKNOD', 'AUDIT_WRITE', 'SETFCAP', 'SYS_CHROOT'],
        },
      });
    } catch (err) {
      if (statusOf(err) === 404) {
        this.seenImages.delete(normalizeImage(spec.image));
        throw new FsError('EINVAL', '/', `field 'image': ${spec.image} is not in the engine (agent9 never pulls from a registry)`);
      }
      throw this.fail(err, 'creating the container');
    }
    try {
      if (signal?.aborted) throw new FsError('EINVAL', '/', 'session stopped while provisioning');
      await container.start();
      if (signal?.aborted) throw new FsError('EINVAL', '/', 'session stopped while provisioning');
    } catch (err) {
      await this.remove(container.id).catch(() => undefined);
      throw this.fail(err, 'starting the container');
    }
    return { containerId: container.id };
  }

  async exec(containerId: string, spec: ExecSpec, io: ExecIO): Promise<RunningExec> {
    const container = this.container(containerId);
    let stream: Duplex | Readable;
    let engineExec: Docker.Exec;
    try {
      engineExec = await container.exec({
        Cmd: victimFirst(spec.argv),
        AttachStdout: true,
        AttachStderr: true,
        AttachStdin: spec.stdin,
        Tty: false,
        Env: [...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`), `AGENT9_EXEC=${spec.marker}`],
        ...(spec.workdir !== undefined ? { WorkingDir: spec.workdir } : {}),
        ...(spec.user !== undefined ? { User: spec.user } : {}),
      });
      stream = await engineExec.start({ hijack: spec.stdin, stdin: spec.stdin });
    } catch (err) {
      if (statusOf(err) === 409 || statusOf(err) === 404) {
        throw new FsError('EINVAL', '/', `the session's container is not running: ${engineMessage(err)}`);
      }
      throw this.fail(err, 'starting the command');
    }
    const demux = new Demuxer(io);
    stream.on('data', (chunk: Buffer) => demux.push(chunk));
    const drained = new Promise<void>((resolve) => {
      let settled = false;
      const finish = () => {
        if (!settled) {
          settled = true;
          resolve();
        }
      };
      stream.on('end', finish);
      stream.on('close', finish);
      stream.on('error', finish);
    });
    // Once the output ended the process is gone: drop the connection, and with it stdin it never read.
    const done = drained.then(() => {
      stream.destroy();
      return this.exitCodeOf(engineExec);
    });
    const duplex = stream as Duplex;
    const stdinClosed = () => new FsError('EINVAL', '/', 'stdin of this command is closed');
    return {
      engineId: engineExec.id,
      writeStdin: (data) =>
        new Promise<void>((resolve, reject) => {
          if (!spec.stdin || duplex.writableEnded || duplex.destroyed) {
            reject(stdinClosed());
            return;
          }
          duplex.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength), (err) => (err ? reject(stdinClosed()) : resolve()));
          // A process that exits without reading everything never drains the write.
          void drained.then(() => reject(stdinClosed()));
        }),
      closeStdin: () => {
        if (spec.stdin && !duplex.writableEnded && !duplex.destroyed) duplex.end();
      },
      done,
      detach: () => stream.destroy(),
    };
  }

  /** The exit code once the engine reports the exec as finished (it may lag the end of output a little). */
  private async exitCodeOf(engineExec: Docker.Exec): Promise<{ exitCode: number | null }> {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        const info = await engineExec.inspect();
        if (!info.Running) return { exitCode: info.ExitCode ?? null };
      } catch {
        return { exitCode: null };
      }
      await sleep(Math.min(200, 5 * 2 ** attempt));
    }
    return { exitCode: null };
  }

  async run(containerId: string, argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const maxStdout = opts.maxStdout ?? Infinity;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let truncated = false;
    const wantStdin = opts.stdin !== undefined;
    const running = await this.exec(
      containerId,
      { marker: 'helper', argv, env: opts.env ?? {}, stdin: wantStdin, ...(opts.user !== undefined ? { user: opts.user } : {}) },
      {
        stdout: (chunk) => {
          if (outBytes + chunk.length > maxStdout) {
            truncated = true;
            const room = Math.max(0, maxStdout - outBytes);
            if (room > 0) out.push(Buffer.from(chunk.subarray(0, room)));
            outBytes += room;
            return;
          }
          out.push(Buffer.from(chunk));
          outBytes += chunk.length;
        },
        stderr: (chunk) => {
          if (errBytes < MAX_HELPER_STDERR) err.push(Buffer.from(chunk));
          errBytes += chunk.length;
        },
      },
    );
    if (wantStdin) {
      // Not awaited: a command may exit before it reads its input (and its exit says what happened).
      if (opts.stdin!.length > 0) void running.writeStdin(opts.stdin!).catch(() => undefined);
      running.closeStdin();
    }
    const { exitCode } = await running.done;
    return { exitCode: exitCode ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err), truncated };
  }

  async signalExec(containerId: string, marker: string, signal: string): Promise<number> {
    if (!/^[A-Z0-9]+$/.test(signal)) throw new FsError('EINVAL', '/', `invalid signal name ${signal}`);
    const fromHost = await this.hostSignalTree(containerId, marker, signal);
    if (fromHost !== undefined) return fromHost;
    const r = await this.run(containerId, ['/bin/sh', '-c', SIGNAL_TREE_SCRIPT, 'agent9-signal', marker, signal], { user: '0' });
    const stderr = Buffer.from(r.stderr).toString().trim();
    // A search that could not fork saw nothing: that is a failure, not "no process left".
    if (r.exitCode !== 0 || /fork|resource temporarily unavailable/i.test(stderr)) {
      throw new FsError('EREMOTEIO', '/', `could not signal the process tree: ${stderr || `exit ${r.exitCode}`}`);
    }
    return Number.parseInt(Buffer.from(r.stdout).toString().trim(), 10) || 0;
  }

  /** Host pids of the container's processes, from its cgroup on this host; undefined when not here. */
  private async hostProcesses(containerId: string): Promise<number[] | undefined> {
    const root = this.hostCgroupRoot;
    if (root === null || !/^[0-9a-f]{64}$/.test(containerId)) return undefined;
    for (const dir of [`docker/${containerId}`, `system.slice/docker-${containerId}.scope`]) {
      for (const controller of ['pids/', 'memory/', '']) {
        const text = await readFile(`${root}/${controller}${dir}/cgroup.procs`, 'utf8').catch(() => undefined);
        if (text !== undefined) return text.split('\n').filter(Boolean).map(Number);
      }
    }
    return undefined;
  }

  /**
   * Signals an exec's tree from the host: the container's processes from its cgroup, their environment
   * from /proc. Nothing has to start inside the container, so it works when the pids limit is used up.
   * Undefined when this host cannot (a remote engine, no permission): then it is done inside.
   */
  private async hostSignalTree(containerId: string, marker: string, signal: string): Promise<number | undefined> {
    const needle = Buffer.from(`\0AGENT9_EXEC=${marker}\0`);
    let total = 0;
    for (let round = 0; round < 50; round++) {
      const pids = await this.hostProcesses(containerId);
      if (pids === undefined) return round === 0 ? undefined : total;
      const found: number[] = [];
      for (const pid of pids) {
        let env: Buffer;
        try {
          env = await readFile(`/proc/${pid}/environ`);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EACCES' || (err as NodeJS.ErrnoException).code === 'EPERM') return undefined;
          continue; // exited meanwhile
        }
        if (Buffer.concat([Buffer.from([0]), env, Buffer.from([0])]).includes(needle)) found.push(pid);
      }
      if (found.length === 0) return total;
      try {
        if (signal === 'KILL') for (const pid of found) tryKill(pid, 'SIGSTOP');
        for (const pid of found) tryKill(pid, `SIG${signal}` as NodeJS.Signals);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EPERM') return round === 0 ? undefined : total;
        throw new FsError('EINVAL', '/', `cannot send SIG${signal}: ${(err as Error).message}`);
      }
      total += found.length;
      if (signal !== 'KILL') return total;
      await sleep(5);
    }
    throw new FsError('EREMOTEIO', '/', `processes of the command kept appearing after 50 rounds of SIGKILL`);
  }

  async usage(containerId: string): Promise<CgroupUsage> {
    return (await this.hostUsage(containerId)) ?? this.containerUsage(containerId);
  }

  /** The container's cgroup read on this host (cgroup v1 or v2, cgroupfs or systemd layout); undefined when not here. */
  private async hostUsage(containerId: string): Promise<CgroupUsage | undefined> {
    const root = this.hostCgroupRoot;
    if (root === null || !/^[0-9a-f]{64}$/.test(containerId)) return undefined;
    const read = (path: string) => readFile(path, 'utf8').then((t) => t, () => undefined);
    const field = (text: string | undefined, name: string) => {
      const m = text === undefined ? null : new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
      return m ? Number(m[1]) : null;
    };
    for (const dir of [`docker/${containerId}`, `system.slice/docker-${containerId}.scope`]) {
      const peak = await read(`${root}/memory/${dir}/memory.max_usage_in_bytes`);
      if (peak !== undefined) {
        const cpu = (await read(`${root}/cpuacct/${dir}/cpuacct.usage`)) ?? (await read(`${root}/cpu,cpuacct/${dir}/cpuacct.usage`));
        return {
          cpu_time_ms: cpu === undefined ? null : Math.round(Number(cpu) / 1e6),
          peak_memory_bytes: Number(peak),
          oom_kills: field(await read(`${root}/memory/${dir}/memory.oom_control`), 'oom_kill'),
        };
      }
      const stat = await read(`${root}/${dir}/cpu.stat`);
      if (stat !== undefined) {
        const usec = field(stat, 'usage_usec');
        const peak2 = await read(`${root}/${dir}/memory.peak`);
        return {
          cpu_time_ms: usec === null ? null : Math.round(usec / 1000),
          peak_memory_bytes: peak2 === undefined ? null : Number(peak2),
          oom_kills: field(await read(`${root}/${dir}/memory.events`), 'oom_kill'),
        };
      }
    }
    return undefined;
  }

  /** The same read from inside the container (a remote engine, another layout). */
  private async containerUsage(containerId: string): Promise<CgroupUsage> {
    const r = await this.run(containerId, ['/bin/sh', '-c', USAGE_SCRIPT, 'agent9-usage'], { user: '0' });
    const [cpu, mem, oom] = Buffer.from(r.stdout).toString().trim().split(/\s+/);
    const num = (s: string | undefined) => (s === undefined || s === '-' || s === '' ? null : Number(s));
    const cpuNs = num(cpu);
    return {
      cpu_time_ms: cpuNs === null ? null : Math.round(cpuNs / 1e6),
      peak_memory_bytes: num(mem),
      oom_kills: num(oom),
    };
  }

  async initPid(containerId: string): Promise<number | undefined> {
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      return info.State.Running && info.State.Pid > 0 ? info.State.Pid : undefined;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.fail(err, 'inspecting the container');
    }
  }

  async inspect(containerId: string): Promise<ContainerState | undefined> {
    try {
      const info = await this.container(containerId).inspect();
      const time = (s: string | undefined) => {
        const t = s ? Date.parse(s) : NaN;
        return Number.isFinite(t) && t > 0 ? t : null;
      };
      return {
        running: info.State.Running,
        exitCode: info.State.Running ? null : info.State.ExitCode,
        oomKilled: info.State.OOMKilled,
        error: info.State.Error || null,
        startedAt: time(info.State.StartedAt),
        finishedAt: time(info.State.FinishedAt),
      };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.fail(err, 'inspecting the container');
    }
  }

  async stop(containerId: string, graceSecs: number): Promise<void> {
    try {
      await this.container(containerId).stop({ t: graceSecs });
    } catch (err) {
      const status = statusOf(err);
      if (status === 304 || status === 404) return;
      throw this.fail(err, 'stopping the container');
    }
  }

  async kill(containerId: string): Promise<void> {
    try {
      await this.container(containerId).kill();
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 || status === 409) return;
      throw this.fail(err, 'killing the container');
    }
  }

  async remove(containerId: string): Promise<void> {
    try {
      await this.container(containerId).remove({ force: true, v: true });
    } catch (err) {
      const status = statusOf(err);
      // 409: removal already in progress.
      if (status === 404 || status === 409) return;
      throw this.fail(err, 'removing the container');
    }
  }

  async list(labels: Record<string, string>): Promise<EngineContainer[]> {
    try {
      const list = await this.docker.listContainers({
        all: true,
        filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
      });
      return list.map((c) => ({ containerId: c.Id, labels: c.Labels ?? {}, running: c.State === 'running' }));
    } catch (err) {
      throw this.fail(err, 'listing containers');
    }
  }
}
