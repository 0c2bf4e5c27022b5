/** /containers: sandboxed code execution as files. See service.ts for the file surface and engine.ts for the lifecycle. */
export { createContainersService, CONTAINERS_ADMIN_WRITE, type ContainersServiceOptions } from './service.js';
export { containersAgentMount, openContainerEngine, type ContainersServerOptions } from './mount.js';
export { loadContainersConfig, parseContainersConfig, type ContainersConfig } from './config.js';
export {
  ContainerEngine,
  CONTAINERS_SERVICE,
  type ContainerEngineOptions,
  type ExecAnswer,
  type RecoveryReport,
  type SubmitAnswer,
  type TraceEvent,
  type TraceSink,
} from './engine.js';
export { parsePolicy, type ContainerPolicy, type ContainerPolicyStore, type PolicyInput } from './policy.js';
export { containerMigrations } from './migrations.js';
export { DockerProvider, type DockerProviderOptions } from './providers/docker.js';
export type { ContainerProvider, ProviderHealth, ProviderInfo } from './providers/types.js';
export * from './types.js';

