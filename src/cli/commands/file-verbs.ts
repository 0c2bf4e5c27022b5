/**
 * File verbs over the HTTP mapping: ls, cat, stat, write, append, call, rm, mkdir, watch, tree.
 * Paths are namespace paths (`/agents/demo/status`); a relative path is taken from `/`.
 */
import type { Command } from 'commander';
import { FsError } from '../../fs/errors.js';
import { joinPath, normalizePath } from '../../fs/paths.js';
import type { DirEntry, FsEvent, Stat } from '../../fs/types.js';
import { action, bodyFrom, commandOf, contextOf, readStdin, untilInterrupted, usage, type CliContext } from '../context.js';
import { c, modeString, printJson, table, timeString, write } from '../output.js';

/** A path as typed: absolute, or relative to `/`. */
export function fsPath(p: string | undefined): string {
  if (p === undefined || p === '') return '/';
  return normalizePath(p.startsWith('/') ? p : '/' + p);
}

function entryName(e: DirEntry): string {
  return e.stat.type === 'dir' ? c.blue(e.name + '/') : e.stat.kind === 'stream' ? c.magenta(e.name) : e.name;
}

function statJson(path: string, st: Stat): Record<string, unknown> {
  return { path, ...st, mode: st.mode, mode_string: modeString(st) };
}

async function list(ctx: CliContext, path: string, opts: { one?: boolean }): Promise<void> {
  const st = await ctx.client.stat(path, ctx.cx);
  const entries: DirEntry[] = st.type === 'dir' ? await ctx.client.readdir(path, ctx.cx) : [{ name: path, stat: st }];
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (ctx.json) return printJson(entries.map((e) => ({ name: e.name, ...e.stat })));
  if (opts.one) return write(entries.map((e) => entryName(e) + '\n').join(''));
  if (entries.length === 0) return;
  write(
    table(entries, [
      { header: 'MODE', value: (e) => modeString(e.stat) },
      { header: 'KIND', value: (e) => e.stat.kind },
      { header: 'SIZE', value: (e) => String(e.stat.size), align: 'right' },
      { header: 'VERSION', value: (e) => String(e.stat.version), align: 'right' },
      { header: 'MODIFIED', value: (e) => timeString(e.stat.mtime) },
      { header: 'NAME', value: entryName },
    ]),
  );
}

/**
 * `--wait 30s` (or `250ms`, `5m`, plain seconds): the seconds of `?wait=`, how long a result that is not
 * ready yet (a running job's) is waited for. EINVAL for anything else.
 */
function waitSeconds(value: string): string {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (!m) throw new FsError('EINVAL', '/', `--wait: '${value}' is not a duration (30s, 250ms, 5m)`);
  const n = Number(m[1]);
  return String(m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n);
}

/** Copies a file (or a stream, as it arrives) to stdout. */
async function cat(ctx: CliContext, path: string, wait?: string): Promise<void> {
  const res = await ctx.client.request({ method: 'GET', path, ...(wait !== undefined ? { query: { wait } } : {}) });
  if (res.headers.get('x-agent9-type') === 'dir') {
    await res.body?.cancel();
    throw new FsError('EISDIR', path, 'is a directory (use agentctl ls)');
  }
  if (!res.body) return;
  try {
    for await (const chunk of res.body) {
      if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
    }
  } catch (err) {
    // Cut off: the server says why when it can (a token revoked or expired meanwhile is EAUTH).
    await ctx.client.stat(path, ctx.cx);
    throw new FsError('EIO', path, `the server cut the stream off (${(err as Error).message})`);
  }
}

async function removeTree(ctx: CliContext, path: string, recursive: boolean): Promise<void> {
  if (recursive) {
    const st = await ctx.client.stat(path, ctx.cx);
    if (st.type === 'dir') {
      for (const e of await ctx.client.readdir(path, ctx.cx)) await removeTree(ctx, joinPath(path, e.name), true);
    }
  }
  await ctx.client.remove(path, ctx.cx);
}

async function makeDir(ctx: CliContext, path: string, parents: boolean, mode: number): Promise<void> {
  if (!parents) return ctx.client.mkdir(path, mode, ctx.cx);
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = '/' + parts.slice(0, i).join('/');
    try {
      await ctx.client.mkdir(p, mode, ctx.cx);
    } catch (err) {
      if (!(err instanceof FsError && err.code === 'EEXIST')) throw err;
    }
  }
}

interface TreeNode {
  name: string;
  stat: Stat;
  children?: TreeNode[];
  error?: string;
}

async function treeOf(ctx: CliContext, path: string, name: string, stat: Stat, depth: number): Promise<TreeNode> {
  const node: TreeNode = { name, stat };
  if (stat.type !== 'dir' || depth === 0) return node;
  try {
    const entries = await ctx.client.readdir(path, ctx.cx);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    node.children = [];
    for (const e of entries) node.children.push(await treeOf(ctx, joinPath(path, e.name), e.name, e.stat, depth - 1));
  } catch (err) {
    // A subtree this token may not list (or a disabled mount) shows as such; the rest is still drawn.
    node.error = err instanceof FsError ? err.code : String(err);
  }
  return node;
}

function drawTree(node: TreeNode, prefix = '', out: string[] = []): string[] {
  const kids = node.children ?? [];
  kids.forEach((k, i) => {
    const last = i === kids.length - 1;
    const label = k.stat.type === 'dir' ? c.blue(k.name + '/') : k.stat.kind === 'stream' ? c.magenta(k.name) : k.name;
    out.push(`${prefix}${last ? '└── ' : '├── '}${label}${k.error ? c.red(`  [${k.error}]`) : ''}`);
    drawTree(k, prefix + (last ? '    ' : '│   '), out);
  });
  return out;
}

function eventLine(ev: FsEvent): string {
  const time = timeString(ev.time).slice(11);
  const colour = ev.type === 'deleted' ? c.red : ev.type === 'created' ? c.green : ev.type === 'reset' || ev.type === 'end' ? c.yellow : (t: string) => t;
  let line = `${c.dim(String(ev.id))}  ${time}  ${colour(ev.type.padEnd(8))}  ${ev.path}`;
  if (ev.version !== undefined) line += c.dim(`  v${ev.version}`);
  if (ev.data !== undefined) line += '  ' + (typeof ev.data === 'string' ? ev.data.replace(/\n$/, '') : JSON.stringify(ev.data));
  return line + '\n';
}

function parseMode(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^0?[0-7]{3,4}$/.test(text)) throw usage(`--mode takes octal permission bits like 0644, not '${text}'`);
  return parseInt(text, 8);
}

function parseId(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw usage(`${what} takes an event id (a non-negative integer), not '${text}'`);
  return Number(text);
}

export function registerFileCommands(program: Command): void {
  program
    .command('ls')
    .description('list a directory (or show one file)')
    .argument('[path]', 'namespace path', '/')
    .option('-1, --names', 'names only, one per line')
    .action(
      action(async (path: string, opts: { names?: boolean }, ...rest: unknown[]) => {
        await list(contextOf(commandOf(rest)), fsPath(path), { one: !!opts.names });
      }),
    );

  program
    .command('cat')
    .description('print files; a stream file is followed until it ends')
    .argument('<paths...>', 'namespace paths')
    .option('--wait <duration>', "a result that is not ready yet (a running job's) is waited for this long: 30s, 250ms, 5m")
    .action(
      action(async (paths: string[], ...rest: unknown[]) => {
        const command = commandOf(rest);
        const ctx = contextOf(command);
        const { wait } = command.opts<{ wait?: string }>();
        const seconds = wait === undefined ? undefined : waitSeconds(wait);
        for (const p of paths) await cat(ctx, fsPath(p), seconds);
      }),
    );

  program
    .command('stat')
    .description('show a file’s metadata')
    .argument('<paths...>', 'namespace paths')
    .action(
      action(async (paths: string[], ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const stats = [];
        for (const p of paths) stats.push(statJson(fsPath(p), await ctx.client.stat(fsPath(p), ctx.cx)));
        if (ctx.json) return printJson(paths.length === 1 ? stats[0] : stats);
        for (const s of stats) {
          write(
            `${c.bold(String(s['path']))}\n` +
              `  type     ${s['type']} (${s['kind']})\n` +
              `  mode     ${s['mode_string']} (${(s['mode'] as number).toString(8).padStart(4, '0')})\n` +
              `  size     ${s['size']}\n` +
              `  version  ${s['version']}\n` +
              `  modified ${timeString(s['mtime'] as number)}\n` +
              `  changed  ${timeString(s['ctime'] as number)}\n`,
          );
        }
      }),
    );

  program
    .command('write')
    .description('replace a file with stdin (or the words given)')
    .argument('<path>', 'namespace path')
    .argument('[words...]', 'content instead of stdin (joined by spaces, newline added)')
    .option('--if-match <version>', 'only if the file is still at this version (else ESTALE)')
    .option('--create-only', 'only if the file does not exist yet')
    .option('--mode <octal>', 'mode of a new file, e.g. 0600')
    .action(
      action(async (path: string, words: string[], opts: { ifMatch?: string; createOnly?: boolean; mode?: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const ifVersion = opts.createOnly ? 0 : parseId(opts.ifMatch, '--if-match');
        const mode = parseMode(opts.mode);
        const st = await ctx.client.writeFile(fsPath(path), await bodyFrom(words), {
          ...(ifVersion !== undefined ? { ifVersion } : {}),
          ...(mode !== undefined ? { mode } : {}),
        }, ctx.cx);
        if (ctx.json) printJson(statJson(fsPath(path), st));
      }),
    );

  program
    .command('append')
    .description('append stdin (or the words given) to a file; on a message file, send one message')
    .argument('<path>', 'namespace path')
    .argument('[words...]', 'content instead of stdin (joined by spaces, newline added)')
    .action(
      action(async (path: string, words: string[], ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        await ctx.client.writeFile(fsPath(path), await bodyFrom(words), { append: true }, ctx.cx);
      }),
    );

  program
    .command('call')
    .description('call a file: send the request (argument or stdin), print the answer')
    .argument('<path>', 'namespace path of a call file')
    .argument('[request]', 'the request (default: stdin)')
    .action(
      action(async (path: string, request: string | undefined, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const body = request !== undefined ? new TextEncoder().encode(request) : await readStdin();
        const answer = await ctx.client.post(fsPath(path), body, ctx.cx);
        process.stdout.write(answer);
      }),
    );

  program
    .command('rm')
    .description('remove files or empty directories')
    .argument('<paths...>', 'namespace paths')
    .option('-r, --recursive', 'remove directories and their contents')
    .option('-f, --force', 'ignore paths that do not exist')
    .action(
      action(async (paths: string[], opts: { recursive?: boolean; force?: boolean }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        for (const p of paths) {
          try {
            await removeTree(ctx, fsPath(p), !!opts.recursive);
          } catch (err) {
            if (!(opts.force && err instanceof FsError && err.code === 'ENOENT')) throw err;
          }
        }
      }),
    );

  program
    .command('mkdir')
    .description('make directories')
    .argument('<paths...>', 'namespace paths')
    .option('-p, --parents', 'make parents as needed; no error if it exists')
    .option('--mode <octal>', 'mode, e.g. 0700')
    .action(
      action(async (paths: string[], opts: { parents?: boolean; mode?: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const mode = parseMode(opts.mode) ?? 0o755;
        for (const p of paths) await makeDir(ctx, fsPath(p), !!opts.parents, mode);
      }),
    );

  program
    .command('watch')
    .description('print changes under a path: the next one, or every one with -f (like inotifywait / -m)')
    .argument('[path]', 'file or directory to watch', '/')
    .option('-f, --follow', 'keep printing events until interrupted')
    .option('--from <id>', 'replay the events after this event id first')
    .option('-n, --count <n>', 'exit after this many events')
    .action(
      action(async (path: string, opts: { follow?: boolean; from?: string; count?: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const from = parseId(opts.from, '--from');
        const limit = opts.count !== undefined ? parseId(opts.count, '--count') : opts.follow ? Infinity : 1;
        if (limit === 0) return;
        const signal = untilInterrupted();
        let seen = 0;
        for await (const ev of ctx.client.watch(fsPath(path), from, { ...ctx.cx, signal })) {
          write(ctx.json ? JSON.stringify(ev) + '\n' : eventLine(ev));
          if (++seen >= (limit ?? Infinity)) break;
        }
      }),
    );

  program
    .command('tree')
    .description('show a directory tree')
    .argument('[path]', 'namespace path', '/')
    .option('-L, --level <n>', 'descend at most this many levels', '64')
    .action(
      action(async (path: string, opts: { level: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const p = fsPath(path);
        const depth = parseId(opts.level, '--level') ?? 64;
        const root = await treeOf(ctx, p, p, await ctx.client.stat(p, ctx.cx), depth);
        if (ctx.json) return printJson(root);
        write([c.blue(p), ...drawTree(root)].join('\n') + '\n');
      }),
    );
}
