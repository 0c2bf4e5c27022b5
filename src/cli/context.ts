/**
 * What every client verb of agentctl shares: where the server is (`--endpoint`, AGENT9_URL, the
 * server.json a local `serve` wrote, else http://127.0.0.1:$AGENT9_PORT, else port 7070), which token to send (`--token`,
 * AGENT9_TOKEN, else this machine's admin token file), the HTTP client, and how errors end the
 * process (`agentctl: CODE: message`, exit code from ERROR_TABLE).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ERROR_TABLE, FsError, toFsError } from '../fs/errors.js';
import { HttpFileService } from '../http/client.js';
import { DEFAULT_HOST, DEFAULT_PORT, SERVER_FILE } from '../http/defaults.js';
import { agent9Home } from '../runtime/home-config.js';
import { ADMIN_TOKEN_FILE } from '../runtime/token-store.js';
import type { Cx } from '../fs/types.js';

export interface GlobalOptions {
  endpoint?: string;
  token?: string;
  json?: boolean;
}

export interface CliContext {
  endpoint: string;
  token: string | undefined;
  json: boolean;
  client: HttpFileService;
  /** The Cx handed to client calls (the server decides who we are from the token). */
  cx: Cx;
}

function readTrimmed(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The URL of a server started on this machine with the same AGENT9_HOME, if it left its address. */
function localServerUrl(home: string): string | undefined {
  const text = readTrimmed(join(home, SERVER_FILE));
  if (!text) return undefined;
  try {
    const url = (JSON.parse(text) as { url?: unknown }).url;
    return typeof url === 'string' ? url : undefined;
  } catch {
    return undefined;
  }
}

export function resolveEndpoint(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): string {
  return opts.endpoint ?? env['AGENT9_URL'] ?? localServerUrl(agent9Home(env)) ?? `http://${DEFAULT_HOST}:${env['AGENT9_PORT'] || DEFAULT_PORT}`;
}

export function resolveToken(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return opts.token ?? env['AGENT9_TOKEN'] ?? readTrimmed(join(agent9Home(env), ADMIN_TOKEN_FILE));
}

export function contextOf(cmd: Command): CliContext {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const endpoint = resolveEndpoint(opts);
  const token = resolveToken(opts);
  const client = new HttpFileService({ url: endpoint, ...(token ? { token } : {}) });
  return { endpoint, token, json: !!opts.json, client, cx: { principal: { id: 'agentctl', admin: false } } };
}

/** Ends the process for an error: `agentctl: CODE: message` on stderr, ERROR_TABLE's exit code. */
export function fail(err: unknown): never {
  const e = err instanceof FsError ? err : toFsError(err, '/');
  process.stderr.write(`agentctl: ${e.code}: ${e.message}\n`);
  process.exit(ERROR_TABLE[e.code].exit);
}

/** A command action that reports its errors the agentctl way. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      fail(err);
    }
  };
}

/** The last argument commander passes an action is the command itself. */
export function commandOf(args: unknown[]): Command {
  return args[args.length - 1] as Command;
}

export async function readStdin(): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const chunk of process.stdin) parts.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(parts));
}

/** The body of a write: the arguments joined by spaces (plus a newline), else stdin. */
export async function bodyFrom(words: string[] | undefined): Promise<Uint8Array> {
  if (words && words.length > 0) return new TextEncoder().encode(words.join(' ') + '\n');
  return readStdin();
}

/**
 * An AbortSignal for a command that runs until interrupted (watch -f, logs -f): SIGINT or SIGTERM
 * stops it and, once stdout has drained, exits as a shell expects (130, 143).
 */
export function untilInterrupted(): AbortSignal {
  const ac = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    ac.abort();
    process.stdout.write('', () => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return ac.signal;
}

export function usage(message: string): FsError {
  return new FsError('EINVAL', '/', message);
}
