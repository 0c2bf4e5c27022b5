/**
 * `exec`: a command run once per tick in its own process group. It reads the tick as one JSON document
 * on stdin and may answer a result on stdout:
 * - stdout that is a JSON object is the result (state, outbox, next_alarm, alarm_in_ms, hibernate, kv, trace);
 * - any other non-empty stdout is one outbox message `{payload: {text}}`;
 * - a non-zero exit fails the tick, with stderr in the trace; stderr of a successful run is traced too.
 * At the deadline the whole process group gets SIGTERM, then SIGKILL; when the command exits, whatever
 * it left running in its group is killed.
 */
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { z } from 'zod';
import { FsError } from '../../fs/errors.js';
import { describeIssues } from '../spec.js';
import type { Program, ProgramContext, ProgramResult } from './index.js';

export const STDOUT_CAP = 1024 * 1024;
export const STDERR_KEEP = 16 * 1024;
const KILL_GRACE_MS = 500;
const WHERE = 'exec';

const ExecSpecSchema = z
  .object({
    type: z.literal('exec'),
    /** A shell command line (run with /bin/sh -c) or an argv array. */
    command: z.union([z.string().min(1).max(64 * 1024), z.array(z.string().max(64 * 1024)).min(1).max(4096)]),
    /** Absolute working directory; default: the agent's work directory under AGENT9_HOME/work. */
    cwd: z.string().startsWith('/').optional(),
    /** Deadline of one run; default: limits.tick_timeout_ms. */
    timeout_ms: z.number().int().min(10).max(3_600_000).optional(),
  })
  .strict();
type ExecSpec = z.infer<typeof ExecSpecSchema>;

/** What the process reads on stdin. */
export function tickDocument(ctx: ProgramContext): Record<string, unknown> {
  return {
    agent_id: ctx.agentId,
    tick: ctx.tick,
    cause: ctx.cause.type,
    deadline: ctx.deadline,
    triggers: ctx.triggers,
    state: ctx.state ?? null,
  };
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* the group is gone already */
  }
}

function tail(text: string, max = 2000): string {
  const t = text.trim();
  return t.length > max ? '...' + t.slice(-max) : t;
}

export const execProgram: Program = {
  name: 'exec',
  live: true,
  validate(spec, path) {
    const r = ExecSpecSchema.safeParse(spec);
    if (!r.success) throw new FsError('EINVAL', path, `bad program: ${describeIssues(r.error)}`);
    return r.data;
  },
  async run(ctx): Promise<ProgramResult> {
    const spec = ctx.config.program as ExecSpec;
    const timeout = Math.max(1, Math.min(spec.timeout_ms ?? ctx.config.limits.tick_timeout_ms, ctx.deadline - Date.now()));
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: process.env['HOME'] ?? '/',
      LANG: process.env['LANG'] ?? 'C.UTF-8',
      TMPDIR: tmpdir(),
      ...ctx.config.env,
      ...(await ctx.execEnv()),
      AGENT_ID: ctx.agentId,
      AGENT9_TICK: String(ctx.tick),
    };
    const cwd = spec.cwd ?? (await ctx.workDir());
    const [file, args] = typeof spec.command === 'string' ? ['/bin/sh', ['-c', spec.command]] : [spec.command[0]!, spec.command.slice(1)];
    const { stdout, stderr } = await runProcess(file, args, { cwd, env, timeout, input: JSON.stringify(tickDocument(ctx)) + '\n', signal: ctx.signal });
    return resultFromStdout(stdout, stderr);
  },
};

export function resultFromStdout(stdout: string, stderr: string): ProgramResult {
  const text = stdout.trim();
  let result: ProgramResult = {};
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new FsError('EINVAL', WHERE, `stdout looks like JSON but does not parse: ${(err as Error).message}`);
    }
    result = parsed as ProgramResult;
  } else if (text.length > 0) {
    result = { outbox: [{ payload: { text: stdout.endsWith('\n') ? stdout.slice(0, -1) : stdout } }] };
  }
  if (stderr.trim()) {
    if (typeof result !== 'object' || result === null || Array.isArray(result)) return result;
    const trace = Array.isArray(result.trace) ? [...result.trace] : [];
    trace.push({ type: 'stderr', text: tail(stderr, STDERR_KEEP) });
    result = { ...result, trace };
  }
  return result;
}

interface RunOptions {
  cwd: string;
  env: Record<string, string>;
  timeout: number;
  input: string;
  signal: AbortSignal;
}

/** Runs a process in its own group; resolves with its output on exit 0, rejects with an FsError otherwise. */
function runProcess(file: string, args: string[], opts: RunOptions): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    let failure: FsError | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;

    const stop = (why: FsError) => {
      failure ??= why;
      killGroup(child.pid, 'SIGTERM');
      graceTimer ??= setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    const deadline = setTimeout(
      () => stop(new FsError('ETIMEDOUT', WHERE, `deadline of ${opts.timeout} ms passed; the process group was killed`)),
      opts.timeout,
    );
    const onAbort = () => stop(new FsError('ETIMEDOUT', WHERE, 'the tick was cancelled; the process group was killed'));
    opts.signal.addEventListener('abort', onAbort);

    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(graceTimer);
      opts.signal.removeEventListener('abort', onAbort);
      const stderr = err;
      if (failure) {
        const detail = stderr.trim() ? `${failure.detail}; stderr: ${tail(stderr)}` : failure.detail;
        reject(new FsError(failure.code, WHERE, detail));
      } else if (exit && exit.code !== 0) {
        const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
        reject(new FsError('EIO', WHERE, stderr.trim() ? `${how}: ${tail(stderr)}` : how));
      } else {
        resolve({ stdout: Buffer.concat(out, outBytes).toString('utf8'), stderr });
      }
    };

    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > STDOUT_CAP) {
        stop(new FsError('EFBIG', WHERE, `stdout over ${STDOUT_CAP} bytes; the process group was killed`));
        return;
      }
      out.push(chunk);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      err += chunk;
      if (err.length > 2 * STDERR_KEEP) err = err.slice(-STDERR_KEEP);
    });
    child.stdin.on('error', () => {
      /* the program did not read its input: fine */
    });
    child.on('error', (e) => {
      failure ??= new FsError('EIO', WHERE, `cannot start ${file}: ${e.message}`);
      finish();
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // Whatever the command left running in its group goes with it.
      killGroup(child.pid, 'SIGKILL');
      // Output is complete once every holder of the pipes is gone; don't wait for escapees forever.
      setTimeout(finish, 1000).unref();
    });
    child.on('close', finish);
    child.stdin.end(opts.input);
  });
}
