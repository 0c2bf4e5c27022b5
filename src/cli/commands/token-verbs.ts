/** `agentctl token create|list|revoke`: the files of /runtime/tokens through the HTTP client. */
import type { Command } from 'commander';
import { utf8 } from '../../fs/bytes.js';
import { parseDuration } from '../../runtime/token-store.js';
import { action, commandOf, contextOf } from '../context.js';
import { c, printJson, table, timeString, write } from '../output.js';

const TOKENS = '/runtime/tokens';

interface TokenRow {
  id: string;
  name: string;
  admin: boolean;
  agent: string | null;
  paths: string[];
  read_only: boolean;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  state: string;
  token?: string;
}

function scopeOf(t: TokenRow): string {
  const parts: string[] = [];
  if (t.admin) parts.push('admin');
  if (t.agent) parts.push(`agent ${t.agent}`);
  if (t.paths.length) parts.push(t.paths.join(','));
  if (t.read_only) parts.push('read-only');
  return parts.join(' ') || '-';
}

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('create, list and revoke bearer tokens (admin only)');

  token
    .command('create')
    .description('create a token; prints it once (the server keeps only its hash)')
    .option('--agent <id>', "scope it to one agent: it sees that agent's namespace at /")
    .option('--path <prefix>', 'only reach this subtree (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--read-only', 'refuse every write')
    .option('--ttl <duration>', 'expire after this long: 90s, 30m, 1h, 7d')
    .option('--name <name>', 'a label for token list')
    .action(
      action(async (opts: { agent?: string; path: string[]; readOnly?: boolean; ttl?: string; name?: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        if (opts.ttl !== undefined) parseDuration(opts.ttl, '--ttl');
        const req: Record<string, unknown> = {};
        if (opts.name !== undefined) req['name'] = opts.name;
        if (opts.agent !== undefined) req['agent'] = opts.agent;
        if (opts.path.length) req['paths'] = opts.path;
        if (opts.readOnly) req['read_only'] = true;
        if (opts.ttl !== undefined) req['ttl'] = opts.ttl;
        const created = JSON.parse(utf8(await ctx.client.post(`${TOKENS}/new`, new TextEncoder().encode(JSON.stringify(req)), ctx.cx))) as TokenRow;
        if (ctx.json) return printJson(created);
        // The secret alone on stdout (TOKEN=$(agentctl token create ...)); what it can do on stderr.
        process.stderr.write(
          `${c.dim('token', process.stderr)} ${created.id}  ${scopeOf(created)}` +
            `${created.expires_at ? `  expires ${timeString(created.expires_at)}` : ''}\n`,
        );
        write(created.token + '\n');
      }),
    );

  token
    .command('list')
    .description('list tokens (never their secrets)')
    .action(
      action(async (...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const ids = (await ctx.client.readdir(TOKENS, ctx.cx)).filter((e) => e.name !== 'new').map((e) => e.name);
        const rows: TokenRow[] = [];
        for (const id of ids) rows.push(JSON.parse(utf8(await ctx.client.readFile(`${TOKENS}/${id}`, ctx.cx))) as TokenRow);
        rows.sort((a, b) => a.created_at - b.created_at);
        if (ctx.json) return printJson(rows);
        write(
          table(rows, [
            { header: 'ID', value: (t) => t.id },
            { header: 'NAME', value: (t) => t.name },
            { header: 'SCOPE', value: scopeOf },
            { header: 'STATE', value: (t) => (t.state === 'active' ? c.green(t.state) : c.yellow(t.state)) },
            { header: 'CREATED', value: (t) => timeString(t.created_at) },
            { header: 'EXPIRES', value: (t) => timeString(t.expires_at) },
            { header: 'LAST USED', value: (t) => timeString(t.last_used_at) },
          ]),
        );
      }),
    );

  token
    .command('revoke')
    .description('revoke tokens by id: they stop working at once')
    .argument('<ids...>', 'token ids (see token list)')
    .action(
      action(async (ids: string[], ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        for (const id of ids) await ctx.client.remove(`${TOKENS}/${id}`, ctx.cx);
      }),
    );
}
