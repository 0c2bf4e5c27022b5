/**
 * agentctl containers: run, ls, stop, exec. Every verb is file operations on an agent's /containers
 * (see CONTRACT.md): `run` writes `new`, follows the session's `output` (stdout to stdout, stderr to
 * stderr) and exits with its command's exit code; `exec` does the same for one command in a running
 * session.
 *
 * Which agent: `--agent ID`, else AGENT9_AGENT or AGENT_ID (set for exec programs), else `/containers`
 * when the token sees one at its root (an agent-scoped token).
 */
import type { Command } from 'commander';
import { ERROR_TABLE, FsError, isErrorCode } from '../../fs/errors.js';
import { action, commandOf, contextOf, readStdin, usage, type CliContext } from '../context.js';
import { c, printJson, table, timeString, write } from '../output.js';
import { agentPath } from './agent-verbs.js';

interface AgentOption {
  agent?: string;
}

/** The /containers directory the verbs work on. */
export async function containersBase(ctx: CliContext, opts: AgentOption, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const agent = opts.agent ?? env['AGENT9_AGENT'] ?? env['AGENT_ID'];
  if (agent) return agentPath(agent, 'containers');
  try {
    const st = await ctx.client.stat('/containers', ctx.cx);
    if (st.type === 'dir') return '/containers';
  } catch (err) {
    if (!(err instanceof FsError && (err.code === 'ENOENT' || err.code === 'EACCES'))) throw err;
  }
  throw usage('which agent? name it with --agent ID (or set AGENT9_AGENT)');
}

interface OutputChunk {
  stream?: 'stdout' | 'stderr';
  data?: string;
}

/** Copies a JSON-lines output stream to stdout and stderr as it arrives; ends with the stream. */
async function follow(ctx: CliContext, path: string): Promise<void> {
  const res = await ctx.client.request({ method: 'GET', path });
  if (!res.body) return;
  const decoder = new TextDecoder();
  let pending = '';
  const emit = async (line: string) => {
    if (line.trim() === '') return;
    const chunk = JSON.parse(line) as OutputChunk;
    if (!chunk.data) return;
    const out = chunk.stream === 'stderr' ? process.stderr : process.stdout;
    if (!out.write(chunk.data)) await new Promise((r) => out.once('drain', r));
  };
  for await (const part of res.body) {
    pending += decoder.decode(part as Uint8Array, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      await emit(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  await emit(pending + decoder.decode());
}

async function callJson(ctx: CliContext, path: string, body: unknown): Promise<Record<string, unknown>> {
  const data = await ctx.client.post(path, new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body)), ctx.cx);
  return JSON.parse(new TextDecoder().decode(data)) as Record<string, unknown>;
}

async function readJson(ctx: CliContext, path: string): Promise<Record<string, unknown>> {
  return JSON.parse(new TextDecoder().decode(await ctx.client.readFile(path, ctx.cx))) as Record<string, unknown>;
}

/** The exit code a finished session or exec stands for: its command's, or its failure's. */
function exitCodeOf(result: Record<string, unknown>): number {
  const code = result['exit_code'];
  if (typeof code === 'number') return code;
  const err = result['error'] as { code?: string; message?: string } | string | null | undefined;
  const errCode = typeof err === 'object' && err ? err.code : undefined;
  return isErrorCode(errCode) ? ERROR_TABLE[errCode].exit : 1;
}

function describeFailure(result: Record<string, unknown>): string | undefined {
  const err = result['error'] as { code?: string; message?: string } | string | null | undefined;
  if (!err) return undefined;
  return typeof err === 'string' ? err : `${err.code ?? 'EIO'}: ${err.message ?? ''}`;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function envOf(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw usage(`--env wants NAME=VALUE (got ${p})`);
    env[p.slice(0, i)] = p.slice(i + 1);
  }
  return env;
}

function num(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw usage(`${flag} wants a positive number (got ${v})`);
    return n;
  };
}

interface RunOptions extends AgentOption {
  env: string[];
  memory?: number;
  cpus?: number;
  pids?: number;
  disk?: number;
  timeout?: number;
  network?: boolean;
  workdir?: string;
  user?: string;
  maxCost?: number;
  idempotencyKey?: string;
  detach?: boolean;
}

async function run(ctx: CliContext, image: string, argv: string[], opts: RunOptions): Promise<void> {
  if (argv.length === 0) throw usage('what to run? agentctl containers run IMAGE -- CMD [ARGS...]');
  const base = await containersBase(ctx, opts);
  const limits: Record<string, unknown> = {};
  if (opts.memory !== undefined) limits['max_memory_mb'] = opts.memory;
  if (opts.cpus !== undefined) limits['max_cpu_cores'] = opts.cpus;
  if (opts.pids !== undefined) limits['max_pids'] = opts.pids;
  if (opts.disk !== undefined) limits['max_disk_mb'] = opts.disk;
  if (opts.timeout !== undefined) limits['max_time_secs'] = Math.ceil(opts.timeout);
  if (opts.network) limits['allow_network'] = true;
  const request: Record<string, unknown> = {
    image,
    commands: [argv],
    ...(Object.keys(limits).length ? { limits } : {}),
    ...(opts.env.length ? { env: envOf(opts.env) } : {}),
    ...(opts.workdir ? { workdir: opts.workdir } : {}),
    ...(opts.user ? { user: opts.user } : {}),
    ...(opts.maxCost !== undefined ? { max_cost: opts.maxCost } : {}),
    ...(opts.idempotencyKey ? { idempotency_key: opts.idempotencyKey } : {}),
  };
  const answer = await callJson(ctx, `${base}/new`, request);
  const sid = answer['session_id'] as string;
  if (opts.detach) {
    if (ctx.json) printJson(answer);
    else write(sid + '\n');
    return;
  }
  if (process.stderr.isTTY) process.stderr.write(c.dim(`session ${sid}\n`));
  await follow(ctx, `${base}/sessions/${sid}/output`);
  const result = await readJson(ctx, `${base}/sessions/${sid}/result`);
  if (ctx.json) printJson(result);
  const failure = describeFailure(result);
  if (failure && result['status'] !== 'complete') process.stderr.write(`agentctl: session ${sid} ${String(result['status'])}: ${failure}\n`);
  else if (failure) process.stderr.write(c.dim(`agentctl: ${failure}\n`));
  process.exitCode = exitCodeOf(result);
}

async function exec(ctx: CliContext, sid: string, argv: string[], opts: AgentOption & { timeout?: number; stdin?: boolean }): Promise<void> {
  if (argv.length === 0) throw usage('what to run? agentctl containers exec SESSION -- CMD [ARGS...]');
  const base = await containersBase(ctx, opts);
  const request: Record<string, unknown> = { command: argv };
  if (opts.timeout !== undefined) request['timeout_secs'] = Math.ceil(opts.timeout);
  if (opts.stdin) request['stdin'] = new TextDecoder().decode(await readStdin());
  const answer = await callJson(ctx, `${base}/sessions/${sid}/exec/new`, request);
  const eid = answer['exec_id'] as string;
  await follow(ctx, `${base}/sessions/${sid}/exec/${eid}/output`);
  const result = await readJson(ctx, `${base}/sessions/${sid}/exec/${eid}/result`);
  if (ctx.json) printJson(result);
  if (result['status'] !== 'complete' && result['error']) process.stderr.write(`agentctl: exec ${eid} ${String(result['status'])}: ${String(result['error'])}\n`);
  process.exitCode = exitCodeOf(result);
}

async function list(ctx: CliContext, opts: AgentOption & { all?: boolean }): Promise<void> {
  const base = await containersBase(ctx, opts);
  const ids = (await ctx.client.readdir(`${base}/sessions`, ctx.cx)).map((e) => e.name);
  const rows: Record<string, unknown>[] = [];
  for (const id of ids) rows.push(await readJson(ctx, `${base}/sessions/${id}/status`));
  rows.sort((a, b) => Number(a['created_at']) - Number(b['created_at']));
  const shown = opts.all ? rows : rows.filter((r) => r['status'] === 'provisioning' || r['status'] === 'running');
  if (ctx.json) return printJson(shown);
  if (shown.length === 0) {
    if (!opts.all && rows.length > 0) write(c.dim(`no running sessions (${rows.length} finished: agentctl containers ls --all)\n`));
    return;
  }
  const colour = (s: string) => (s === 'running' ? c.green(s) : s === 'failed' ? c.red(s) : s === 'complete' ? s : c.yellow(s));
  write(
    table(shown, [
      { header: 'SESSION', value: (r) => String(r['session_id']) },
      { header: 'STATUS', value: (r) => colour(String(r['status'])) },
      { header: 'KIND', value: (r) => String(r['kind']) },
      { header: 'IMAGE', value: (r) => String(r['image']) },
      { header: 'CREATED', value: (r) => timeString(r['created_at'] as number) },
      { header: 'EXECS', value: (r) => String((r['execs'] as { total: number }).total), align: 'right' },
      { header: 'EXIT', value: (r) => (r['exit_code'] === null ? '' : String(r['exit_code'])), align: 'right' },
    ]),
  );
}

async function stop(ctx: CliContext, sids: string[], opts: AgentOption & { kill?: boolean }): Promise<void> {
  const base = await containersBase(ctx, opts);
  for (const sid of sids) {
    await ctx.client.writeFile(`${base}/sessions/${sid}/ctl`, new TextEncoder().encode(opts.kill ? 'kill' : 'stop'), { append: true }, ctx.cx);
    const status = await readJson(ctx, `${base}/sessions/${sid}/status`);
    if (ctx.json) printJson(status);
    else write(`${sid} ${String(status['status'])}\n`);
  }
}

export function registerContainerCommands(program: Command): void {
  const containers = program.command('containers').description('sandboxed commands in containers (an agent\'s /containers)');
  const agentOption = (cmd: Command) => cmd.option('-a, --agent <id>', 'the agent whose /containers to use (env AGENT9_AGENT)');

  agentOption(
    containers
      .command('run')
      .description('run a command in a new container; streams its output and exits with its exit code')
      .argument('<image>', 'image present in the engine, e.g. agent9/busybox or agent9/python')
      .argument('[command...]', 'the command and its arguments (after --)')
      .option('-e, --env <name=value>', 'environment variable (repeatable)', collect, [])
      .option('--memory <mb>', 'memory limit in MB', num('--memory'))
      .option('--cpus <n>', 'CPU cores', num('--cpus'))
      .option('--pids <n>', 'process limit', num('--pids'))
      .option('--disk <mb>', 'size of the workdir and /tmp in MB', num('--disk'))
      .option('--timeout <secs>', 'lifetime of the session in seconds', num('--timeout'))
      .option('--network', 'turn the network on (if the policy allows it)')
      .option('-w, --workdir <dir>', 'working directory (default /workspace)')
      .option('-u, --user <user>', 'user (name or uid[:gid])')
      .option('--max-cost <micro-usd>', 'most this session may cost, in micro-USD', num('--max-cost'))
      .option('--idempotency-key <key>', 'a repeat with the same key returns the same session')
      .option('-d, --detach', 'print the session id and return at once'),
  ).action(
    action(async (image: string, argv: string[], opts: RunOptions, ...rest: unknown[]) => {
      await run(contextOf(commandOf(rest)), image, argv, opts);
    }),
  );

  agentOption(
    containers
      .command('exec')
      .description('run a command in a running session; streams its output and exits with its exit code')
      .argument('<session>', 'session id')
      .argument('[command...]', 'the command and its arguments (after --)')
      .option('--timeout <secs>', 'time limit of the command', num('--timeout'))
      .option('-i, --stdin', 'send this process\'s stdin to the command'),
  ).action(
    action(async (sid: string, argv: string[], opts: AgentOption & { timeout?: number; stdin?: boolean }, ...rest: unknown[]) => {
      await exec(contextOf(commandOf(rest)), sid, argv, opts);
    }),
  );

  agentOption(
    containers.command('ls').description('list running sessions (--all: finished ones too)').option('--all', 'include finished sessions'),
  ).action(
    action(async (opts: AgentOption & { all?: boolean }, ...rest: unknown[]) => {
      await list(contextOf(commandOf(rest)), opts);
    }),
  );

  agentOption(
    containers
      .command('stop')
      .description('stop sessions (SIGTERM, then SIGKILL after the grace); --kill: SIGKILL now')
      .argument('<session...>', 'session ids')
      .option('--kill', 'kill at once'),
  ).action(
    action(async (sids: string[], opts: AgentOption & { kill?: boolean }, ...rest: unknown[]) => {
      await stop(contextOf(commandOf(rest)), sids, opts);
    }),
  );
}
