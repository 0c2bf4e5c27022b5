/** /compute: model jobs as files. See service.ts for the file surface and engine.ts for the job lifecycle. */
export { createComputeService, type ComputeServiceOptions } from './service.js';
export { ComputeEngine, COMPUTE_SERVICE, type ComputeEngineOptions, type SubmitAnswer, type TraceEvent, type TraceSink } from './engine.js';
export { parsePolicy, route, type ComputePolicy, type ComputePolicyStore, type PolicyInput } from './policy.js';
export { buildProviders, ProviderRegistry, LocalEchoProvider, OpenAiProvider, ECHO_MODEL, type ProviderConfig, type OpenAiConfig } from './providers/index.js';
export { loadComputeConfig, type ComputeConfig } from './config.js';
export { computeMigrations } from './migrations.js';
export * from './types.js';
export { openComputeEngine, computeMount, type ComputeServerOptions } from './mount.js';
