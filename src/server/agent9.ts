/**
 * The server assembly every transport builds on: storage, the agent runtime, the global view and the
 * agent-local views. `agentctl serve` opens it and serves `namespace` over HTTP; FUSE mounts
 * `namespace` (or `agentNamespace(id)` for `mount --agent`).
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FileService } from '../fs/types.js';
import type { Namespace } from '../fs/namespace.js';
import { Storage, type StorageOptions } from '../runtime/storage/index.js';
import { AgentRuntime, type ExecEnvHook } from '../runtime/agent-runtime.js';
import { BudgetLedger } from '../runtime/budget-ledger.js';
import type { Program } from '../runtime/programs/index.js';
import type { SchedulerOptions } from '../runtime/scheduler.js';
import { AgentViews, buildGlobalView } from '../mounts/global-view.js';
import { standardAgentMounts, type AgentMount } from '../mounts/agent-view.js';
import { statusOf, type AgentStatus } from '../services/status.js';
import { FsError } from '../fs/errors.js';
import { computeMount, openComputeEngine } from '../services/compute/mount.js';
import { budgetService } from '../services/budget-files.js';
import { ReadWrite } from '../mounts/access.js';
import type { ComputeEngine } from '../services/compute/engine.js';
import { ContainerEngine, containersAgentMount, openContainerEngine } from '../services/containers/index.js';

export interface Agent9Options {
  /** The data directory (AGENT9_HOME): agent9.db and server.key live here. */
  home: string;
  /** Storage options (sync mode, retention) when Agent9 opens the database itself. */
  storage?: StorageOptions;
  /** Extra environment for exec programs (AGENT_ROOT, or AGENT9_URL + an agent-scoped token). */
  execEnv?: ExecEnvHook;
  /** Programs besides echo and exec. */
  programs?: Program[];
  /** The budget ledger (status shows its usage; each tick resets the tick window); default: a BudgetLedger on this storage. */
  budgets?: BudgetLedger;
  /** Mounts added to every agent's namespace after the standard ones and /compute (e.g. /containers). */
  agentMounts?: AgentMount[];
  /** The /compute engine; default: one from `$AGENT9_HOME/config.json` on this storage and ledger; false: no /compute. */
  compute?: ComputeEngine | false;
  /** false: no automatic ticks. */
  scheduler?: SchedulerOptions | false;
  /** Agent namespaces kept built (default 256). */
  namespaceCache?: number;
  /** The /containers engine; default: one from `$AGENT9_HOME/config.json` on this storage and ledger; false: no /containers. */
  containers?: ContainerEngine | false;
}

export class Agent9 {
  readonly storage: Storage;
  readonly runtime: AgentRuntime;
  /** The global view: /agents/<id>/..., /runtime/status, /mounts. */
  readonly namespace: Namespace;
  readonly home: string;
  /** Budgets of every agent (micro-USD): /status shows them, ticks reset the tick window, /compute and /containers reserve from it. */
  readonly budgets: BudgetLedger;
  /** Model jobs of every agent (mounted at /compute in each agent's namespace). */
  readonly compute: ComputeEngine | undefined;
  /** The container engine behind every agent's /containers (undefined when turned off). */
  readonly containers: ContainerEngine | undefined;
  private readonly views: AgentViews;
  private readonly mounts: AgentMount[];
  private closed = false;

  private constructor(home: string, storage: Storage, options: Agent9Options) {
    this.home = home;
    this.storage = storage;
    const runtimeOptions: ConstructorParameters<typeof AgentRuntime>[2] = {};
    if (options.execEnv) runtimeOptions.execEnv = options.execEnv;
    if (options.programs) runtimeOptions.programs = options.programs;
    this.budgets = options.budgets ?? new BudgetLedger(storage);
    this.containers = options.containers === false ? undefined : (options.containers ?? openContainerEngine({ storage, home, ledger: this.budgets }));
    this.compute = options.compute === false ? undefined : (options.compute ?? openComputeEngine({ storage, home, ledger: this.budgets }));
    const budgets = this.budgets;
    const budgetMount: AgentMount = { path: '/budget', build: ({ id }) => budgetService(budgets, id), access: ReadWrite, options: { adminWrite: ['/'] } };
    this.mounts = [
      ...standardAgentMounts(),
      budgetMount,
      ...(this.compute ? [computeMount(this.compute)] : []),
      ...(this.containers ? [containersAgentMount(this.containers)] : []),
      ...(options.agentMounts ?? []),
    ];
    runtimeOptions.budgets = this.budgets;
    if (options.scheduler !== undefined) runtimeOptions.scheduler = options.scheduler;
    this.runtime = new AgentRuntime(home, storage, runtimeOptions);
    this.views = new AgentViews(this.runtime, () => this.mounts, options.namespaceCache ?? 256);
    this.runtime.onDeleted = (id) => {
      this.views.evict(id);
      void this.compute?.forget(id).catch((err: unknown) => process.emitWarning(`compute: forgetting ${id}: ${(err as Error).message}`));
      void this.containers?.dropAgent(id).catch(() => undefined);
    };
    this.namespace = buildGlobalView(this.runtime, this.views);
  }

  static async open(options: Agent9Options): Promise<Agent9> {
    const home = resolve(options.home);
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const storage = Storage.open(home, options.storage ?? {});
    try {
      const a9 = new Agent9(home, storage, options);
      // Settles what a previous run left (sessions, orphaned containers) in the background; every
      // /containers operation waits for it.
      void a9.containers?.start().catch(() => undefined);
      return a9;
    } catch (err) {
      storage.close();
      throw err;
    }
  }

  /** One agent's local namespace (what an agent-scoped token or `mount --agent` sees at /). */
  async agentNamespace(id: string): Promise<FileService> {
    return this.views.get(id, `/agents/${id}`);
  }

  /** Plugs in the hook that gives exec programs their extra environment. */
  setExecEnv(hook: ExecEnvHook | undefined): void {
    this.runtime.setExecEnv(hook);
  }

  /** Adds a mount to every agent's namespace (namespaces already built are rebuilt on next access). */
  addAgentMount(mount: AgentMount): void {
    this.mounts.push(mount);
    this.views.clear();
  }

  /** Stops the scheduler, lets running ticks finish, closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.containers?.close();
    await this.runtime.close();
    await this.compute?.close();
    this.storage.close();
  }
}

export const DEMO_AGENT = 'demo';

/** Creates the `demo` agent (the echo program) unless it exists; returns its status. */
export function createDemoAgent(a9: Agent9): AgentStatus {
  const rt = a9.runtime;
  if (!rt.agents.has(DEMO_AGENT)) {
    try {
      rt.agents.create({ name: DEMO_AGENT, program: 'echo' }, '/agents/new');
    } catch (err) {
      if (!(err instanceof FsError && err.code === 'EEXIST')) throw err;
    }
  }
  return statusOf(rt, DEMO_AGENT, `/agents/${DEMO_AGENT}`);
}
