/**
 * How a service enters an agent's namespace: a path, a builder given the runtime and the agent, and the
 * access level the mount layer enforces. The standard services (src/mounts/agent-view.ts) and every
 * capability plugin (src/server/capabilities.ts) describe their mounts with it.
 */
import type { AccessLevel, GuardOptions } from '../fs/access-levels.js';
import type { FileService } from '../fs/types.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';

export interface AgentMountContext {
  rt: AgentRuntime;
  /** The agent id: also the event scope of its namespace. */
  id: string;
}

export interface AgentMount {
  path: string;
  build(ctx: AgentMountContext): FileService;
  access: AccessLevel | ((ctx: AgentMountContext) => AccessLevel);
  options?: GuardOptions;
}
