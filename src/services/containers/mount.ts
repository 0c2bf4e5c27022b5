/**
 * Wiring /containers into a server: one engine per server from `$AGENT9_HOME/config.json`, and the mount
 * every agent's namespace gets (`/containers`, ReadWrite: the service reserves its own budget; the policy
 * is admin-write).
 */
import { ReadWrite } from '../../fs/access-levels.js';
import type { AgentMount } from '../agent-mount.js';
import type { BudgetLedger } from '../../runtime/budget-ledger.js';
import type { IdempotencyJournal } from '../../runtime/idempotency-journal.js';
import type { Storage } from '../../runtime/storage/index.js';
import { loadContainersConfig, type ContainersConfig } from './config.js';
import { ContainerEngine, type TraceSink } from './engine.js';
import { DockerProvider } from './providers/docker.js';
import { CONTAINERS_ADMIN_WRITE, createContainersService } from './service.js';

export interface ContainersServerOptions {
  storage: Storage;
  /** AGENT9_HOME, where config.json is read from (unless `config` is given). */
  home?: string;
  config?: ContainersConfig;
  ledger?: BudgetLedger;
  journal?: IdempotencyJournal;
  trace?: TraceSink;
}

/** The server's container engine, with the provider and default policy of its config. */
export function openContainerEngine(options: ContainersServerOptions): ContainerEngine {
  const config = options.config ?? (options.home ? loadContainersConfig(options.home) : {});
  const docker = config.docker;
  return new ContainerEngine({
    storage: options.storage,
    providers: docker === false ? [] : [new DockerProvider(docker?.socket ? { socketPath: docker.socket } : {})],
    ...(config.policy ? { policy: config.policy } : {}),
    ...(config.session_retention_ms ? { retentionMs: config.session_retention_ms } : {}),
    ...(options.ledger ? { ledger: options.ledger } : {}),
    ...(options.journal ? { journal: options.journal } : {}),
    ...(options.trace ? { trace: options.trace } : {}),
  });
}

/** The /containers entry of an agent's mount list. */
export function containersAgentMount(engine: ContainerEngine): AgentMount {
  return {
    path: engine.mountPath,
    build: ({ id }) => createContainersService({ engine, agentId: id }),
    access: ReadWrite,
    options: { adminWrite: CONTAINERS_ADMIN_WRITE },
  };
}
