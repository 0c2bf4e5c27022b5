/**
 * Commands in a session: each one's record, its start in the container, its time limit (which kills
 * its whole process tree), its output (stdout and stderr apart, each capped, coalesced for a few ms
 * into events at the session's and the exec's output) and its end, recorded once.
 */
import { FsError, toFsError } from '../../../fs/errors.js';
import type { RunningExec } from '../providers/types.js';
import { parseExecCommand } from '../commands.js';
import { argvOf, parseExecRequest, type ExecRequest } from '../request.js';
import { EXEC_TERMINAL, SESSION_TERMINAL, type ExecRecord, type ExecResult, type ExecStatus, type OutputChunk } from '../types.js';
import { execResult } from './answers.js';
import { Capture, HELPER_TIMEOUT_MS, deferred, withTimeout, type EngineState, type LiveExec, type LiveSession, type Outcome, type Segment } from './state.js';

/** Output is coalesced into one event per stream run for this long (fewer events for chatty commands). */
const OUTPUT_FLUSH_MS = 10;
const OUTPUT_FLUSH_BYTES = 64 * 1024;

export interface ExecAnswer {
  exec_id: string;
  session_id: string;
  status: ExecStatus;
  paths: { status: string; result: string; output: string; stdout: string; stderr: string; stdin: string; ctl: string };
}

export class Execs {
  constructor(
    private readonly s: EngineState,
    /** Ends a session (when a timed-out tree cannot be killed, its container goes). */
    private readonly endSession: (live: LiveSession, outcome: Outcome) => Promise<void>,
  ) {}

  paths(sid: string, eid: string): ExecAnswer['paths'] {
    const base = `${this.s.kit.mountPath}/sessions/${sid}/exec/${eid}`;
    return {
      status: `${base}/status`,
      result: `${base}/result`,
      output: `${base}/output`,
      stdout: `${base}/stdout`,
      stderr: `${base}/stderr`,
      stdin: `${base}/stdin`,
      ctl: `${base}/ctl`,
    };
  }

  /** exec/new: starts a command in a running (or provisioning) session. */
  async execNew(agentId: string, sid: string, data: Uint8Array, path: string): Promise<ExecAnswer | ExecResult> {
    const rec = this.s.needSession(agentId, sid, path);
    const req = parseExecRequest(data, path);
    const live = this.s.live.get(sid);
    if (!live || live.endingStatus || SESSION_TERMINAL.has(rec.status)) {
      throw new FsError('EINVAL', path, `container session ${sid} is ${live?.endingStatus ?? rec.status}: no more commands`);
    }
    const lx = this.start(live, req, 'exec');
    if (req.wait) return execResult(await lx.done);
    const ex = this.s.sessions.getExec(sid, lx.id)!;
    return { exec_id: lx.id, session_id: sid, status: ex.status, paths: this.paths(sid, lx.id) };
  }

  /** Records a new exec of a session and starts it; `done` settles with its final record. */
  start(live: LiveSession, req: ExecRequest, origin: ExecRecord['origin']): LiveExec {
    const { s } = this;
    const policy = s.policy(live.agentId);
    const now = s.now();
    const rec = s.sessions.get(live.id)!;
    const timeoutSecs = Math.min(req.timeout_secs ?? rec.request.limits.exec_timeout_secs, rec.request.limits.time_secs);
    const eid = s.tx(() => {
      const current = s.sessions.get(live.id)!;
      const id = String(current.nextExec);
      s.sessions.update(live.id, { nextExec: current.nextExec + 1 }, now);
      const ex: ExecRecord = {
        sessionId: live.id,
        id,
        origin,
        command: req.command,
        status: 'pending',
        error: null,
        exitCode: null,
        timedOut: false,
        killed: false,
        oomKilled: false,
        stdout: '',
        stderr: '',
        stdoutBytes: 0,
        stderrBytes: 0,
        stdoutTruncated: false,
        stderrTruncated: false,
        stdin: req.stdin === true ? 'open' : typeof req.stdin === 'string' ? 'text' : 'none',
        timeoutSecs,
        createdAt: now,
        startedAt: null,
        finishedAt: null,
        streamFrom: s.storage.eventStore.lastId(),
        version: 1,
        updatedAt: now,
      };
      s.sessions.insertExec(ex);
      s.channel(live.agentId).emit(`/sessions/${live.id}/exec/${id}`, 'created', { version: 1 });
      return id;
    });
    const started = deferred<RunningExec | undefined>();
    const lx: LiveExec = {
      id: eid,
      timeoutSecs,
      stdout: new Capture(policy.max_output_bytes),
      stderr: new Capture(policy.max_output_bytes),
      pending: [],
      pendingBytes: 0,
      flushTimer: undefined,
      running: undefined,
      started: started.promise,
      resolveStarted: started.resolve,
      timer: undefined,
      killedBy: undefined,
      killFailed: undefined,
      closed: false,
      done: undefined as unknown as Promise<ExecRecord>,
    };
    live.execs.set(eid, lx);
    lx.done = this.run(live, lx, req).finally(() => {
      live.execs.delete(eid);
      lx.resolveStarted(undefined);
    });
    // Seen by whoever awaits it; never an unhandled rejection when nobody does.
    lx.done.catch(() => undefined);
    return lx;
  }

  private async run(live: LiveSession, lx: LiveExec, req: ExecRequest): Promise<ExecRecord> {
    const { s } = this;
    try {
      const containerId = await live.ready;
      if (!containerId || live.endingStatus) {
        return this.close(live, lx, { status: 'failed', error: `the session ${live.endingStatus ?? 'ended'} before the command started` });
      }
      const rec = s.sessions.get(live.id)!;
      const workdir = req.workdir === undefined ? undefined : req.workdir.startsWith('/') ? req.workdir : `${rec.request.workdir}/${req.workdir}`;
      const running = await live.provider.exec(
        containerId,
        {
          marker: `${live.id}.${lx.id}`,
          argv: argvOf(req.command),
          env: req.env,
          stdin: req.stdin !== false,
          ...(workdir !== undefined ? { workdir } : {}),
          ...(req.user !== undefined ? { user: req.user } : {}),
        },
        { stdout: (b) => this.onOutput(live, lx, 'stdout', b), stderr: (b) => this.onOutput(live, lx, 'stderr', b) },
      );
      lx.running = running;
      s.execActivity(live.id);
      const now = s.now();
      s.tx(() => {
        const next = s.sessions.updateExec(live.id, lx.id, { status: 'running', startedAt: now }, now);
        s.channel(live.agentId).emit(`/sessions/${live.id}/exec/${lx.id}/status`, 'modified', { version: next.version });
      });
      // A limit reaching past the session's lifetime is left to the lifetime: the session expires instead.
      const deadlineAt = s.sessions.get(live.id)!.deadlineAt;
      if (deadlineAt === null || now + lx.timeoutSecs * 1000 < deadlineAt) {
        lx.timer = setTimeout(() => void this.timeout(live, lx), lx.timeoutSecs * 1000);
        lx.timer.unref();
      }
      lx.resolveStarted(running);
      if (typeof req.stdin === 'string') {
        if (req.stdin.length > 0) await running.writeStdin(new TextEncoder().encode(req.stdin)).catch(() => undefined);
        running.closeStdin();
      }
      const { exitCode } = await running.done;
      clearTimeout(lx.timer);
      return await this.classify(live, lx, exitCode);
    } catch (err) {
      clearTimeout(lx.timer);
      if (live.detached) throw err;
      return this.close(live, lx, { status: 'failed', error: toFsError(err, '/').detail });
    }
  }

  /** What an exited process's end means: timeout, killed, out of memory, or just its exit code. */
  private async classify(live: LiveSession, lx: LiveExec, exitCode: number | null): Promise<ExecRecord> {
    if (lx.killedBy === 'timeout') {
      return this.close(live, lx, {
        status: 'timeout',
        timedOut: true,
        exitCode,
        error:
          lx.killFailed === undefined
            ? `timed out after ${lx.timeoutSecs} s; its process tree was killed`
            : `timed out after ${lx.timeoutSecs} s; its process tree could not be killed (${lx.killFailed}), so the container was killed`,
      });
    }
    if (lx.killedBy === 'ctl') return this.close(live, lx, { status: 'killed', killed: true, exitCode, error: 'killed through its ctl' });
    if (live.endingStatus && (exitCode === null || exitCode === 137 || exitCode === 143)) {
      return this.close(live, lx, { status: 'killed', killed: true, exitCode, error: `the session ${live.endingStatus}` });
    }
    if (exitCode === null) return this.close(live, lx, { status: 'failed', error: 'the engine did not report an exit status' });
    if (exitCode === 137 && live.containerId && !live.endingStatus) {
      const usage = await withTimeout(live.provider.usage(live.containerId), HELPER_TIMEOUT_MS, 'reading usage').catch(() => null);
      if (usage?.oom_kills !== null && usage?.oom_kills !== undefined && usage.oom_kills > live.knownOomKills) {
        live.knownOomKills = usage.oom_kills;
        const mb = this.s.sessions.get(live.id)!.request.limits.memory_mb;
        return this.close(live, lx, {
          status: 'complete',
          exitCode,
          oomKilled: true,
          error: `killed by the kernel: out of memory (the session's limit is ${mb} MB)`,
        });
      }
    }
    return this.close(live, lx, { status: 'complete', exitCode });
  }

  /** Kills an exec's whole tree at its time limit; a tree that cannot be killed takes its container with it. */
  private async timeout(live: LiveSession, lx: LiveExec): Promise<void> {
    if (lx.closed || !live.containerId) return;
    lx.killedBy = 'timeout';
    try {
      await this.signalTree(live, lx, 'KILL');
    } catch (err) {
      lx.killFailed = toFsError(err, '/').detail;
      await this.endSession(live, {
        status: 'failed',
        stopReason: 'kill',
        error: {
          code: 'ETIMEDOUT',
          message: `exec ${lx.id} timed out and its process tree could not be killed (${lx.killFailed}); the container was killed`,
        },
      });
    }
  }

  private onOutput(live: LiveSession, lx: LiveExec, stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    if (lx.closed || live.detached) return;
    const capture = stream === 'stdout' ? lx.stdout : lx.stderr;
    const wasTruncated = capture.truncated;
    const part = capture.take(chunk);
    if (part.length > 0) {
      const text = capture.decoder.decode(part, { stream: true });
      if (text.length > 0) this.queue(lx, { stream, text });
    }
    if (!wasTruncated && capture.truncated) this.queue(lx, { stream, text: '', truncated: true });
    if (lx.pendingBytes >= OUTPUT_FLUSH_BYTES) this.flush(live, lx);
    else if (!lx.flushTimer && lx.pending.length > 0) {
      lx.flushTimer = setTimeout(() => this.flush(live, lx), OUTPUT_FLUSH_MS);
    }
  }

  private queue(lx: LiveExec, seg: Segment): void {
    const last = lx.pending.at(-1);
    if (last && !last.truncated && !seg.truncated && last.stream === seg.stream) last.text += seg.text;
    else lx.pending.push(seg);
    lx.pendingBytes += seg.text.length;
  }

  /** Records queued output as data events at the session's and the exec's output. */
  private flush(live: LiveSession, lx: LiveExec): void {
    clearTimeout(lx.flushTimer);
    lx.flushTimer = undefined;
    if (lx.pending.length === 0) return;
    const segments = lx.pending;
    lx.pending = [];
    lx.pendingBytes = 0;
    const ch = this.s.channel(live.agentId);
    this.s.tx(() => {
      for (const seg of segments) {
        const chunk: OutputChunk = { session_id: live.id, exec_id: lx.id, stream: seg.stream, data: seg.text, ...(seg.truncated ? { truncated: true as const } : {}) };
        ch.emit(`/sessions/${live.id}/output`, 'data', { data: chunk });
        ch.emit(`/sessions/${live.id}/exec/${lx.id}/output`, 'data', { data: chunk });
      }
    });
  }

  /** Records an exec's end once: remaining output, the outcome, and the end of its output stream. */
  close(live: LiveSession, lx: LiveExec, patch: Partial<ExecRecord>): ExecRecord {
    const { s } = this;
    if (live.detached) throw new FsError('EIO', '/', 'the server shut down; the exec is no longer followed');
    if (lx.closed) return s.sessions.getExec(live.id, lx.id)!;
    lx.closed = true;
    clearTimeout(lx.timer);
    s.execActivity(live.id);
    for (const [stream, capture] of [['stdout', lx.stdout], ['stderr', lx.stderr]] as const) {
      const tail = capture.decoder.decode();
      if (tail.length > 0) this.queue(lx, { stream, text: tail });
    }
    const now = s.now();
    return s.tx(() => {
      this.flush(live, lx);
      const next = s.sessions.updateExec(
        live.id,
        lx.id,
        {
          ...patch,
          stdout: lx.stdout.text(),
          stderr: lx.stderr.text(),
          stdoutBytes: lx.stdout.total,
          stderrBytes: lx.stderr.total,
          stdoutTruncated: lx.stdout.truncated,
          stderrTruncated: lx.stderr.truncated,
          finishedAt: now,
        },
        now,
      );
      s.emitExecEnd(live.agentId, next);
      return next;
    });
  }

  /** exec/<eid>/ctl: `kill` (SIGKILL to the whole tree), `signal NAME` (to the whole tree), `eof` (close stdin). */
  async ctl(agentId: string, sid: string, eid: string, command: string, path: string): Promise<void> {
    const ex = this.s.needExec(agentId, sid, eid, path);
    const cmd = parseExecCommand(command, path);
    const live = this.s.live.get(sid);
    const lx = live?.execs.get(eid);
    if (cmd.verb === 'eof') {
      if (ex.stdin !== 'open') throw new FsError('EINVAL', path, `exec ${eid} was not started with stdin open`);
      (await lx?.started)?.closeStdin();
      return;
    }
    const { signal } = cmd;
    if (!live || !lx || EXEC_TERMINAL.has(ex.status)) return; // already ended
    const running = await lx.started;
    if (!running || lx.closed || !live.containerId) return;
    if (signal === 'KILL') lx.killedBy = 'ctl';
    await this.signalTree(live, lx, signal);
  }

  /**
   * Signals an exec's tree. The engine answers an exec's start before its process exists: while none is
   * found and the exec has not ended, look again for a little while.
   */
  private async signalTree(live: LiveSession, lx: LiveExec, signal: string): Promise<number> {
    const deadline = Date.now() + HELPER_TIMEOUT_MS;
    for (;;) {
      const n = await withTimeout(live.provider.signalExec(live.containerId!, `${live.id}.${lx.id}`, signal), HELPER_TIMEOUT_MS, 'signalling the process tree');
      if (n > 0 || lx.closed || Date.now() > deadline) return n;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** exec/<eid>/stdin: each message goes to the command's stdin (it must have been started with stdin open). */
  async stdin(agentId: string, sid: string, eid: string, data: Uint8Array, path: string): Promise<void> {
    const ex = this.s.needExec(agentId, sid, eid, path);
    if (ex.stdin !== 'open') throw new FsError('EINVAL', path, `exec ${eid} was not started with stdin open ({"stdin": true})`);
    const lx = this.s.live.get(sid)?.execs.get(eid);
    const running = lx ? await lx.started : undefined;
    if (!lx || !running || lx.closed) throw new FsError('EINVAL', path, `exec ${eid} has finished`);
    await running.writeStdin(data).catch((err: unknown) => {
      throw new FsError('EINVAL', path, `stdin of exec ${eid} is closed`, { cause: err });
    });
  }
}
