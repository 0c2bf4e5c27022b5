/**
 * The agent runtime: registry, queues, tick engine and scheduler over one Storage, wired together.
 * Services and the server assembly reach everything through it.
 */
import type { Storage } from './storage/index.js';
import { RuntimeStore } from './agent-store/index.js';
import { KeyStore, loadServerKey } from './keys.js';
import { Tracer } from './trace.js';
import { ProgramRegistry, type Program } from './programs/index.js';
import { echoProgram } from './programs/echo.js';
import { execProgram } from './programs/exec.js';
import { Queues } from './queues.js';
import { TickEngine, type BudgetView, type TickReport } from './tick-engine.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';
import { AgentRegistry, memoryTree } from './agents.js';
import { maxFileBytesFromConfig, MemoryQuota } from './quota.js';
import { removeWorkDir } from './agent-workdir.js';
import { ExportSpool, maxExportsFromConfig } from './export-spool.js';
import { sweepStaleImports } from './import-stage.js';
import type { TickCause } from './spec.js';
import { OutboxRoutes } from './outbox-routes.js';

/** Extra environment for an exec program's process (AGENT_ROOT, or AGENT9_URL + an agent-scoped token). */
export type ExecEnvHook = (agentId: string) => Promise<Record<string, string>>;

export interface RuntimeOptions {
  home: string;
  storage: Storage;
  execEnv?: ExecEnvHook;
  /** Programs besides the built-in echo and exec. */
  programs?: Program[];
  budgets?: BudgetView;
  /** false: no automatic ticks (tests drive ticks by hand). */
  scheduler?: SchedulerOptions | false;
}

export class AgentRuntime {
  readonly store: RuntimeStore;
  readonly keys: KeyStore;
  readonly tracer: Tracer;
  readonly programs = new ProgramRegistry();
  readonly queues: Queues;
  readonly engine: TickEngine;
  readonly scheduler: Scheduler;
  readonly agents: AgentRegistry;
  /** limits.memory_bytes: each agent's memory files plus work dir. */
  readonly quota: MemoryQuota;
  /** config.json `memory.max_file_bytes`: the largest memory file (EFBIG beyond). */
  readonly maxFileBytes: number;
  /** Exports spooled to temporary files, a bounded number at once. */
  readonly exports: ExportSpool;
  readonly startedAt = Date.now();
  /** Where addressed outbox envelopes go: each capability that delivers adds its route (`nostr:`). */
  readonly outboxRoutes = new OutboxRoutes();
  private execEnvHook: ExecEnvHook | undefined;
  /** Called when an agent is deleted (views drop what they cached; the assembly has every capability forget it). */
  onDeleted: (agentId: string) => void = () => undefined;

  constructor(
    readonly home: string,
    readonly storage: Storage,
    options: Omit<RuntimeOptions, 'home' | 'storage'> = {},
  ) {
    this.store = new RuntimeStore(storage.db);
    this.maxFileBytes = maxFileBytesFromConfig(home);
    this.exports = new ExportSpool(home, storage, maxExportsFromConfig(home));
    this.keys = new KeyStore(loadServerKey(home), this.store);
    this.tracer = new Tracer(storage.events);
    this.programs.register(echoProgram).register(execProgram);
    for (const p of options.programs ?? []) this.programs.register(p);
    this.execEnvHook = options.execEnv;
    this.queues = new Queues(storage, this.store, this.tracer);
    this.engine = new TickEngine(storage, this.store, this.tracer, this.programs, this.queues, {
      home,
      execEnv: (id) => this.execEnv(id),
      budgets: options.budgets,
      routes: this.outboxRoutes,
    });
    this.scheduler = new Scheduler(storage, this.store, this.engine, this.queues, options.scheduler || {});
    this.agents = new AgentRegistry(storage, this.store, this.keys, this.tracer, this.programs, {
      changed: (id) => {
        this.quota.changed(id);
        this.scheduler.poke(id);
        this.scheduler.rearm();
      },
      deleted: (id) => {
        this.scheduler.forget(id);
        this.quota.forget(id);
        this.onDeleted(id);
      },
      exclusive: (id, fn) => this.engine.locks.run(id, fn),
      removeFiles: (id) => removeWorkDir(home, id),
    });
    this.quota = new MemoryQuota(storage, home, (id) => this.agents.get(id)?.limits.memory_bytes, memoryTree);
    this.queues.onEnqueue = (id) => this.scheduler.poke(id);
    this.engine.onTick = (report: TickReport) => {
      this.scheduler.tickDone(report.agent);
      this.quota.tickDone(report.agent);
    };
    // What a crash left: import stagings, work dirs of agents that are gone.
    sweepStaleImports(this);
    if (options.scheduler !== false) this.scheduler.start();
  }

  /** Sets the hook that gives exec programs their extra environment (the HTTP and FUSE layers plug in here). */
  setExecEnv(hook: ExecEnvHook | undefined): void {
    this.execEnvHook = hook;
  }

  private async execEnv(agentId: string): Promise<Record<string, string>> {
    return this.execEnvHook ? this.execEnvHook(agentId) : {};
  }

  setBudgets(budgets: BudgetView | undefined): void {
    this.engine.setBudgets(budgets);
  }

  tick(agentId: string, cause: TickCause, path?: string): Promise<TickReport> {
    return this.engine.tick(agentId, cause, path);
  }

  /** Stops the scheduler and lets running ticks finish. */
  async close(): Promise<void> {
    this.scheduler.stop();
    await this.engine.close();
  }
}
