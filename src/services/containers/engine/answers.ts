/**
 * What the files of a session and of an exec answer: status, result (EAGAIN "not ready" until it ended)
 * and usage (live while it runs), built from the durable records and what is live in this process.
 */
import { FsError } from '../../../fs/errors.js';
import { commandLine } from '../request.js';
import { EXEC_TERMINAL, SESSION_TERMINAL, type ExecRecord, type ExecResult, type SessionRecord, type SessionResult, type SessionUsage } from '../types.js';
import { HELPER_TIMEOUT_MS, RESULT_RETRY_AFTER_MS, withTimeout, type EngineState } from './state.js';

export function sessionStatus(s: EngineState, rec: SessionRecord): Record<string, unknown> {
  const execs = s.sessions.execIds(rec.id).length;
  const running = s.live.get(rec.id)?.execs.size ?? 0;
  return {
    session_id: rec.id,
    status: rec.status,
    kind: rec.request.kind,
    provider: rec.provider,
    image: rec.request.image,
    workdir: rec.request.workdir,
    limits: rec.request.limits,
    exit_code: rec.exitCode,
    error: rec.error,
    stop_reason: rec.stopReason,
    execs: { total: execs, running },
    created_at: rec.createdAt,
    started_at: rec.startedAt,
    finished_at: rec.finishedAt,
    deadline_at: rec.deadlineAt,
    reserved: rec.reserved,
    cost: rec.cost,
    ...(rec.request.budget_scope ? { budget_scope: rec.request.budget_scope } : {}),
    ...(rec.request.idempotency_key ? { idempotency_key: rec.request.idempotency_key } : {}),
  };
}

/** The result file: the outcome once the session ended; EAGAIN "not ready" before. */
export function sessionResult(s: EngineState, rec: SessionRecord, path: string): SessionResult {
  if (!SESSION_TERMINAL.has(rec.status)) {
    throw new FsError('EAGAIN', path, `not ready: session ${rec.id} is ${rec.status}`, { retryAfterMs: RESULT_RETRY_AFTER_MS });
  }
  const execs = s.sessions.execs(rec.id);
  const commands = execs.filter((e) => e.origin === 'command');
  return {
    session_id: rec.id,
    status: rec.status,
    provider_id: rec.provider,
    image: rec.request.image,
    exit_code: rec.exitCode,
    error: rec.error,
    stop_reason: rec.stopReason,
    stdout: commands.map((e) => e.stdout).join(''),
    stderr: commands.map((e) => e.stderr).join(''),
    command_results: commands.map((e) => execResult(e)),
    execs: execs.length,
    usage: rec.usage,
    cost: rec.cost ?? 0,
    cost_usd: (rec.cost ?? 0) / 1e6,
    reserved: rec.reserved,
    duration_ms: rec.usage?.duration_ms ?? null,
    created_at: rec.createdAt,
    started_at: rec.startedAt,
    finished_at: rec.finishedAt,
    ...(rec.request.budget_scope ? { budget_scope: rec.request.budget_scope } : {}),
  };
}

/** The usage file of a session: resource use, duration and cost (live while it runs). */
export async function sessionUsage(s: EngineState, rec: SessionRecord): Promise<Record<string, unknown>> {
  let usage: SessionUsage | null = rec.usage;
  let cost = rec.cost ?? 0;
  const live = s.live.get(rec.id);
  if (!SESSION_TERMINAL.has(rec.status) && live?.containerId && rec.startedAt !== null) {
    const ran = s.now() - rec.startedAt;
    const cg = await withTimeout(live.provider.usage(live.containerId), HELPER_TIMEOUT_MS, 'reading usage').catch(() => null);
    usage = { cpu_time_ms: cg?.cpu_time_ms ?? null, peak_memory_bytes: cg?.peak_memory_bytes ?? null, oom_kills: cg?.oom_kills ?? null, duration_ms: ran };
    cost = Math.min(rec.reserved, Math.ceil((ran * rec.rate) / 1000));
  }
  return {
    unit: 'micro-USD',
    usage,
    cost,
    cost_usd: cost / 1e6,
    reserved: rec.reserved,
    rate_per_second: rec.rate,
    duration_ms: usage?.duration_ms ?? null,
    final: SESSION_TERMINAL.has(rec.status),
  };
}

export function execStatus(ex: ExecRecord): Record<string, unknown> {
  return {
    exec_id: ex.id,
    session_id: ex.sessionId,
    status: ex.status,
    command: commandLine(ex.command),
    origin: ex.origin,
    exit_code: ex.exitCode,
    error: ex.error,
    stdin: ex.stdin,
    timeout_secs: ex.timeoutSecs,
    created_at: ex.createdAt,
    started_at: ex.startedAt,
    finished_at: ex.finishedAt,
  };
}

export function execResult(ex: ExecRecord): ExecResult {
  return {
    exec_id: ex.id,
    session_id: ex.sessionId,
    command: commandLine(ex.command),
    status: ex.status,
    exit_code: ex.exitCode,
    timed_out: ex.timedOut,
    killed: ex.killed,
    oom_killed: ex.oomKilled,
    stdout: ex.stdout,
    stderr: ex.stderr,
    stdout_bytes: ex.stdoutBytes,
    stderr_bytes: ex.stderrBytes,
    stdout_truncated: ex.stdoutTruncated,
    stderr_truncated: ex.stderrTruncated,
    started_at: ex.startedAt,
    finished_at: ex.finishedAt,
    duration_ms: ex.startedAt !== null && ex.finishedAt !== null ? ex.finishedAt - ex.startedAt : null,
    error: ex.error,
  };
}

/** An exec's result file: EAGAIN until it ended. */
export function execResultFile(ex: ExecRecord, path: string): ExecResult {
  if (!EXEC_TERMINAL.has(ex.status)) {
    throw new FsError('EAGAIN', path, `not ready: exec ${ex.id} is ${ex.status}`, { retryAfterMs: RESULT_RETRY_AFTER_MS });
  }
  return execResult(ex);
}
