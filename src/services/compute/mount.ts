/**
 * Wiring /compute into a server: one engine per server from `$AGENT9_HOME/config.json`, and the mount
 * every agent's namespace gets (`/compute`, ReadWrite: the service reserves its own budget; the policy
 * is admin-write).
 */
import type { FileService } from '../../fs/types.js';
import { ReadWrite, type AccessLevel, type GuardOptions } from '../../fs/access-levels.js';
import type { BudgetLedger } from '../../runtime/budget-ledger.js';
import type { IdempotencyJournal } from '../../runtime/idempotency-journal.js';
import type { Storage } from '../../runtime/storage/index.js';
import { loadComputeConfig, type ComputeConfig } from './config.js';
import { ComputeEngine, type TraceSink } from './engine.js';
import { buildProviders } from './providers/index.js';
import { createComputeService } from './service.js';

export interface ComputeServerOptions {
  storage: Storage;
  /** AGENT9_HOME, where config.json is read from (unless `config` is given). */
  home?: string;
  config?: ComputeConfig;
  ledger?: BudgetLedger;
  journal?: IdempotencyJournal;
  trace?: TraceSink;
  /** Where API keys named by `api_key_env` are looked up (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** The server's compute engine, with the providers and default policy of its config. */
export function openComputeEngine(options: ComputeServerOptions): ComputeEngine {
  const config = options.config ?? (options.home ? loadComputeConfig(options.home) : {});
  return new ComputeEngine({
    storage: options.storage,
    providers: buildProviders(config.providers, options.env),
    ...(config.policy ? { policy: config.policy } : {}),
    ...(config.job_retention_ms ? { jobRetentionMs: config.job_retention_ms } : {}),
    ...(options.ledger ? { ledger: options.ledger } : {}),
    ...(options.journal ? { journal: options.journal } : {}),
    ...(options.trace ? { trace: options.trace } : {}),
  });
}

/** The /compute entry of an agent's mount list (the shape of the agent view's AgentMount). */
export function computeMount(engine: ComputeEngine): {
  path: string;
  build: (ctx: { id: string }) => FileService;
  access: AccessLevel;
  options: GuardOptions;
} {
  return {
    path: engine.mountPath,
    build: ({ id }) => createComputeService({ engine, agentId: id }),
    access: ReadWrite,
    options: { adminWrite: ['/policy'] },
  };
}
