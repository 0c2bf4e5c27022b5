/**
 * Agent verbs: each is a file operation on the global view (CONTRACT section 8) through the HTTP client.
 *   agents list|create|edit|delete|export|import, status, send, tick, hibernate, wake
 */
import { createReadStream, createWriteStream, readFileSync, renameSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { Command } from 'commander';
import { utf8 } from '../../fs/bytes.js';
import { FsError } from '../../fs/errors.js';
import { action, bodyFrom, commandOf, contextOf, readStdin, usage, type CliContext } from '../context.js';
import { c, printJson, table, timeString, write } from '../output.js';

export interface AgentStatusJson {
  id: string;
  state: string;
  program: string;
  tick_count: number;
  ticks_failed: number;
  queue_depth: number;
  deadletter_depth: number;
  last_tick_at: number | null;
  last_tick_cause: string | null;
  last_tick_ms: number | null;
  last_error: string | null;
  next_alarm: number | null;
  pubkey: string | null;
  npub: string | null;
  budget?: unknown;
  [key: string]: unknown;
}

const AGENT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function agentPath(id: string, ...rest: string[]): string {
  if (!AGENT_ID.test(id)) throw usage(`'${id}' is not an agent id ([a-z0-9][a-z0-9_-]{0,62})`);
  return ['/agents', id, ...rest].join('/');
}

async function readJson<T>(ctx: CliContext, path: string): Promise<T> {
  return JSON.parse(utf8(await ctx.client.readFile(path, ctx.cx))) as T;
}

async function callJson<T>(ctx: CliContext, path: string, body: unknown): Promise<T> {
  const bytes = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  const answer = await ctx.client.post(path, typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes, ctx.cx);
  return JSON.parse(utf8(answer)) as T;
}

/**
 * The request body of an import: the bundle as it is, streamed. With options (`--as`, `--new-identity`)
 * a version 2 bundle (JSON lines) gets an options line before its header; a version 1 bundle (one JSON
 * document) is read whole and wrapped as `{id?, new_identity?, bundle}`, as v0.1.0 did.
 */
async function* importBody(source: AsyncIterable<Uint8Array>, options: Record<string, unknown>, name: string): AsyncGenerator<Uint8Array> {
  if (Object.keys(options).length === 0) return yield* source;
  const head: Buffer[] = [];
  let headBytes = 0;
  const it = source[Symbol.asyncIterator]();
  for (;;) {
    const next = await it.next();
    if (next.done) break;
    head.push(Buffer.from(next.value));
    headBytes += next.value.length;
    if (next.value.includes(0x0a) || headBytes > 1024 * 1024) break;
  }
  let start = Buffer.concat(head);
  const firstLine = start.subarray(0, Math.max(0, start.indexOf(0x0a))).toString('utf8');
  let v2 = false;
  try {
    const first = JSON.parse(firstLine) as { format?: unknown; version?: unknown };
    v2 = first.format !== undefined && first.version !== 1;
  } catch {
    // not one JSON object on its line: a version 1 document
  }
  if (v2) {
    yield new TextEncoder().encode(JSON.stringify(options) + '\n');
    yield start;
    for (let next = await it.next(); !next.done; next = await it.next()) yield next.value;
    return;
  }
  const parts = [start];
  for (let next = await it.next(); !next.done; next = await it.next()) parts.push(Buffer.from(next.value));
  start = Buffer.concat(parts);
  let bundle: unknown;
  try {
    bundle = JSON.parse(start.toString('utf8'));
  } catch (err) {
    throw new FsError('EINVAL', name, `not a bundle (JSON lines or one JSON document): ${(err as Error).message}`);
  }
  yield new TextEncoder().encode(JSON.stringify({ bundle, ...options }));
}

export function stateColour(state: string): string {
  switch (state) {
    case 'active':
      return c.green(state);
    case 'dormant':
      return c.blue(state);
    case 'failed':
      return c.red(state);
    case 'terminated':
      return c.dim(state);
    default:
      return c.yellow(state);
  }
}

function printStatus(s: AgentStatusJson): void {
  const rows: [string, string][] = [
    ['state', stateColour(s.state)],
    ['program', s.program],
    ['ticks', `${s.tick_count} (${s.ticks_failed} failed)`],
    ['inbox', `${s.queue_depth} queued, ${s.deadletter_depth} dead-lettered`],
    ['last tick', s.last_tick_at ? `${timeString(s.last_tick_at)} (${s.last_tick_cause ?? '?'}, ${s.last_tick_ms ?? '?'} ms)` : '-'],
  ];
  if (s.last_error) rows.push(['last error', c.red(s.last_error)]);
  if (s.next_alarm) rows.push(['next alarm', timeString(s.next_alarm)]);
  if (s.npub) rows.push(['npub', s.npub]);
  if (s.budget !== undefined) rows.push(['budget', JSON.stringify(s.budget)]);
  write(`${c.bold(s.id)}\n` + rows.map(([k, v]) => `  ${k.padEnd(10)} ${v}\n`).join(''));
}

/** `--env A=1 --env B=2` as an object. */
function envOf(pairs: string[]): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw usage(`--env takes NAME=value, not '${p}'`);
    env[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return env;
}

function programOf(program: string | undefined, command: string | undefined): unknown {
  if (command !== undefined) {
    if (program !== undefined && program !== 'exec') throw usage('--command goes with the exec program');
    return { type: 'exec', command };
  }
  return program;
}

async function jsonFrom(file: string): Promise<Record<string, unknown>> {
  const text = file === '-' ? utf8(await readStdin()) : readFileSync(file, 'utf8');
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new FsError('EINVAL', file, `not a JSON object: ${(err as Error).message}`);
  }
}

const collect = (v: string, acc: string[]) => [...acc, v];

export function registerAgentCommands(program: Command): void {
  const agents = program.command('agents').description('list, create, edit, delete, export and import agents');

  agents
    .command('list')
    .description('every agent with its state, ticks and queues')
    .action(
      action(async (...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const ids = (await ctx.client.readdir('/agents', ctx.cx)).filter((e) => e.stat.type === 'dir').map((e) => e.name).sort();
        const rows: AgentStatusJson[] = [];
        for (const id of ids) {
          try {
            rows.push(await readJson<AgentStatusJson>(ctx, agentPath(id, 'status')));
          } catch (err) {
            // Deleted between the listing and the read: it is simply gone.
            if (!(err instanceof FsError && err.code === 'ENOENT')) throw err;
          }
        }
        if (ctx.json) return printJson(rows);
        if (rows.length === 0) return void process.stderr.write('no agents (create one: agentctl agents create NAME)\n');
        write(
          table(rows, [
            { header: 'ID', value: (r) => r.id },
            { header: 'STATE', value: (r) => stateColour(r.state) },
            { header: 'PROGRAM', value: (r) => r.program },
            { header: 'TICKS', value: (r) => String(r.tick_count), align: 'right' },
            { header: 'FAILED', value: (r) => String(r.ticks_failed), align: 'right' },
            { header: 'QUEUE', value: (r) => String(r.queue_depth), align: 'right' },
            { header: 'DEAD', value: (r) => String(r.deadletter_depth), align: 'right' },
            { header: 'LAST TICK', value: (r) => timeString(r.last_tick_at) },
          ]),
        );
      }),
    );

  agents
    .command('create')
    .description('create an agent (the echo program unless told otherwise)')
    .argument('<name>', 'agent id: [a-z0-9][a-z0-9_-]{0,62}')
    .option('--program <type>', 'echo or exec', undefined)
    .option('--command <line>', 'for exec: the command run once per tick (sh -c)')
    .option('--env <NAME=value>', 'environment for exec programs (repeatable)', collect, [] as string[])
    .option('--spec <file>', 'a JSON agent spec to start from (- for stdin); the flags override it')
    .action(
      action(async (name: string, opts: { program?: string; command?: string; env: string[]; spec?: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const spec: Record<string, unknown> = opts.spec ? await jsonFrom(opts.spec) : {};
        spec['name'] = name;
        spec['program'] = programOf(opts.program, opts.command) ?? spec['program'] ?? 'echo';
        const env = envOf(opts.env);
        if (env) spec['env'] = env;
        const status = await callJson<AgentStatusJson>(ctx, '/agents/new', spec);
        if (ctx.json) return printJson(status);
        printStatus(status);
      }),
    );

  agents
    .command('edit')
    .description("change an agent's program, env, limits or schedule, keeping all its state")
    .argument('<id>', 'agent id')
    .option('--program <type>', 'echo or exec')
    .option('--command <line>', 'for exec: the command')
    .option('--env <NAME=value>', 'replace the environment with these (repeatable)', collect, [] as string[])
    .option('--set <file>', 'a JSON object of config fields to replace (- for stdin)')
    .action(
      action(async (id: string, opts: { program?: string; command?: string; env: string[]; set?: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const edit: Record<string, unknown> = opts.set ? await jsonFrom(opts.set) : {};
        const prog = programOf(opts.program, opts.command);
        if (prog !== undefined) edit['program'] = prog;
        const env = envOf(opts.env);
        if (env) edit['env'] = env;
        if (Object.keys(edit).length === 0) throw usage('nothing to change: give --program, --command, --env or --set');
        const path = agentPath(id, 'config');
        await ctx.client.writeFile(path, new TextEncoder().encode(JSON.stringify(edit)), {}, ctx.cx);
        const config = await readJson<Record<string, unknown>>(ctx, path);
        if (ctx.json) return printJson(config);
        write(JSON.stringify(config, null, 2) + '\n');
      }),
    );

  agents
    .command('delete')
    .description('delete agents and everything they have')
    .argument('<ids...>', 'agent ids')
    .action(
      action(async (ids: string[], ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        for (const id of ids) await ctx.client.remove(agentPath(id), ctx.cx);
      }),
    );

  agents
    .command('export')
    .description('an agent as one bundle (JSON lines; identity key sealed), streamed')
    .argument('<id>', 'agent id')
    .option('-o, --output <file>', 'write the bundle here instead of stdout')
    .action(
      action(async (id: string, opts: { output?: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const body = Readable.fromWeb((await ctx.client.readStream(agentPath(id, 'export'), ctx.cx)) as NodeReadableStream<Uint8Array>);
        if (!opts.output) return pipeline(body, process.stdout);
        // Written aside and renamed when whole: a cut-off download never looks like a bundle.
        const partial = `${opts.output}.partial`;
        try {
          await pipeline(body, createWriteStream(partial, { mode: 0o600 }));
          renameSync(partial, opts.output);
        } catch (err) {
          rmSync(partial, { force: true });
          throw err;
        }
      }),
    );

  agents
    .command('import')
    .description('import an exported bundle (file or stdin), streamed')
    .argument('[file]', 'the bundle (default: stdin)')
    .option('--as <id>', 'import under another name (a copy)')
    .option('--new-identity', 'give the agent a fresh key (for bundles from another server)')
    .action(
      action(async (file: string | undefined, opts: { as?: string; newIdentity?: boolean }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const source: AsyncIterable<Uint8Array> = file && file !== '-' ? createReadStream(file) : process.stdin;
        const options = { ...(opts.as !== undefined ? { id: opts.as } : {}), ...(opts.newIdentity ? { new_identity: true } : {}) };
        const answer = await ctx.client.postStream('/agents/import', importBody(source, options, file ?? '-'), ctx.cx);
        const status = JSON.parse(utf8(answer)) as AgentStatusJson;
        if (ctx.json) return printJson(status);
        printStatus(status);
      }),
    );

  program
    .command('status')
    .description("an agent's state, ticks, queues and budget")
    .argument('<id>', 'agent id')
    .action(
      action(async (id: string, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const status = await readJson<AgentStatusJson>(ctx, agentPath(id, 'status'));
        if (ctx.json) return printJson(status);
        printStatus(status);
      }),
    );

  program
    .command('send')
    .description("put one message in an agent's inbox (the words given, or stdin)")
    .argument('<id>', 'agent id')
    .argument('[words...]', 'the message (default: stdin)')
    .action(
      action(async (id: string, words: string[], ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const body = await bodyFrom(words);
        if (body.length === 0) throw usage('nothing to send');
        await ctx.client.writeFile(agentPath(id, 'inbox'), body, { append: true }, ctx.cx);
      }),
    );

  const ctlVerb = (verb: 'tick' | 'hibernate' | 'wake', description: string, withReason = false) => {
    const cmd = program.command(verb).description(description).argument('<id>', 'agent id');
    if (withReason) cmd.argument('[reason]', 'a word for the trace');
    cmd.action(
      action(async (id: string, ...rest: unknown[]) => {
        const reason = withReason && typeof rest[0] === 'string' ? ` ${rest[0]}` : '';
        const ctx = contextOf(commandOf(rest));
        await ctx.client.writeFile(agentPath(id, 'ctl'), new TextEncoder().encode(`${verb}${reason}\n`), {}, ctx.cx);
      }),
    );
  };
  ctlVerb('tick', 'tick an agent now', true);
  ctlVerb('hibernate', 'put an agent to sleep (dormant)');
  ctlVerb('wake', 'wake a hibernated agent');
}
