/** Sessions and execs: their states, durable records, and the JSON the files answer with. */
import type { BudgetScope } from '../../runtime/budget-ledger.js';
import type { Command, SessionRequest } from './request.js';
import type { CgroupUsage } from './providers/types.js';

/**
 * provisioning → running → complete (the commands of an ephemeral session ran) | failed (could not
 * start, the engine failed, the server restarted mid-run) | stopped (ctl stop or kill) | expired (its
 * lifetime ran out).
 */
export type SessionStatus = 'provisioning' | 'running' | 'complete' | 'failed' | 'stopped' | 'expired';
export const SESSION_TERMINAL: ReadonlySet<SessionStatus> = new Set(['complete', 'failed', 'stopped', 'expired']);

/**
 * pending → running → complete (the process exited, whatever its code) | failed (it could not run, or
 * was lost) | killed (ctl kill, or its session ended) | timeout (its time limit passed: the tree was killed).
 */
export type ExecStatus = 'pending' | 'running' | 'complete' | 'failed' | 'killed' | 'timeout';
export const EXEC_TERMINAL: ReadonlySet<ExecStatus> = new Set(['complete', 'failed', 'killed', 'timeout']);

export interface ErrorInfo {
  code: string;
  message: string;
}

export interface SessionUsage extends CgroupUsage {
  duration_ms: number;
}

export interface SessionRecord {
  id: string;
  agentId: string;
  provider: string;
  request: SessionRequest;
  status: SessionStatus;
  error: ErrorInfo | null;
  stopReason: 'stop' | 'kill' | null;
  containerId: string | null;
  exitCode: number | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** When its lifetime runs out (set when it starts running). */
  deadlineAt: number | null;
  reservationId: number | null;
  /** Micro-USD reserved at submit. */
  reserved: number;
  /** Micro-USD per second of lifetime. */
  rate: number;
  /** Micro-USD charged (set when it ends). */
  cost: number | null;
  usage: SessionUsage | null;
  /** The event id its output stream replays from. */
  streamFrom: number;
  nextExec: number;
  version: number;
  updatedAt: number;
}

export interface ExecRecord {
  sessionId: string;
  id: string;
  /** `command`: one of the request's commands; `exec`: written to exec/new. */
  origin: 'command' | 'exec';
  command: Command;
  status: ExecStatus;
  error: string | null;
  exitCode: number | null;
  timedOut: boolean;
  killed: boolean;
  oomKilled: boolean;
  stdout: string;
  stderr: string;
  stdoutBytes: number;
  stderrBytes: number;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  stdin: 'none' | 'text' | 'open';
  timeoutSecs: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  streamFrom: number;
  version: number;
  updatedAt: number;
}

/** One datum of an output stream. */
export interface OutputChunk {
  session_id: string;
  exec_id: string;
  stream: 'stdout' | 'stderr';
  data: string;
  /** Set on the one datum that says this stream passed its byte cap (its data is empty). */
  truncated?: true;
}

export interface ExecResult {
  exec_id: string;
  session_id: string;
  command: string;
  status: ExecStatus;
  exit_code: number | null;
  timed_out: boolean;
  killed: boolean;
  oom_killed: boolean;
  stdout: string;
  stderr: string;
  stdout_bytes: number;
  stderr_bytes: number;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  started_at: number | null;
  finished_at: number | null;
  duration_ms: number | null;
  error: string | null;
}

export interface SessionResult {
  session_id: string;
  status: SessionStatus;
  provider_id: string;
  image: string;
  exit_code: number | null;
  error: ErrorInfo | null;
  stop_reason: 'stop' | 'kill' | null;
  stdout: string;
  stderr: string;
  command_results: ExecResult[];
  execs: number;
  usage: SessionUsage | null;
  cost: number;
  cost_usd: number;
  reserved: number;
  duration_ms: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  budget_scope?: BudgetScope;
}
