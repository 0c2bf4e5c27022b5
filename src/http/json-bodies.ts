/**
 * A body whose Content-Type says JSON (`application/json`, any `+json`) must be JSON when it goes to a
 * message file (an inbox, a ctl) or a call file: else an inbox would queue the broken document as text
 * and an exec/new would run it as a command line, and the client, who meant JSON, would never know.
 * It is refused with EINVAL naming the parse error. Data files take bytes whatever their type says;
 * writable views parse their JSON themselves.
 */
import { FsError } from '../fs/errors.js';
import type { FileKind } from '../fs/types.js';
import type { RouteContext } from './routes.js';

const JSON_MEDIA = /^\s*application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** Larger bodies are refused by the message and call files' own cap (1 MiB) before they are read. */
const CHECKED_BYTES = 1024 * 1024;

/** The parse error of a body declared JSON that is not, or undefined (not declared JSON, or it parses). */
function jsonProblem(ctx: RouteContext): string | undefined {
  const type = ctx.request.bodyType;
  if (type === undefined || !JSON_MEDIA.test(type) || ctx.body.length > CHECKED_BYTES) return undefined;
  try {
    JSON.parse(Buffer.from(ctx.body.buffer, ctx.body.byteOffset, ctx.body.byteLength).toString('utf8'));
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * EINVAL when the body is declared JSON, is not, and goes to a message or call file. `kind` is the
 * target's kind when known; else it is looked up, and only for a body that failed to parse, so that
 * a PUT of a data file costs nothing more.
 */
export async function checkDeclaredJson(ctx: RouteContext, path: string, kind?: FileKind): Promise<void> {
  const problem = jsonProblem(ctx);
  if (problem === undefined) return;
  const k = kind ?? (await ctx.view.stat(path, ctx.cx).then((st) => st.kind, () => undefined));
  if (k !== 'message' && k !== 'call') return;
  throw new FsError('EINVAL', path, `malformed JSON (the request says Content-Type: ${ctx.request.bodyType}): ${problem}`);
}
