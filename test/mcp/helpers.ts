/**
 * MCP clients the way users run them: the SDK's own `Client`, over streamable HTTP to `/mcp` of
 * `agentctl serve` (a child process), or over stdio to `agentctl mcp` spawned as MCP clients spawn their
 * servers. Both against the same server, so each test can run over either.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ResourceUpdatedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { expect } from 'vitest';
import { AGENTCTL } from '../cli/helpers.js';

export interface Connected {
  client: Client;
  /** URIs of the resource-updated notifications received so far. */
  updates: string[];
  /** What `agentctl mcp` wrote on stderr (stdio only). */
  stderr(): string;
  close(): Promise<void>;
}

function watchUpdates(client: Client): string[] {
  const updates: string[] = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
  return updates;
}

export async function connectHttp(url: string, token: string): Promise<Connected> {
  const client = new Client({ name: 'agent9-test', version: '1' });
  const updates = watchUpdates(client);
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  return { client, updates, stderr: () => '', close: () => client.close() };
}

/** `agentctl mcp ARGS` as an MCP client starts it: a command whose stdin and stdout carry the protocol. */
export async function connectStdio(args: string[], env: Record<string, string>): Promise<Connected & { exited: Promise<void> }> {
  const client = new Client({ name: 'agent9-test', version: '1' });
  const updates = watchUpdates(client);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [AGENTCTL, 'mcp', ...args],
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  await client.connect(transport);
  const pid = transport.pid;
  /** Resolves once the agentctl process is gone (polled: the SDK keeps the child to itself). */
  const exited = (async () => {
    for (;;) {
      try {
        process.kill(pid!, 0);
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return { client, updates, stderr: () => stderr, close: () => client.close(), exited };
}

export async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** A tool's structured answer; the call must have succeeded. */
export async function ok(client: Client, name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const r = await call(client, name, args);
  expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
  return r.structuredContent as Record<string, unknown>;
}

/** The text of a tool's answer; the call must have succeeded. */
export async function text(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const r = await call(client, name, args);
  expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
  const first = r.content[0];
  if (first?.type !== 'text') throw new Error(`no text in ${JSON.stringify(r.content)}`);
  return first.text;
}

/** A tool's error: it must have failed with `code`, naming `path`. */
export async function fails(client: Client, name: string, args: Record<string, unknown>, code: string, path?: string): Promise<string> {
  const r = await call(client, name, args);
  expect(r.isError, JSON.stringify(r.content)).toBe(true);
  const error = (r.structuredContent as { error: { code: string; message: string; path: string } }).error;
  expect(error.code, error.message).toBe(code);
  if (path !== undefined) expect(error.path).toBe(path);
  const first = r.content[0];
  expect(first?.type === 'text' && first.text.startsWith(`${code}: `)).toBe(true);
  return error.message;
}

/** Waits until `check` holds (or fails after `ms`). */
export async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}
