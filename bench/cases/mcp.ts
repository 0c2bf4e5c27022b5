/**
 * MCP over streamable HTTP against the plain HTTP mapping, on the shipped server (`agentctl serve`,
 * an agent-scoped token, bench/servers/children.ts): a `tools/call` of `read` on the 100-byte file
 * `/memory/hundred` in one MCP session (each request its own JSON-RPC id) beside a `GET` of the same
 * file. Same load process, connections and duration; three rounds, the order flipping each round, the
 * median of each side with its spread, and the server's CPU time per request beside it.
 * The bar: an MCP read costs at most 3x a GET, i.e. at least a third of its rate.
 */
import type { BenchCase, Figure } from '../harness.js';
import { startShipped, type ServerChild } from '../servers/children.js';
import { LoadChild, measure, median, spreadOf, type Measured } from './http.js';

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** Opens an MCP session as a client does (initialize, then initialized); the headers its requests carry. */
async function openSession(server: ServerChild): Promise<Record<string, string>> {
  const post = (body: unknown, headers: Record<string, string>) =>
    fetch(`${server.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${server.token}`, ...headers }, body: JSON.stringify(body) });
  const init = await post(
    { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } },
    MCP_HEADERS,
  );
  const sid = init.headers.get('mcp-session-id');
  const text = await init.text();
  if (!init.ok || !sid) throw new Error(`initialize: HTTP ${init.status} ${text}`);
  const headers = { ...MCP_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' };
  const ready = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
  if (ready.status !== 202) throw new Error(`notifications/initialized: HTTP ${ready.status}`);
  // One call checked by hand: the figure must measure reads that work.
  const check = await post({ jsonrpc: '2.0', id: 'check', method: 'tools/call', params: { name: 'read', arguments: { path: server.hundredPath } } }, headers);
  const answer = (await check.json()) as { result?: { isError?: boolean; content?: { text?: string }[] } };
  if (answer.result?.isError || answer.result?.content?.[0]?.text?.length !== 100) throw new Error(`tools/call read: ${JSON.stringify(answer)}`);
  return headers;
}

async function mcpRead(quick: boolean): Promise<Figure> {
  const connections = 100;
  const duration = quick ? 3 : 8;
  const rounds = 3;
  const load = new LoadChild();
  const server = await startShipped();
  try {
    const headers = await openSession(server);
    const call = { jsonrpc: '2.0', id: 0, method: 'tools/call', params: { name: 'read', arguments: { path: server.hundredPath } } };
    const mcpRun = { method: 'POST', connections, duration, body: Buffer.from(JSON.stringify(call)).toString('base64'), jsonRpcIds: true };
    const getRun = { method: 'GET', connections, duration };
    const runMcp = (d = duration) => measure(load, server, { ...mcpRun, duration: d }, '/mcp', headers);
    const runGet = (d = duration) => measure(load, server, { ...getRun, duration: d }, server.hundredPath);
    await runGet(2);
    await runMcp(2);
    const m: Measured[] = [];
    const g: Measured[] = [];
    for (let i = 0; i < rounds; i++) {
      if (i % 2 === 0) {
        g.push(await runGet());
        m.push(await runMcp());
      } else {
        m.push(await runMcp());
        g.push(await runGet());
      }
    }
    const mRps = m.map((x) => x.rps);
    const gRps = g.map((x) => x.rps);
    const mCpu = median(m.map((x) => x.cpuPerRequest));
    const gCpu = median(g.map((x) => x.cpuPerRequest));
    return {
      name: `MCP tools/call read of a 100-byte file, ${connections} connections (autocannon)`,
      unit: 'req/s',
      value: median(mRps),
      baselineName: 'GET of the same file',
      baseline: median(gRps),
      higherIsBetter: true,
      bar: '>= 0.33x',
      spread: { ours: spreadOf(mRps), baseline: spreadOf(gRps) },
      missedBecause: `each call also goes through JSON-RPC (the SDK's Server checks every message with zod) and the tool's argument check; server CPU per request ${(mCpu / gCpu).toFixed(2)}x the GET's`,
      note:
        `shipped server (agentctl serve, agent-scoped token, one MCP session over streamable HTTP, JSON answers); median of ${rounds} interleaved ${duration} s runs; ` +
        `runs MCP ${mRps.map(Math.round).join(', ')}, GET ${gRps.map(Math.round).join(', ')} req/s; ` +
        `server CPU per request MCP ${mCpu.toFixed(0)} us, GET ${gCpu.toFixed(0)} us (${(mCpu / gCpu).toFixed(2)}x)`,
    };
  } finally {
    load.close();
    await server.stop();
  }
}

export const mcpCase: BenchCase = {
  name: 'mcp',
  async run({ quick }) {
    return [await mcpRead(quick)];
  },
};
