/**
 * Mounting an agent9 server: its global view (`DIR/agents/<id>/...`), or with `agent` one agent's local
 * view at DIR, where every operation acts as that agent (as an agent-scoped token does over HTTP).
 */
import { join } from 'node:path';
import type { Agent9 } from '../server/agent9.js';
import type { Principal } from '../fs/types.js';
import { mountNamespace, type FuseMount, type MountNamespaceOptions } from './kernel-mount.js';

export interface MountServerOptions extends MountNamespaceOptions {
  /** Mount this agent's local view instead of the global view. */
  agent?: string;
}

/** The principal of an `--agent` mount: the agent itself, not an admin. */
export function agentPrincipal(id: string): Principal {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return { id: `agent:${id}`, admin: false, agentId: id, uid, gid };
}

/** Mounts the server's global view at `dir`, or one agent's view (ENOENT for an unknown agent). */
export async function mountServer(a9: Agent9, dir: string, opts: MountServerOptions = {}): Promise<FuseMount> {
  const { agent, ...rest } = opts;
  if (agent === undefined) return mountNamespace(a9.namespace, dir, { statfsOf: a9.home, ...rest });
  const view = await a9.agentNamespace(agent);
  return mountNamespace(view, dir, { statfsOf: a9.home, principal: agentPrincipal(agent), ...rest });
}

/**
 * What exec programs get from a mount (CONTRACT section 10): AGENT_ROOT, the agent's directory on it
 * (`DIR/agents/<id>` for the global view, DIR itself for that agent's own mount).
 */
export function agentRootEnv(mount: FuseMount, agent?: string): (id: string) => Record<string, string> {
  return (id) => {
    if (agent !== undefined) return id === agent ? { AGENT_ROOT: mount.dir } : {};
    return { AGENT_ROOT: join(mount.dir, 'agents', id) };
  };
}
