/** The MCP mapping: what the transports that carry it (HTTP at /mcp, agentctl on stdio through it) use. */
export { createMcpServer, TOOLS } from './server.js';
export type { McpScope } from './session.js';
export { uriOf, pathOfUri, URI_TEMPLATE } from './uris.js';
