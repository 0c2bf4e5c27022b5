/**
 * The MCP server as MCP clients use it: the SDK's own Client over streamable HTTP (`/mcp` of
 * `agentctl serve --demo` in a child process) and over stdio (`agentctl mcp` spawned as a command).
 * Each transport: the tools and their schemas, files written and read, a message to the echo agent and
 * its reply, a local-echo model job, a subscription that sees a change made over plain HTTP, errors with
 * their code and path; an agent's session cannot reach another agent; `agentctl mcp` refuses to start
 * without being told what the client may do.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servedForTests, agentctl } from '../cli/helpers.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { call, connectHttp, connectStdio, eventually, fails, ok, text, type Connected } from './helpers.js';

const suite = servedForTests('agent9-mcp-', ['--demo']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function http(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const { token, ...rest } = init;
  return fetch(suite.server.url + path, { ...rest, headers: { authorization: `Bearer ${token ?? suite.server.token}`, ...(rest.headers as Record<string, string>) } });
}

async function mint(spec: Record<string, unknown>): Promise<{ id: string; token: string }> {
  const res = await http('/runtime/tokens/new', { method: 'POST', body: JSON.stringify(spec) });
  expect(res.status).toBe(200);
  return (await res.json()) as { id: string; token: string };
}

/** Names of the tokens the server has (to see that agentctl mcp revoked what it minted). */
async function tokenNames(): Promise<string[]> {
  const ids = ((await (await http('/runtime/tokens/')).json()) as { name: string }[]).map((e) => e.name).filter((n) => n !== 'new');
  return Promise.all(ids.map(async (id) => ((await (await http(`/runtime/tokens/${id}`)).json()) as { name: string }).name));
}

const FILE_TOOLS = ['list', 'read', 'stat', 'write', 'append', 'mkdir', 'remove', 'call', 'watch'];
const AGENT_TOOLS = ['send_message', 'run_model_job', 'run_in_container'];

beforeAll(async () => {
  const made = await http('/agents', { method: 'POST', body: JSON.stringify({ name: 'other', program: 'echo' }) });
  expect(made.status).toBe(201);
  await http('/agents/other/memory/secret', { method: 'PUT', body: 'not for demo' });
});

/** An agent-scoped session of the demo agent, one way in each. */
const transports: [string, () => Promise<Connected>][] = [
  ['streamable HTTP with an agent token', async () => connectHttp(suite.server.url, (await mint({ name: 'mcp-test demo', agent: 'demo' })).token)],
  ['stdio: agentctl mcp --agent demo', () => connectStdio(['--agent', 'demo'], suite.env)],
];

describe.each(transports)('an agent session over %s', (_name, connect) => {
  let s: Connected;
  beforeAll(async () => {
    s = await connect();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('lists the tools, each with a JSON Schema naming files by path', async () => {
    const { tools } = await s.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([...FILE_TOOLS, ...AGENT_TOOLS].sort());
    for (const t of tools) {
      expect(t.inputSchema.type).toBe('object');
      expect((t.inputSchema as { additionalProperties?: unknown }).additionalProperties).toBe(false);
      if (FILE_TOOLS.includes(t.name)) {
        expect(t.inputSchema.required).toContain('path');
        expect((t.inputSchema.properties as Record<string, { type: string }>)['path']!.type).toBe('string');
      }
    }
    expect(s.client.getInstructions()).toContain("agent 'demo'");
  });

  it('writes, reads, stats, lists, appends, makes and removes files in its own namespace', async () => {
    const dir = `/memory/t-${Math.random().toString(36).slice(2, 8)}`;
    await ok(s.client, 'mkdir', { path: `${dir}/a/b`, parents: true });
    const w = await ok(s.client, 'write', { path: `${dir}/a/b/notes.txt`, content: 'hello\n' });
    expect(w).toMatchObject({ type: 'file', kind: 'data', size: 6, version: 1, mode: '0644' });
    await ok(s.client, 'append', { path: `${dir}/a/b/notes.txt`, content: 'more\n' });
    expect(await text(s.client, 'read', { path: `${dir}/a/b/notes.txt` })).toBe('hello\nmore\n');
    expect(await text(s.client, 'read', { path: `${dir}/a/b/notes.txt`, offset: 6, length: 2 })).toBe('mo');
    // The same file through plain HTTP: one namespace whichever way in.
    expect(await (await http(`/agents/demo${dir}/a/b/notes.txt`)).text()).toBe('hello\nmore\n');
    expect(await ok(s.client, 'stat', { path: `${dir}/a/b/notes.txt` })).toMatchObject({ size: 11, version: 2 });
    const listed = (await ok(s.client, 'list', { path: `${dir}/a/b` }))['entries'] as { name: string }[];
    expect(listed.map((e) => e.name)).toEqual(['notes.txt']);
    // A guarded write: the wrong version is ESTALE and changes nothing.
    await fails(s.client, 'write', { path: `${dir}/a/b/notes.txt`, content: 'x', if_version: 1 }, 'ESTALE');
    await fails(s.client, 'write', { path: `${dir}/a/b/notes.txt`, content: 'x', create_only: true }, 'ESTALE');
    // Bytes that are not UTF-8 travel as base64 both ways.
    await ok(s.client, 'write', { path: `${dir}/bin`, content: Buffer.from([0xff, 0x00, 0xfe]).toString('base64'), encoding: 'base64' });
    const bin = await call(s.client, 'read', { path: `${dir}/bin` });
    expect(bin.content[0]).toMatchObject({ type: 'resource', resource: { blob: Buffer.from([0xff, 0x00, 0xfe]).toString('base64') } });
    await fails(s.client, 'remove', { path: `${dir}/a` }, 'ENOTEMPTY', `${dir}/a`);
    await ok(s.client, 'remove', { path: `${dir}/a/b/notes.txt` });
    await fails(s.client, 'read', { path: `${dir}/a/b/notes.txt` }, 'ENOENT', `${dir}/a/b/notes.txt`);
    // A relative path is taken from /.
    expect(await ok(s.client, 'stat', { path: 'status' })).toMatchObject({ kind: 'view', path: '/status' });
  });

  it('sends a message to the echo agent and sees its reply', async () => {
    const sent = await ok(s.client, 'send_message', { text: 'hello echo', wait_reply_ms: 15_000 });
    expect(sent).toMatchObject({ path: '/inbox', status: 'queued' });
    expect(typeof sent['envelope_id']).toBe('string');
    expect(sent['reply']).toMatchObject({ from: 'demo', payload: { text: 'hello echo' }, metadata: { in_reply_to: sent['envelope_id'] } });
    // And the reply is a file of the outbox, readable like any other.
    const outbox = (await ok(s.client, 'list', { path: '/outbox' }))['entries'] as { name: string }[];
    expect(outbox.map((e) => e.name)).toContain(`${(sent['reply'] as { id: string }).id}.json`);
  });

  it('runs a model job on local-echo and answers its text', async () => {
    const r = await call(s.client, 'run_model_job', { model: 'echo', prompt: 'hello world' });
    expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
    expect(r.content[0]).toEqual({ type: 'text', text: 'hello world' });
    expect(r.structuredContent).toMatchObject({ text: 'hello world', result: { provider: 'local-echo', model: 'echo', output: { text: 'hello world' }, cost: 10 } });
    const job = (r.structuredContent as { job_id: string }).job_id;
    expect(await ok(s.client, 'stat', { path: `/compute/jobs/${job}/status` })).toMatchObject({ kind: 'view' });
  });

  it('streams a job\'s text as progress notifications when the client asks for progress', async () => {
    const progress: string[] = [];
    const r = (await s.client.callTool({ name: 'run_model_job', arguments: { model: 'echo', prompt: 'one two three four five six' } }, undefined, {
      onprogress: (p) => void progress.push(p.message ?? ''),
    })) as CallToolResult;
    expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
    expect(r.content[0]).toEqual({ type: 'text', text: 'one two three four five six' });
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.join('')).toBe('one two three four five six');
  });

  it('lists files as resources and reads a directory as its listing', async () => {
    const { resources } = await s.client.listResources();
    expect(resources.map((r) => r.uri)).toEqual(expect.arrayContaining(['agent9:///status', 'agent9:///config']));
    const { resourceTemplates } = await s.client.listResourceTemplates();
    expect(resourceTemplates[0]!.uriTemplate).toBe('agent9:///{+path}');
    const dir = await s.client.readResource({ uri: 'agent9:///outbox' });
    expect(dir.contents[0]!.mimeType).toBe('application/json');
    expect(JSON.parse((dir.contents[0] as { text: string }).text)).toBeInstanceOf(Array);
  });

  it('a subscription to a file hears of a change made over plain HTTP', async () => {
    const uri = `agent9:///memory/sub-${Math.random().toString(36).slice(2, 8)}.txt`;
    const path = uri.slice('agent9://'.length);
    await s.client.subscribeResource({ uri });
    // The session's stream opens right after initialize; give a slow machine a moment.
    await sleep(200);
    const res = await http(`/agents/demo${path}`, { method: 'PUT', body: 'changed' });
    expect(res.status).toBeLessThan(300);
    await eventually(() => s.updates.includes(uri), 10_000);
    const read = await s.client.readResource({ uri });
    expect(read.contents[0]).toMatchObject({ uri, text: 'changed', mimeType: 'text/plain' });
    await s.client.unsubscribeResource({ uri });
    const before = s.updates.length;
    await http(`/agents/demo${path}`, { method: 'PUT', body: 'again' });
    await sleep(500);
    expect(s.updates.length).toBe(before);
  });

  it('watches from a cursor: replay, then the cursor continues with nothing repeated', async () => {
    const dir = `/memory/w-${Math.random().toString(36).slice(2, 8)}`;
    const start = (await ok(s.client, 'watch', { path: dir, timeout_ms: 0 }))['cursor'] as number;
    await ok(s.client, 'write', { path: dir, content: 'a file first' });
    await ok(s.client, 'remove', { path: dir });
    await ok(s.client, 'mkdir', { path: dir });
    await ok(s.client, 'write', { path: `${dir}/f`, content: '1' });
    const first = await ok(s.client, 'watch', { path: dir, from: start, timeout_ms: 500 });
    const events = first['events'] as { id: number; type: string; path: string }[];
    expect(events.map((e) => `${e.type} ${e.path}`)).toEqual([`created ${dir}`, `deleted ${dir}`, `created ${dir}`, `created ${dir}/f`]);
    const again = await ok(s.client, 'watch', { path: dir, from: first['cursor'] as number, timeout_ms: 200 });
    expect(again['events']).toEqual([]);
  });

  it('cannot reach another agent, and errors carry the POSIX code and the path', async () => {
    const root = (await ok(s.client, 'list', { path: '/' }))['entries'] as { name: string }[];
    expect(root.map((e) => e.name)).toContain('inbox');
    expect(root.map((e) => e.name)).not.toContain('agents');
    await fails(s.client, 'read', { path: '/agents/other/memory/secret' }, 'ENOENT', '/agents/other/memory/secret');
    await fails(s.client, 'send_message', { agent: 'other', text: 'hi' }, 'ENOENT');
    await fails(s.client, 'run_model_job', { agent: 'other', model: 'echo', prompt: 'x' }, 'ENOENT');
    await expect(s.client.readResource({ uri: 'agent9:///agents/other/memory/secret' })).rejects.toThrow(/ENOENT/);
    // An admin-only file refuses an agent's write; a bad argument is EINVAL naming the field.
    await fails(s.client, 'write', { path: '/ctl', content: 'stop' }, 'EACCES', '/ctl');
    expect(await fails(s.client, 'read', { path: '/status', offset: -1 }, 'EINVAL')).toContain("field 'offset'");
    expect(await fails(s.client, 'stat', { path: '/status', bogus: 1 }, 'EINVAL')).toContain("unknown field 'bogus'");
    await fails(s.client, 'read', { path: '/memory/../etc' }, 'EINVAL');
  });
});

describe('an admin session (the global view)', () => {
  it('over HTTP with the admin token, and over stdio with --admin, sees every agent and names the agent it acts on', async () => {
    for (const s of [await connectHttp(suite.server.url, suite.server.token), await connectStdio(['--admin'], suite.env)]) {
      try {
        const agents = (await ok(s.client, 'list', { path: '/agents' }))['entries'] as { name: string }[];
        expect(agents.map((e) => e.name)).toEqual(expect.arrayContaining(['demo', 'other']));
        expect(await text(s.client, 'read', { path: '/agents/other/memory/secret' })).toBe('not for demo');
        expect(await fails(s.client, 'send_message', { text: 'to whom?' }, 'EINVAL')).toContain("'agent'");
        const sent = await ok(s.client, 'send_message', { agent: 'demo', text: 'from the admin', wait_reply_ms: 15_000 });
        expect(sent).toMatchObject({ path: '/agents/demo/inbox', reply: { payload: { text: 'from the admin' } } });
        const created = await call(s.client, 'call', { path: '/agents/new', request: JSON.stringify({ name: `made-${Math.random().toString(36).slice(2, 7)}`, program: 'echo' }) });
        expect(created.isError).toBeFalsy();
      } finally {
        await s.close();
      }
    }
  });
});

describe('sessions over HTTP belong to their token', () => {
  it('another token cannot use a session, and a revoked token ends its sessions', async () => {
    const minted = await mint({ name: 'mcp-test revoke', agent: 'demo' });
    const s = await connectHttp(suite.server.url, minted.token);
    const sessionId = (s.client.transport as unknown as { sessionId?: string }).sessionId!;
    expect(sessionId).toBeTruthy();
    const post = (token: string) =>
      http('/mcp', {
        method: 'POST',
        token,
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
        body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/list' }),
      });
    const other = await post(suite.server.token);
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: { code: number } }).error.code).toBe(-32001);
    expect((await post(minted.token)).status).toBe(200);
    // The SDK client holds the session's one stream already.
    const second = await http('/mcp', { token: minted.token, headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId } });
    expect(second.status).toBe(409);
    await second.body?.cancel();
    expect((await http(`/runtime/tokens/${minted.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await post(minted.token)).status).toBe(401);
    await expect(call(s.client, 'stat', { path: '/status' })).rejects.toThrow();
    await s.close().catch(() => undefined);
  });

  it("a session's stream ends when its token is revoked", async () => {
    const minted = await mint({ name: 'mcp-test stream', agent: 'demo' });
    const h = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const init = await http('/mcp', {
      method: 'POST',
      token: minted.token,
      headers: h,
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });
    const sid = init.headers.get('mcp-session-id')!;
    expect(((await init.json()) as { result: { serverInfo: { name: string } } }).result.serverInfo.name).toBe('agent9');
    const ready = await http('/mcp', { method: 'POST', token: minted.token, headers: { ...h, 'mcp-session-id': sid }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
    expect(ready.status).toBe(202);
    const stream = await http('/mcp', { token: minted.token, headers: { accept: 'text/event-stream', 'mcp-session-id': sid } });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    const reader = stream.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain(': agent9 mcp session stream');
    expect((await http(`/runtime/tokens/${minted.id}`, { method: 'DELETE' })).status).toBe(204);
    const ended = await Promise.race([
      (async () => {
        while (!(await reader.read()).done);
        return true;
      })(),
      sleep(3000).then(() => false),
    ]);
    expect(ended).toBe(true);
  });

  it('answers malformed requests as JSON-RPC errors, never ending the server', async () => {
    const h = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const notJson = await http('/mcp', { method: 'POST', headers: h, body: '{nope' });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { code: number } }).error.code).toBe(-32700);
    const noSession = await http('/mcp', { method: 'POST', headers: h, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
    expect(noSession.status).toBe(400);
    const unknown = await http('/mcp', { method: 'POST', headers: { ...h, 'mcp-session-id': 'nope' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
    expect(unknown.status).toBe(404);
    expect((await http('/mcp', { method: 'POST', headers: h, body: '[]' })).status).toBe(400);
    expect((await http('/mcp', { method: 'POST', token: 'a9_nope_nope', headers: h, body: '{}' })).status).toBe(401);
    expect((await http('/agents/demo/status')).status).toBe(200);
  });
});

describe('agentctl mcp', () => {
  it('refuses to start without --agent, an agent token or --admin', async () => {
    const r = await agentctl(['mcp'], { env: suite.env });
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/--agent ID/);
    expect(r.stderr).toMatch(/--admin/);
    expect(r.stdout).toBe('');
    const both = await agentctl(['mcp', '--agent', 'demo', '--admin'], { env: suite.env });
    expect(both.code).toBe(7);
    const missing = await agentctl(['mcp', '--agent', 'nobody'], { env: suite.env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('/agents/nobody');
  });

  it("with an agent token alone it acts as that agent; another agent's name is refused", async () => {
    const minted = await mint({ name: 'mcp-test stdio', agent: 'demo' });
    const s = await connectStdio([], { ...suite.env, AGENT9_TOKEN: minted.token });
    try {
      expect(s.stderr()).toContain('as agent demo');
      expect(await ok(s.client, 'stat', { path: '/status' })).toMatchObject({ kind: 'view' });
      await fails(s.client, 'stat', { path: '/agents/other' }, 'ENOENT');
    } finally {
      await s.close();
    }
    const wrong = await agentctl(['mcp', '--agent', 'other'], { env: { ...suite.env, AGENT9_TOKEN: minted.token } });
    expect(wrong.code).toBe(3);
  });

  it('revokes the token it minted for --agent when the client goes away', async () => {
    const s = await connectStdio(['--agent', 'demo'], suite.env);
    await ok(s.client, 'stat', { path: '/status' });
    expect(await tokenNames()).toContain('mcp demo');
    await s.close();
    await s.exited;
    // Earlier stdio sessions revoke theirs as they end too: wait for every one.
    const deadline = Date.now() + 10_000;
    while ((await tokenNames()).includes('mcp demo') && Date.now() < deadline) await sleep(100);
    expect(await tokenNames()).not.toContain('mcp demo');
  });
});
