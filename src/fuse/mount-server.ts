/**
 * Mounting an agent9 server: its global view (`DIR/agents/<id>/...`), or with `agent` one agent's local
 * view at DIR, where every operation acts as that agent (as an agent-scoped token does over HTTP).
 * Either way each request acts as its caller (callers.ts): exec programs' processes as their agent,
 * the server's user and root as the operator (the agent of an `--agent` mount), other users as
 * config.json's `mount.users` grants them, by default nobody.
 */
import { join } from 'node:path';
import type { Agent9 } from '../server/agent9.js';
import type { Principal } from '../fs/types.js';
import { CallerPrincipals, loadMountUsers } from './callers.js';
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
  const serverUid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  // Read (and checked) at every mount: a bad section stops the start with EINVAL naming the field.
  const users = loadMountUsers(a9.home);
  const rt = a9.runtime;
  const rules = { serverUid, processes: rt.processes, agentExists: (id: string) => rt.agents.has(id), ...(opts.allowOther ? { users } : {}) };
  if (agent === undefined) {
    const owner: Principal = { id: 'operator', admin: true, uid: serverUid, gid };
    return mountNamespace(a9.namespace, dir, { statfsOf: a9.home, principal: owner, callers: new CallerPrincipals({ ...rules, owner }), ...rest });
  }
  const view = await a9.agentNamespace(agent);
  const owner = agentPrincipal(agent);
  return mountNamespace(view, dir, { statfsOf: a9.home, principal: owner, callers: new CallerPrincipals({ ...rules, owner, agentMount: agent }), ...rest });
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
