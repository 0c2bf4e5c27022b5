/**
 * What one MCP session works on: the caller's view of the namespace and its Cx (the principal a token
 * gave it), exactly what an HTTP request of the same token gets, plus the event log's newest id (where a
 * watch without a cursor starts). Every tool and resource is file operations on `view`.
 */
import { FsError } from '../fs/errors.js';
import { joinPath, validateName } from '../fs/paths.js';
import type { Cx, FileService } from '../fs/types.js';

export interface McpScope {
  view: FileService;
  cx: Cx;
  /** The newest event id of the event log (a watch or subscription without a cursor starts there). */
  cursor?: () => number;
}

/** The Cx of one request: the session's, cancelled when the client cancels the request. */
export function requestCx(scope: McpScope, signal?: AbortSignal): Cx {
  return signal ? { ...scope.cx, signal } : scope.cx;
}

/**
 * Where an agent's files are in this session's view: `` (the root) for the session's own agent (an
 * agent-scoped token sees its namespace at `/`), `/agents/<id>` in the global view. Another agent from
 * an agent-scoped session is a path its view does not have, so it fails as HTTP does (ENOENT).
 */
export function agentBase(scope: McpScope, agent: string | undefined): string {
  const own = scope.cx.principal.agentId;
  if (agent === undefined || agent === own) {
    if (own !== undefined) return '';
    throw new FsError('EINVAL', '/agents', "field 'agent': name the agent (this session sees every agent, under /agents)");
  }
  validateName(agent, `/agents/${agent}`);
  return joinPath('/agents', agent);
}
