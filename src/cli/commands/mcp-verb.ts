/**
 * `agentctl mcp [--agent ID | --admin]`: an MCP server on stdio, for MCP clients that start their
 * servers as commands. It is the running server's own MCP endpoint (`/mcp`, streamable HTTP) carried
 * over stdio: each JSON-RPC message from stdin is sent to it and everything it sends comes back on
 * stdout, so stdio and HTTP clients get the same tools, resources and notifications, scoped by the token.
 *
 * The client is usually a language model, so the rights it gets are asked for, never assumed:
 * - `--agent ID`: it acts as that agent (its namespace at `/`). With the admin token an agent-scoped
 *   token is minted for the session and revoked when it ends (as `agentctl mount --agent` does); with
 *   that agent's own token, the token is used as it is.
 * - an agent-scoped token (`--token`, AGENT9_TOKEN) without flags: that agent.
 * - `--admin`: the token's own rights, the global view with an admin token.
 * Anything else refuses to start. stdout carries the protocol only; what agentctl says goes to stderr.
 */
import type { Command } from 'commander';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { utf8 } from '../../fs/bytes.js';
import { FsError } from '../../fs/errors.js';
import { callFile } from '../../fs/ops.js';
import { action, commandOf, contextOf, usage, type CliContext } from '../context.js';

interface McpOptions {
  agent?: string;
  admin?: boolean;
}

const REFUSAL =
  'agentctl mcp hands the token to an MCP client (usually a language model): say what it may do. ' +
  '--agent ID acts as that agent, an agent-scoped token (--token, AGENT9_TOKEN) acts as its agent, ' +
  "--admin gives it this token's full rights";

/** The agent an agent-scoped token acts as, or undefined when the token sees the global view. */
async function tokenAgent(ctx: CliContext): Promise<string | undefined> {
  try {
    await ctx.client.stat('/agents', ctx.cx);
    return undefined;
  } catch (err) {
    // An agent's namespace has no /agents: its root is the agent's own (with /status).
    if (!(err instanceof FsError && err.code === 'ENOENT')) throw err;
  }
  const status = JSON.parse(utf8(await ctx.client.readFile('/status', ctx.cx))) as { id?: unknown };
  if (typeof status.id !== 'string') throw new FsError('EIO', '/status', 'the server named no agent for this token');
  return status.id;
}

/** The token the session uses, and what to undo when it ends. */
async function sessionToken(ctx: CliContext, opts: McpOptions): Promise<{ token: string; revoke?: () => Promise<void>; what: string }> {
  if (!ctx.token) throw new FsError('EAUTH', '/', 'no token: pass --token, set AGENT9_TOKEN, or run on the server machine (admin.token)');
  if (opts.admin && opts.agent !== undefined) throw usage('--agent and --admin exclude each other: the session is one agent, or the whole token');
  if (opts.admin) return { token: ctx.token, what: 'with this token\'s rights' };
  const own = await tokenAgent(ctx);
  if (own !== undefined) {
    if (opts.agent !== undefined && opts.agent !== own) throw new FsError('EACCES', `/agents/${opts.agent}`, `this token is agent '${own}''s; it cannot act as '${opts.agent}'`);
    return { token: ctx.token, what: `as agent ${own}` };
  }
  if (opts.agent === undefined) throw usage(REFUSAL);
  await ctx.client.stat(`/agents/${opts.agent}`, ctx.cx);
  let minted: { id: string; token: string };
  try {
    const request = JSON.stringify({ name: `mcp ${opts.agent}`, agent: opts.agent });
    minted = JSON.parse(utf8(await callFile(ctx.client, '/runtime/tokens/new', request, ctx.cx))) as { id: string; token: string };
  } catch (err) {
    if (err instanceof FsError && err.code === 'EACCES') {
      throw new FsError('EACCES', '/runtime/tokens/new', '--agent needs the admin token (or use the agent\'s own token without --agent)');
    }
    throw err;
  }
  return {
    token: minted.token,
    what: `as agent ${opts.agent}`,
    revoke: () => ctx.client.remove!(`/runtime/tokens/${minted.id}`, ctx.cx).catch(() => undefined),
  };
}

/** An error answer to a request the server could not be asked (so the client is not left waiting). */
function failedRequest(message: JSONRPCMessage, err: unknown): JSONRPCMessage | undefined {
  if (!('method' in message) || !('id' in message)) return undefined;
  return { jsonrpc: '2.0', id: message.id, error: { code: -32000, message: `agent9 server: ${(err as Error).message ?? String(err)}` } };
}

async function mcp(opts: McpOptions, cmd: Command): Promise<void> {
  const ctx = contextOf(cmd);
  const session = await sessionToken(ctx, opts);
  // The SDK loads only here, so every other verb starts fast.
  const [{ StdioServerTransport }, { StreamableHTTPClientTransport }, { isInitializeRequest, isJSONRPCResultResponse }] = await Promise.all([
    import('@modelcontextprotocol/sdk/server/stdio.js'),
    import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
    import('@modelcontextprotocol/sdk/types.js'),
  ]);
  const upstream = new StreamableHTTPClientTransport(new URL('/mcp', ctx.endpoint + '/'), {
    requestInit: { headers: { authorization: `Bearer ${session.token}` } },
  });
  const local = new StdioServerTransport();
  let initializeId: string | number | undefined;
  let ending = false;
  const end = async (code: number) => {
    if (ending) return;
    ending = true;
    await upstream.terminateSession().catch(() => undefined);
    await upstream.close().catch(() => undefined);
    await session.revoke?.();
    process.exit(code);
  };

  local.onmessage = (message) => {
    if (isInitializeRequest(message)) initializeId = (message as { id: string | number }).id;
    upstream.send(message).catch((err: unknown) => {
      const answer = failedRequest(message, err);
      if (answer) void local.send(answer);
      else process.stderr.write(`agentctl: mcp: ${(err as Error).message}\n`);
    });
  };
  upstream.onmessage = (message) => {
    // The protocol version the client and server agreed on goes on every later request, as the SDK's client does.
    if (initializeId !== undefined && isJSONRPCResultResponse(message) && message.id === initializeId) {
      const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === 'string') upstream.setProtocolVersion(version);
      initializeId = undefined;
    }
    void local.send(message);
  };
  upstream.onerror = (err) => process.stderr.write(`agentctl: mcp: ${err.message}\n`);
  local.onerror = (err) => process.stderr.write(`agentctl: mcp: ${err.message}\n`);

  await upstream.start();
  await local.start();
  process.stdin.once('end', () => void end(0));
  process.once('SIGINT', () => void end(130));
  process.once('SIGTERM', () => void end(143));
  process.stderr.write(`agentctl: MCP on stdio for ${ctx.endpoint}/mcp, ${session.what}\n`);
}

export function registerMcpCommand(program: Command): void {
  program
    .command('mcp')
    .description("an MCP server on stdio: the server's /mcp for MCP clients that start a command (needs --agent ID, an agent token, or --admin)")
    .option('--agent <id>', 'act as this agent (mints an agent token with the admin token; revoked at exit)')
    .option('--admin', "give the client this token's full rights (the global view with the admin token)")
    .action(action(async (opts: McpOptions, ...rest: unknown[]) => mcp(opts, commandOf(rest))));
}
