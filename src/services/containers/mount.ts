/** /containers in every agent's namespace: one mount entry over the server's ContainerEngine. */
import { ReadWrite } from '../../mounts/access.js';
import type { AgentMount } from '../../mounts/agent-view.js';
import type { ContainerEngine } from './engine.js';
import { CONTAINERS_ADMIN_WRITE, createContainersService } from './service.js';

export function containersAgentMount(engine: ContainerEngine): AgentMount {
  return {
    path: engine.mountPath,
    build: ({ id }) => createContainersService({ engine, agentId: id }),
    access: ReadWrite,
    options: { adminWrite: CONTAINERS_ADMIN_WRITE },
  };
}
