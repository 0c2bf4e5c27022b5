/**
 * /ctl: one command per line, `tick [reason]`, `hibernate`, `wake`, `stop`, `start`. All lines are
 * checked before any runs; a bad one fails the write with EINVAL. `tick` returns when the tick is done
 * and fails the write with the tick's error when it failed.
 */
import { FsError } from '../fs/errors.js';
import { utf8 } from '../fs/bytes.js';
import { SyntheticFs, message } from '../fs/synthetic.js';
import type { Cx } from '../fs/types.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import type { LifecycleState } from '../runtime/spec.js';
import type { TickReport } from '../runtime/tick-engine.js';

const USAGE = 'tick [reason] | hibernate | wake | stop | start';

type Command = { verb: 'tick'; reason?: string } | { verb: 'hibernate' | 'wake' | 'stop' | 'start' };

export function parseCtl(text: string, path: string): Command[] {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  if (lines.length === 0) throw new FsError('EINVAL', path, `empty command (expected: ${USAGE})`);
  return lines.map((line) => {
    const [verb, ...rest] = line.split(/\s+/);
    switch (verb) {
      case 'tick':
        return rest.length ? { verb, reason: rest.join(' ') } : { verb };
      case 'hibernate':
      case 'wake':
      case 'stop':
      case 'start':
        if (rest.length) throw new FsError('EINVAL', path, `'${verb}' takes no arguments`);
        return { verb };
      default:
        throw new FsError('EINVAL', path, `unknown command '${line.slice(0, 80)}' (expected: ${USAGE})`);
    }
  });
}

const TRANSITIONS: Record<'hibernate' | 'wake' | 'stop' | 'start', { from: LifecycleState[]; to: LifecycleState }> = {
  hibernate: { from: ['creating', 'active', 'failed'], to: 'dormant' },
  wake: { from: ['dormant'], to: 'active' },
  stop: { from: ['creating', 'active', 'dormant', 'failed'], to: 'terminated' },
  start: { from: ['terminated', 'failed'], to: 'active' },
};

/**
 * Runs the commands of one write, in order. What they did is the write's receipt (HTTP answers it):
 * `{agent, state, ticks}`, the agent's state after the last command and the report of each tick run
 * (`{agent, tick, ok, cause, duration_ms, delivered, duplicates, outbox, deadlettered, state, ...}`).
 */
export async function runCtl(rt: AgentRuntime, id: string, text: string, cx: Cx, path: string): Promise<void> {
  const ticks: TickReport[] = [];
  for (const cmd of parseCtl(text, path)) {
    if (cmd.verb === 'tick') {
      const cause = { type: 'ctl' as const, invoked_by: cx.principal.id, ...(cmd.reason ? { reason: cmd.reason } : {}) };
      const report = await rt.tick(id, cause, path);
      if (!report.ok) {
        throw new FsError((report.error?.code ?? 'EIO') as FsError['code'], path, `tick ${report.tick} failed: ${report.error?.message ?? 'unknown error'}`);
      }
      ticks.push(report);
    } else {
      const t = TRANSITIONS[cmd.verb];
      rt.agents.transition(id, t.from, t.to, path, `ctl ${cmd.verb} by ${cx.principal.id}`);
    }
  }
  cx.receipt?.({ value: { agent: id, state: rt.store.getAgent(id)?.state ?? null, ticks } });
}

export function ctlService(rt: AgentRuntime, id: string): SyntheticFs {
  return new SyntheticFs(message((data, cx) => runCtl(rt, id, utf8(data), cx, '/'), { maxBytes: 64 * 1024 }), 'ctl');
}
