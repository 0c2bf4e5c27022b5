/**
 * One MCP server per session (the SDK's low-level Server): the tools of file-tools.ts and
 * agent-tools.ts, and the files as resources with subscriptions (resources.ts), all on the session's
 * view. A transport connects it: the streamable-HTTP endpoint of the HTTP server (`/mcp`), which
 * `agentctl mcp` also bridges stdio to. Nothing here knows which.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CallToolRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { agent9Version } from '../runtime/version.js';
import { AGENT_TOOLS } from './agent-tools.js';
import { FILE_TOOLS } from './file-tools.js';
import { listResources, readResource, RESOURCE_TEMPLATES, Subscriptions } from './resources.js';
import { requestCx, type McpScope } from './session.js';
import { ToolTable } from './tool-table.js';

export const TOOLS = new ToolTable([...FILE_TOOLS, ...AGENT_TOOLS]);


function instructionsFor(scope: McpScope): string {
  const agent = scope.cx.principal.agentId;
  const where =
    agent !== undefined
      ? `This session is agent '${agent}': its namespace is at / (/status, /inbox, /outbox, /memory, /compute, /containers, ...).`
      : "This session sees the global view: every agent's namespace under /agents/<id>, the server's files under /runtime.";
  return (
    `agent9 serves everything an agent has as files. ${where} ` +
    'Read and write them with the file tools; send_message, run_model_job and run_in_container do the common things in one call. ' +
    'Files are also resources (agent9:///path) that can be subscribed to. Errors carry a POSIX code (ENOENT, EACCES, EINVAL, EDQUOT, ...) and the path.'
  );
}

export function createMcpServer(scope: McpScope): Server {
  const server = new Server(
    { name: 'agent9', title: 'agent9', version: agent9Version() },
    { capabilities: { tools: {}, resources: { subscribe: true } }, instructions: instructionsFor(scope) },
  );
  const subscriptions = new Subscriptions(server, scope);

  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOLS.listed }));
  // Protocol's own registration, not Server's override: that one parses every tools/call request a second
  // time and its result against the whole result schema, which was most of the cost of a small `read`
  // (about 100 us of 150 in process). The request is still parsed once, by Protocol; results are built
  // by results.ts, and a client checks them on its side (the SDK's Client does).
  Protocol.prototype.setRequestHandler.call(server, CallToolRequestSchema, (request, extra) => {
    const token = request.params._meta?.progressToken;
    return TOOLS.call(request.params.name, request.params.arguments, {
      scope,
      cx: requestCx(scope, extra.signal),
      progress: (progress, message) =>
        token === undefined
          ? Promise.resolve()
          : extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress, ...(message ? { message } : {}) } }).catch(() => undefined),
    });
  });
  server.setRequestHandler(ListResourcesRequestSchema, async (_request, extra) => ({ resources: await listResources(scope, requestCx(scope, extra.signal)) }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({ resourceTemplates: RESOURCE_TEMPLATES }));
  server.setRequestHandler(ReadResourceRequestSchema, (request, extra) => readResource(scope, request.params.uri, requestCx(scope, extra.signal)));
  server.setRequestHandler(SubscribeRequestSchema, async (request) => {
    await subscriptions.subscribe(request.params.uri);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, (request) => {
    subscriptions.unsubscribe(request.params.uri);
    return {};
  });
  const closed = server.onclose;
  server.onclose = () => {
    subscriptions.close();
    closed?.();
  };
  return server;
}
