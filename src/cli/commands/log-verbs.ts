/**
 * `agentctl logs ID [-f] [-n N]`: an agent's trace. The last N events from `/logs/recent`; with -f it
 * then follows `/logs/trace` as an SSE watch from the last event printed, so nothing falls in between
 * and a dropped connection resumes where it was.
 */
import type { Command } from 'commander';
import { utf8 } from '../../fs/bytes.js';
import { action, commandOf, contextOf, untilInterrupted, usage } from '../context.js';
import { c, timeString, write } from '../output.js';
import { agentPath } from './agent-verbs.js';

type TraceLine = { id: number; time: number; type?: string; [key: string]: unknown };

function human(line: TraceLine): string {
  const { id: _id, time, type, ...rest } = line;
  const kind = String(type ?? 'event');
  const colour = kind === 'error' || kind.endsWith('_failed') ? c.red : kind === 'tick_end' ? c.green : kind === 'tick_start' ? c.cyan : (t: string) => t;
  const detail = Object.keys(rest).length ? '  ' + JSON.stringify(rest) : '';
  return `${c.dim(timeString(time))}  ${colour(kind)}${detail}\n`;
}

export function registerLogCommands(program: Command): void {
  program
    .command('logs')
    .description("an agent's trace: the last events, and with -f every new one")
    .argument('<id>', 'agent id')
    .option('-f, --follow', 'keep printing new events until interrupted')
    .option('-n, --lines <n>', 'how many recent events to print first', '20')
    .action(
      action(async (id: string, opts: { follow?: boolean; lines: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        if (!/^\d+$/.test(opts.lines)) throw usage(`--lines takes a number, not '${opts.lines}'`);
        const recent = JSON.parse(utf8(await ctx.client.readFile(agentPath(id, 'logs', 'recent'), ctx.cx))) as TraceLine[];
        const shown = Number(opts.lines) === 0 ? [] : recent.slice(-Number(opts.lines));
        const print = (line: TraceLine) => write(ctx.json ? JSON.stringify(line) + '\n' : human(line));
        for (const line of shown) print(line);
        if (!opts.follow) return;
        // From the newest event known (0 when there was none yet: then only what came since is replayed).
        const from = recent.length ? Math.max(...recent.map((l) => l.id)) : 0;
        const signal = untilInterrupted();
        for await (const ev of ctx.client.watch(agentPath(id, 'logs', 'trace'), from, { ...ctx.cx, signal })) {
          if (ev.type === 'reset') continue;
          if (ev.type === 'end') break; // the agent was deleted
          if (ev.type !== 'data') continue;
          const data = ev.data && typeof ev.data === 'object' && !Array.isArray(ev.data) ? (ev.data as Record<string, unknown>) : { data: ev.data };
          print({ id: ev.id, time: ev.time, ...data });
        }
      }),
    );
}
