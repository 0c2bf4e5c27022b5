/**
 * One agent's local namespace: what the agent sees at `/` and the global view shows at `/agents/<id>`.
 * Each service is mounted behind its access level. The mount list is data: adding a service (compute,
 * containers) is one entry in `standardAgentMounts`, a capability plugin's `agentMounts`, or one `Agent9.addAgentMount` call.
 */
import { Namespace } from '../fs/namespace.js';
import { mountWithAccess, ReadOnly, ReadWrite, SignOnly, type GuardOptions } from './access.js';
import type { AgentMount, AgentMountContext } from '../services/agent-mount.js';

export type { AgentMount, AgentMountContext };
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import { memoryTree } from '../runtime/agents.js';
import { ctlService } from '../services/ctl.js';
import { statusService } from '../services/status.js';
import { InboxDirFs, inboxPolicyService, inboxService } from '../services/inbox.js';
import { DeadletterFs } from '../services/deadletter.js';
import { outboxService } from '../services/outbox.js';
import { GoalsFs } from '../services/goals.js';
import { identityService } from '../services/identity.js';
import { logsQueryService, logsService } from '../services/logs.js';
import { metricsService } from '../services/agent-metrics.js';
import { configService, exportService } from '../services/agent-config.js';

const ADMIN_ONLY: GuardOptions = { adminWrite: ['/'] };

/** The standard services of every agent (CONTRACT.md section 9). */
export function standardAgentMounts(): AgentMount[] {
  return [
    { path: '/ctl', build: ({ rt, id }) => ctlService(rt, id), access: ReadWrite, options: ADMIN_ONLY },
    { path: '/status', build: ({ rt, id }) => statusService(rt, id), access: ReadOnly },
    { path: '/inbox', build: ({ rt, id }) => inboxService(rt, id), access: ReadWrite },
    { path: '/inbox.d', build: ({ rt, id }) => new InboxDirFs(rt, id), access: ReadWrite },
    { path: '/inbox.policy', build: ({ rt, id }) => inboxPolicyService(rt, id), access: ReadWrite, options: ADMIN_ONLY },
    { path: '/deadletter', build: ({ rt, id }) => new DeadletterFs(rt, id), access: ReadWrite },
    { path: '/outbox', build: ({ rt, id }) => outboxService(rt, id), access: ReadOnly },
    { path: '/goals', build: ({ rt, id }) => new GoalsFs(rt, id), access: ReadWrite },
    {
      path: '/memory',
      build: ({ rt, id }) =>
        rt.storage.dataTree(
          memoryTree(id),
          { scope: id, prefix: '/memory' },
          { serviceName: 'memory', space: () => rt.quota.space(id), maxFileBytes: rt.maxFileBytes },
          (store) => rt.quota.store(id, store),
        ),
      access: ReadWrite,
    },
    { path: '/identity', build: ({ rt, id }) => identityService(rt, id), access: SignOnly },
    { path: '/logs', build: ({ rt, id }) => logsService(rt, id), access: ReadOnly },
    { path: '/logs/query', build: ({ rt, id }) => logsQueryService(rt, id), access: ReadWrite },
    { path: '/metrics', build: ({ rt, id }) => metricsService(rt, id), access: ReadOnly },
    { path: '/config', build: ({ rt, id }) => configService(rt, id), access: ReadWrite, options: ADMIN_ONLY },
    { path: '/export', build: ({ rt, id }) => exportService(rt, id), access: ReadOnly },
  ];
}

export function buildAgentView(rt: AgentRuntime, id: string, mounts: readonly AgentMount[]): Namespace {
  const ns = new Namespace({ scope: id, events: rt.storage.events, name: `agent:${id}` });
  const ctx: AgentMountContext = { rt, id };
  for (const m of mounts) {
    const access = typeof m.access === 'function' ? m.access(ctx) : m.access;
    mountWithAccess(ns, m.path, m.build(ctx), access, m.options ?? {});
  }
  return ns;
}
