/**
 * The commands of a session's and an exec's `ctl`, parsed the same way at the write that completes a
 * line (so a bad one fails write(2)) and when the message is run.
 */
import { FsError } from '../../fs/errors.js';

export type SessionCommand = 'stop' | 'kill';
export type ExecCommand = { verb: 'eof' } | { verb: 'signal'; signal: string };

/** sessions/<sid>/ctl: `stop` | `kill`. */
export function parseSessionCommand(command: string, path: string): SessionCommand {
  const verb = command.trim();
  if (verb === 'stop' || verb === 'kill') return verb;
  throw new FsError('EINVAL', path, `unknown command '${verb.slice(0, 40)}' (commands: stop, kill)`);
}

/** exec/<eid>/ctl: `kill` (SIGKILL), `signal NAME` (SIGNAME or NAME), `eof`. */
export function parseExecCommand(command: string, path: string): ExecCommand {
  const [verb, arg, ...rest] = command.trim().split(/\s+/);
  if (verb === 'eof' && arg === undefined) return { verb: 'eof' };
  if (verb === 'kill' && arg === undefined) return { verb: 'signal', signal: 'KILL' };
  if (verb === 'signal' && arg && rest.length === 0 && /^(SIG)?[A-Z0-9]{1,10}$/.test(arg.toUpperCase())) {
    return { verb: 'signal', signal: arg.toUpperCase().replace(/^SIG/, '') };
  }
  throw new FsError('EINVAL', path, `unknown command '${command.trim().slice(0, 40)}' (commands: kill, signal NAME, eof)`);
}
