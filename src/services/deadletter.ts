/**
 * /deadletter: envelopes that failed `max_attempts` ticks or overflowed a full inbox, bounded by the
 * inbox policy's deadletter_max (oldest dropped beyond, counted and traced).
 * - `<id>.json`: `{envelope, reason, error, attempts, dead_at}`; `rm` discards it;
 * - `ctl`: `replay <id>` (back to the end of the inbox) | `discard <id>` | `purge`, one per line.
 */
import { FsError } from '../fs/errors.js';
import { utf8 } from '../fs/bytes.js';
import { SyntheticFs, dir, message, view } from '../fs/synthetic.js';
import type { Cx } from '../fs/types.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import type { DeadRow } from '../runtime/agent-store/index.js';

const USAGE = 'replay <id> | discard <id> | purge';
const JSON_SUFFIX = '.json';

export function deadEntry(row: DeadRow): Record<string, unknown> {
  return { envelope: JSON.parse(row.body), reason: row.reason, error: row.error, attempts: row.attempts, dead_at: row.at };
}

interface DeadCommand {
  verb: string;
  envId?: string;
}

/** One command line (trimmed, not blank), or EINVAL with the usage. */
function parseDeadCommand(line: string, path: string): DeadCommand {
  const [verb, arg, ...rest] = line.split(/\s+/);
  const envId = arg?.endsWith(JSON_SUFFIX) ? arg.slice(0, -JSON_SUFFIX.length) : arg;
  if ((verb === 'replay' || verb === 'discard') && envId && rest.length === 0) return { verb, envId };
  if (verb === 'purge' && arg === undefined) return { verb };
  throw new FsError('EINVAL', path, `bad command '${line.slice(0, 80)}' (expected: ${USAGE})`);
}

/**
 * A line checked at the write that completes it: its syntax, and that the envelope it names is dead
 * now (ENOENT otherwise; a line before it in the same message cannot make one dead).
 */
function checkDeadCommand(rt: AgentRuntime, id: string, line: string, path: string): void {
  const c = parseDeadCommand(line, path);
  if (c.envId !== undefined && !rt.store.deadletterOne(id, c.envId)) throw new FsError('ENOENT', path, `no dead-lettered envelope '${c.envId}'`);
}

function runDeadletterCtl(rt: AgentRuntime, id: string, text: string, path: string): void {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length === 0) throw new FsError('EINVAL', path, `empty command (expected: ${USAGE})`);
  const cmds = lines.map((line) => parseDeadCommand(line, path));
  for (const c of cmds) {
    if (c.verb === 'replay') rt.queues.replay(id, c.envId!, path);
    else if (c.verb === 'discard') rt.queues.discardDead(id, c.envId!, path);
    else rt.queues.purgeDead(id);
  }
}

export class DeadletterFs extends SyntheticFs {
  constructor(
    private readonly rt: AgentRuntime,
    private readonly id: string,
  ) {
    super(
      dir(
        {
          ctl: message((data) => runDeadletterCtl(rt, id, utf8(data), '/ctl'), {
            maxBytes: 64 * 1024,
            checkLine: (line) => checkDeadCommand(rt, id, line, '/ctl'),
          }),
        },
        {
          dynamic: {
            list: () => rt.store.deadletterList(id).map((r) => r.env_id + JSON_SUFFIX),
            get: (name) => {
              if (!name.endsWith(JSON_SUFFIX)) return undefined;
              const row = rt.store.deadletterOne(id, name.slice(0, -JSON_SUFFIX.length));
              if (!row) return undefined;
              return view(() => JSON.stringify(deadEntry(row), null, 2) + '\n', { mtime: () => row.at, version: () => row.seq });
            },
          },
        },
      ),
      'deadletter',
    );
  }

  async remove(path: string, _cx: Cx, opts: { dir?: boolean } = {}): Promise<void> {
    const name = path.slice(1);
    if (path === '/' || name === 'ctl' || name.includes('/')) throw new FsError('EBUSY', path, 'cannot remove this');
    if (opts.dir) throw new FsError('ENOTDIR', path, 'not a directory');
    if (!name.endsWith(JSON_SUFFIX)) throw new FsError('ENOENT', path, 'no such envelope');
    this.rt.queues.discardDead(this.id, name.slice(0, -JSON_SUFFIX.length), path);
  }
}
