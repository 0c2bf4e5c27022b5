/**
 * What is written to /containers/new and to a session's exec/new, parsed and checked against the policy.
 * Every problem is an FsError naming the file and the field: EINVAL for malformed JSON, unknown or bad
 * fields, limits over the policy's maxima, refused images.
 *
 * Everything here ends up in an engine call, so nothing passes that the engine could misread: image
 * references follow the engine's grammar (reference.ts), no string holds a NUL byte (the kernel cuts
 * argv and environment strings at it), paths are absolute and normalized without control characters,
 * and users and environment names have the forms the engine takes.
 */
import { z } from 'zod';
import { utf8 } from '../../fs/bytes.js';
import { FsError } from '../../fs/errors.js';
import { parseJson } from '../../fs/synthetic.js';
import type { BudgetScope } from '../../runtime/budget-ledger.js';
import { providerField, submitFields } from '../kit/request-fields.js';
import { parseJsonObject, validate } from '../kit/validation.js';
import type { ContainerPolicy } from './policy.js';
import { checkImageReference, describeBadReference, imageReferenceProblem } from './reference.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$/;

const NO_NUL = (what: string) => [(s: string) => !s.includes('\0'), `${what} cannot hold a NUL byte`] as const;
/** An argument or shell line: the kernel ends a string at its first NUL, so one is refused. */
const arg = (min: number) => z.string().min(min).max(128 * 1024).refine(...NO_NUL('a command'));
/** A command: a shell line (run with `/bin/sh -c`) or an argv array (run as is). */
const command = z.union([arg(1), z.array(arg(0)).min(1).max(4096)]);
const env = z.record(
  z.string().max(256).regex(ENV_NAME, 'environment names are letters, digits and _, not starting with a digit'),
  z.string().max(128 * 1024).refine(...NO_NUL('an environment value')),
);
const user = z.string().regex(USER, 'a user is a name or uid, optionally :group (letters, digits, _ . -)');
/** An image reference the engine accepts (checked before any engine call: it becomes part of an API path). */
export const imageField = z
  .string()
  .max(512)
  .superRefine((ref, ctx) => {
    const problem = imageReferenceProblem(ref);
    if (problem) ctx.addIssue({ code: 'custom', message: describeBadReference(ref, problem) });
  });

const limits = z.strictObject({
  max_time_secs: z.number().int().positive().optional(),
  max_memory_mb: z.number().int().positive().optional(),
  max_cpu_cores: z.number().positive().optional(),
  max_pids: z.number().int().positive().optional(),
  max_disk_mb: z.number().int().positive().optional(),
  allow_network: z.boolean().optional(),
  exec_timeout_secs: z.number().int().positive().optional(),
});

export const requestSchema = z.strictObject({
  kind: z.enum(['ephemeral', 'interactive']).optional(),
  provider: providerField,
  image: imageField.optional(),
  /** Shell lines run in order (`"echo hi"` alone is one); an inner array is one argv command. */
  commands: z.union([z.array(command).max(1000), arg(1)]).optional(),
  workdir: z.string().min(2).max(1024).optional(),
  env: env.optional(),
  user: user.optional(),
  limits: limits.optional(),
  /** The session's lifetime in ms (the origin's field; limits.max_time_secs says the same in seconds). */
  timeout_ms: z.number().int().positive().optional(),
  ...submitFields,
  /** Answer with the session's result once its commands are done (ephemeral sessions). */
  wait: z.boolean().optional(),
});

export const execSchema = z.strictObject({
  command,
  /** Text for the command's stdin (then closed), or true to keep stdin open for writes to exec/<id>/stdin. */
  stdin: z.union([z.string().max(16 * 1024 * 1024), z.boolean()]).optional(),
  timeout_secs: z.number().int().positive().optional(),
  env: env.optional(),
  workdir: z.string().min(1).max(1024).optional(),
  user: user.optional(),
  /** Answer with the command's result once it is done. */
  wait: z.boolean().optional(),
});

export type Command = string | string[];

/** A session request with every default applied and every limit checked against the policy. */
export interface SessionRequest {
  kind: 'ephemeral' | 'interactive';
  provider: string | undefined;
  image: string;
  commands: Command[];
  workdir: string;
  env: Record<string, string>;
  user: string | undefined;
  limits: {
    time_secs: number;
    memory_mb: number;
    cpu_cores: number;
    pids: number;
    disk_mb: number;
    network: boolean;
    exec_timeout_secs: number;
  };
  /** The caller's cap in micro-USD, if any. */
  max_cost: number | undefined;
  budget_scope: BudgetScope | undefined;
  idempotency_key: string | undefined;
  wait: boolean;
}

export interface ExecRequest {
  command: Command;
  stdin: string | boolean;
  timeout_secs: number | undefined;
  env: Record<string, string>;
  workdir: string | undefined;
  user: string | undefined;
  wait: boolean;
}

/** Paths the workdir may not be: the root and the kernel's own trees. */
const RESERVED_DIRS = ['/proc', '/sys', '/dev'];
/** The longest name one directory entry may have (Linux NAME_MAX, in bytes). */
const NAME_MAX = 255;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why a relative path is not a normalized one (no empty, `.` or `..` parts, no control characters), or undefined. */
function pathProblem(parts: string[]): string | undefined {
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return 'a normalized path is needed (no empty, . or .. parts)';
  if (parts.some((p) => CONTROL.test(p))) return 'a path cannot hold control characters';
  if (parts.some((p) => Buffer.byteLength(p) > NAME_MAX)) return `a path part has more than ${NAME_MAX} bytes`;
  return undefined;
}

export function checkWorkdir(workdir: string, path: string, field = 'workdir'): string {
  const w = workdir.replace(/\/+$/, '');
  const problem = !workdir.startsWith('/') ? 'an absolute path is needed' : w === '' ? undefined : pathProblem(w.split('/').slice(1));
  if (problem) throw new FsError('EINVAL', path, `field '${field}': ${problem} (got ${JSON.stringify(workdir)})`);
  if (w === '' || RESERVED_DIRS.some((r) => w === r || w.startsWith(r + '/'))) {
    throw new FsError('EINVAL', path, `field '${field}': ${JSON.stringify(workdir)} cannot be the workdir`);
  }
  return w;
}

/** An exec's workdir: absolute, or relative to the session's workdir (normalized, so it stays below it). */
function checkExecWorkdir(workdir: string, path: string): string {
  if (workdir.startsWith('/')) return checkWorkdir(workdir, path);
  const problem = pathProblem(workdir.replace(/\/+$/, '').split('/'));
  if (problem) throw new FsError('EINVAL', path, `field 'workdir': ${problem} (got ${JSON.stringify(workdir)})`);
  return workdir.replace(/\/+$/, '');
}

function overMax(path: string, field: string, value: number, max: number, policyField: string): never {
  throw new FsError('EINVAL', path, `field '${field}': ${value} is over the policy's ${policyField} (${max})`);
}

/** What a session request looks like, for the message of a body that is not a JSON object. */
export const SESSION_REQUEST_EXAMPLE = '{"image":"agent9/busybox","commands":["echo hi"]}';

/** Parses a request to /containers/new; EINVAL names the field. */
export function parseSessionRequest(data: Uint8Array, policy: ContainerPolicy, path: string): SessionRequest {
  return parseSessionValue(parseJsonObject(data, path, `the request must be a JSON object, e.g. ${SESSION_REQUEST_EXAMPLE}`), policy, path);
}

/** A session request (a JSON object) with the policy's defaults applied and its limits checked. */
export function parseSessionValue(json: Record<string, unknown>, policy: ContainerPolicy, path: string): SessionRequest {
  const raw = validate(requestSchema, json, path);

  const commands: Command[] = raw.commands === undefined ? [] : typeof raw.commands === 'string' ? [raw.commands] : raw.commands;
  if (commands.length > policy.max_commands) overMax(path, 'commands', commands.length, policy.max_commands, 'max_commands');
  const kind = raw.kind ?? (commands.length > 0 ? 'ephemeral' : 'interactive');
  if (kind === 'ephemeral' && commands.length === 0) {
    throw new FsError('EINVAL', path, "an ephemeral session needs 'commands' (or use \"kind\":\"interactive\")");
  }

  const l = raw.limits ?? {};
  let timeSecs = l.max_time_secs ?? (raw.timeout_ms !== undefined ? Math.ceil(raw.timeout_ms / 1000) : policy.default_time_secs);
  if (l.max_time_secs !== undefined && raw.timeout_ms !== undefined && Math.ceil(raw.timeout_ms / 1000) !== l.max_time_secs) {
    throw new FsError('EINVAL', path, "fields 'timeout_ms' and 'limits.max_time_secs' disagree; give one");
  }
  if (timeSecs > policy.max_time_secs) overMax(path, raw.limits?.max_time_secs ? 'limits.max_time_secs' : 'timeout_ms', timeSecs, policy.max_time_secs, 'max_time_secs');
  timeSecs = Math.max(1, timeSecs);
  const memoryMb = l.max_memory_mb ?? policy.default_memory_mb;
  if (memoryMb > policy.max_memory_mb) overMax(path, 'limits.max_memory_mb', memoryMb, policy.max_memory_mb, 'max_memory_mb');
  if (memoryMb < 6) throw new FsError('EINVAL', path, "field 'limits.max_memory_mb': the engine needs at least 6 MB");
  const cpu = l.max_cpu_cores ?? policy.default_cpu_cores;
  if (cpu > policy.max_cpu_cores) overMax(path, 'limits.max_cpu_cores', cpu, policy.max_cpu_cores, 'max_cpu_cores');
  if (cpu < 0.01) throw new FsError('EINVAL', path, "field 'limits.max_cpu_cores': at least 0.01");
  const pids = l.max_pids ?? policy.default_pids;
  if (pids > policy.max_pids) overMax(path, 'limits.max_pids', pids, policy.max_pids, 'max_pids');
  const disk = l.max_disk_mb ?? policy.default_disk_mb;
  if (disk > policy.max_disk_mb) overMax(path, 'limits.max_disk_mb', disk, policy.max_disk_mb, 'max_disk_mb');
  const network = l.allow_network ?? false;
  if (network && !policy.allow_network) {
    throw new FsError('EINVAL', path, "field 'limits.allow_network': the policy does not allow network (allow_network is false)");
  }
  const execTimeout = Math.min(l.exec_timeout_secs ?? policy.default_exec_timeout_secs, timeSecs);

  if (raw.max_cost !== undefined && raw.max_cost_usd !== undefined) {
    throw new FsError('EINVAL', path, "give either 'max_cost' (micro-USD) or 'max_cost_usd', not both");
  }
  const maxCost = raw.max_cost ?? (raw.max_cost_usd !== undefined ? Math.round(raw.max_cost_usd * 1e6) : undefined);
  if (maxCost === undefined && policy.require_max_cost && policy.default_max_cost === null) {
    throw new FsError('EINVAL', path, "the policy requires 'max_cost' (micro-USD) or 'max_cost_usd'");
  }
  if (policy.require_idempotency && raw.idempotency_key === undefined) {
    throw new FsError('EINVAL', path, "the policy requires an 'idempotency_key'");
  }

  return {
    kind,
    provider: raw.provider,
    image: raw.image ?? checkImageReference(policy.default_image, path, 'image', "the policy's default_image"),
    commands,
    workdir: checkWorkdir(raw.workdir ?? '/workspace', path),
    env: raw.env ?? {},
    user: raw.user,
    limits: { time_secs: timeSecs, memory_mb: memoryMb, cpu_cores: cpu, pids, disk_mb: disk, network, exec_timeout_secs: execTimeout },
    max_cost: maxCost,
    budget_scope: raw.budget_scope,
    idempotency_key: raw.idempotency_key,
    wait: raw.wait ?? false,
  };
}

/** Parses exec/new: a JSON object, or plain text that is the command line itself. */
export function parseExecRequest(data: Uint8Array, path: string): ExecRequest {
  const text = utf8(data);
  const trimmed = text.trim();
  if (trimmed.length === 0) throw new FsError('EINVAL', path, 'empty command: write a command line or {"command": ...}');
  const raw = validate(execSchema, trimmed.startsWith('{') ? parseJson(trimmed, path) : { command: trimmed }, path);
  return {
    command: raw.command,
    stdin: raw.stdin ?? false,
    timeout_secs: raw.timeout_secs,
    env: raw.env ?? {},
    workdir: raw.workdir === undefined ? undefined : checkExecWorkdir(raw.workdir, path),
    user: raw.user,
    wait: raw.wait ?? false,
  };
}

/** The argv a command runs as. */
export function argvOf(command: Command): string[] {
  return typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
}

/** A command as one line, for results and listings. */
export function commandLine(command: Command): string {
  return typeof command === 'string' ? command : command.map((a) => (/^[A-Za-z0-9_./=:-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
