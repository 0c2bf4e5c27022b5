/**
 * What /containers needs from a container engine. The service holds all the policy, budgets, records
 * and files; a provider only creates, runs, signals and removes containers. One implementation today:
 * `docker` (dockerode against a real Docker engine).
 */

export type HealthStatus = 'available' | 'degraded' | 'unavailable';

export interface ProviderHealth {
  status: HealthStatus;
  /** Why it is not available (the engine's own error); null when available. */
  reason: string | null;
  /** Milliseconds since the epoch of the check this answer comes from. */
  checked_at: number;
  engine?: { version: string; api_version: string; os: string; kernel: string };
}

export interface ProviderInfo {
  id: string;
  name: string;
  description: string;
  isolation: string;
  capabilities: string[];
  /** Where the provider talks to its engine (a socket path or URL). */
  endpoint: string;
}

/** Everything a session container is created with; limits are already checked against policy. */
export interface SessionSpec {
  sessionId: string;
  image: string;
  env: Record<string, string>;
  workdir: string;
  user?: string;
  memoryMb: number;
  cpuCores: number;
  pids: number;
  diskMb: number;
  network: boolean;
  /** The engine network used when `network` is true (e.g. `bridge`). */
  networkMode: string;
  labels: Record<string, string>;
}

export interface ExecSpec {
  /** Set as AGENT9_EXEC in the process environment: how its whole process tree is found and signalled. */
  marker: string;
  argv: string[];
  env: Record<string, string>;
  workdir?: string;
  user?: string;
  /** Keep stdin open for writes (otherwise the process reads end-of-file at once). */
  stdin: boolean;
}

export interface ExecIO {
  stdout(chunk: Uint8Array): void;
  stderr(chunk: Uint8Array): void;
}

/** A process started in a session's container. */
export interface RunningExec {
  readonly engineId: string;
  writeStdin(data: Uint8Array): Promise<void>;
  closeStdin(): void;
  /** Settles when the process exited and its output is drained; exitCode is null when unknown. */
  readonly done: Promise<{ exitCode: number | null }>;
  /** Stops following the output (the process keeps running). */
  detach(): void;
}

export interface RunResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** True when stdout was cut at `maxStdout`. */
  truncated: boolean;
}

export interface RunOptions {
  stdin?: Uint8Array;
  user?: string;
  env?: Record<string, string>;
  /** Stop collecting stdout past this many bytes. */
  maxStdout?: number;
}

export interface ContainerState {
  running: boolean;
  exitCode: number | null;
  oomKilled: boolean;
  error: string | null;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface EngineContainer {
  containerId: string;
  labels: Record<string, string>;
  running: boolean;
}

/** Resource use read from the container's cgroup. */
export interface CgroupUsage {
  cpu_time_ms: number | null;
  peak_memory_bytes: number | null;
  oom_kills: number | null;
}

export interface ContainerProvider {
  readonly id: string;
  info(): ProviderInfo;
  /** Cached for a moment; `fresh` asks the engine again. */
  health(opts?: { fresh?: boolean }): Promise<ProviderHealth>;
  /** Image references present in the engine (`repo:tag`). */
  images(): Promise<string[]>;
  hasImage(image: string): Promise<boolean>;
  /** Creates and starts a session container that idles until stopped; removes it again on failure. */
  createSession(spec: SessionSpec, signal?: AbortSignal): Promise<{ containerId: string }>;
  exec(containerId: string, spec: ExecSpec, io: ExecIO): Promise<RunningExec>;
  /**
   * Sends `signal` to every process of an exec's tree (found by its marker), inside the container.
   * Returns how many processes were signalled; throws when it could not run (e.g. the pids limit is hit).
   */
  signalExec(containerId: string, marker: string, signal: string): Promise<number>;
  /** Runs a small helper command to completion (file operations, usage). */
  run(containerId: string, argv: string[], opts?: RunOptions): Promise<RunResult>;
  usage(containerId: string): Promise<CgroupUsage>;
  /**
   * The pid of the container's init process as the engine reports it (undefined when it is not running).
   * It is a pid on the engine's machine: files/ checks that /proc/<pid> here belongs to the container
   * before it acts through it (and refuses when the engine runs elsewhere).
   */
  initPid?(containerId: string): Promise<number | undefined>;
  inspect(containerId: string): Promise<ContainerState | undefined>;
  /** SIGTERM, then SIGKILL after `graceSecs`. */
  stop(containerId: string, graceSecs: number): Promise<void>;
  kill(containerId: string): Promise<void>;
  /** Removes the container (forced); no error when it is already gone. */
  remove(containerId: string): Promise<void>;
  /** Containers carrying all these labels, running or not. */
  list(labels: Record<string, string>): Promise<EngineContainer[]>;
}
