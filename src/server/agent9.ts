/**
 * The server assembly every transport builds on: storage (with the runtime's and every capability's
 * tables), the agent runtime, the budget ledger, the capability plugins (capabilities.ts), tokens, the
 * metrics registry, the global view with its `/runtime` files, and the agent-local views. `agentctl
 * serve` opens it and serves `namespace` over HTTP; FUSE mounts `namespace` (or `agentNamespace(id)`
 * for `mount --agent`). What the namespace holds does not depend on which transport serves it.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Counter, type Registry } from 'prom-client';
import { FsError } from '../fs/errors.js';
import { SERVER_SCOPE } from '../fs/events.js';
import type { Namespace } from '../fs/namespace.js';
import type { FileService } from '../fs/types.js';
import { AgentViews, buildGlobalView } from '../mounts/global-view.js';
import { standardAgentMounts } from '../mounts/agent-view.js';
import { AgentRuntime, type ExecEnvHook } from '../runtime/agent-runtime.js';
import { BudgetLedger } from '../runtime/budget-ledger.js';
import { createRegistry, processMetricsRegistry, registerRuntimeMetrics, registerStorageMetrics } from '../runtime/prometheus-registry.js';
import type { Program } from '../runtime/programs/index.js';
import type { SchedulerOptions } from '../runtime/scheduler.js';
import { Storage, type StorageOptions } from '../runtime/storage/index.js';
import { loadTokenConfig } from '../runtime/token-rules.js';
import { TokenStore } from '../runtime/token-store.js';
import { errorText } from '../runtime/trace.js';
import type { AgentMount } from '../services/agent-mount.js';
import type { ComputeEngine } from '../services/compute/index.js';
import type { ContainerEngine } from '../services/containers/index.js';
import { statusOf, type AgentStatus } from '../services/status.js';
import {
  budgetCapability,
  computeCapability,
  containersCapability,
  serverMigrations,
  STANDARD_CAPABILITIES,
  type CapabilityContext,
  type CapabilityPlugin,
} from './capabilities.js';

/** Where the assembly reports what went wrong outside any request (a pino logger fits). */
export interface WarningLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface Agent9Options {
  /** The data directory (AGENT9_HOME): agent9.db, server.key and config.json live here. */
  home: string;
  /** Storage options (sync mode, retention). */
  storage?: StorageOptions;
  /** Extra environment for exec programs (AGENT_ROOT, or AGENT9_URL + an agent-scoped token). */
  execEnv?: ExecEnvHook;
  /** Programs besides echo and exec. */
  programs?: Program[];
  /**
   * The capabilities besides `budget` (always there: the runtime and the others reserve from its
   * ledger); default: compute and containers, each configured from `$AGENT9_HOME/config.json`.
   */
  capabilities?: readonly CapabilityPlugin[];
  /** false: leave /compute out of the default capabilities. */
  compute?: false;
  /** false: leave /containers out of the default capabilities. */
  containers?: false;
  /** Mounts added to every agent's namespace after those of the capabilities. */
  agentMounts?: AgentMount[];
  /** false: no automatic ticks. */
  scheduler?: SchedulerOptions | false;
  /** Agent namespaces kept built (default 256). */
  namespaceCache?: number;
  /** Warnings (a capability that failed to forget a deleted agent, or to start); default: process warnings. */
  log?: WarningLog;
}

/** A capability opened on this server: its plugin and its engine. */
interface OpenCapability {
  plugin: CapabilityPlugin;
  engine: unknown;
}

export class Agent9 {
  readonly storage: Storage;
  readonly runtime: AgentRuntime;
  /** The global view: /agents/<id>/..., /runtime/{status,tokens,metrics}, /mounts. */
  readonly namespace: Namespace;
  readonly home: string;
  /** Budgets of every agent (micro-USD): /status shows them, ticks reset the tick window, /compute and /containers reserve from it. */
  readonly budgets: BudgetLedger;
  /** Bearer tokens: `/runtime/tokens` manages them, the HTTP transport checks requests against them. */
  readonly tokens: TokenStore;
  /** The server's Prometheus registry (`/runtime/metrics`; the HTTP transport adds its request figures). */
  readonly registry: Registry;
  private readonly capabilities: OpenCapability[] = [];
  private readonly views: AgentViews;
  private readonly mounts: AgentMount[];
  private readonly log: WarningLog;
  private readonly failures: Counter;
  /** Forgetting and starting still running (close waits for them before the database closes). */
  private readonly background = new Set<Promise<void>>();
  private closed = false;

  private constructor(home: string, storage: Storage, plugins: readonly CapabilityPlugin[], options: Agent9Options) {
    this.home = home;
    this.storage = storage;
    this.log = options.log ?? { warn: (fields, message) => process.emitWarning(`${message}: ${JSON.stringify(fields)}`) };
    // config.json's tokens section is checked at open: a bad one stops the start, before anything listens.
    this.tokens = new TokenStore(storage, loadTokenConfig(home));
    this.budgets = new BudgetLedger(storage);
    const ctx: CapabilityContext = { home, storage, ledger: this.budgets };
    try {
      for (const plugin of plugins) this.capabilities.push({ plugin, engine: plugin.open(ctx) });
    } catch (err) {
      void this.closeCapabilities();
      this.tokens.close();
      throw err;
    }
    this.mounts = [...standardAgentMounts(), ...this.capabilities.flatMap((c) => c.plugin.agentMounts(c.engine)), ...(options.agentMounts ?? [])];
    this.runtime = new AgentRuntime(home, storage, {
      budgets: this.budgets,
      ...(options.execEnv ? { execEnv: options.execEnv } : {}),
      ...(options.programs ? { programs: options.programs } : {}),
      ...(options.scheduler !== undefined ? { scheduler: options.scheduler } : {}),
    });
    this.views = new AgentViews(this.runtime, () => this.mounts, options.namespaceCache ?? 256);
    this.runtime.onDeleted = (id) => {
      this.views.evict(id);
      this.forgetAgent(id);
    };

    this.registry = createRegistry({ processMetrics: false });
    registerStorageMetrics(this.registry, storage);
    registerRuntimeMetrics(this.registry, {
      agentsByState: () => this.runtime.store.countByState(),
      totals: () => this.runtime.store.totals(),
      ticksRunning: () => this.runtime.engine.locks.size,
      agents: () => this.runtime.store.figures(),
      spend: (agentId) => this.budgets.usage(agentId),
    });
    for (const c of this.capabilities) c.plugin.registerMetrics?.(c.engine, this.registry);
    this.failures = new Counter({
      name: 'agent9_capability_failures_total',
      help: 'Background work of a capability that failed: forgetting a deleted agent, or settling a previous run',
      labelNames: ['capability', 'work'],
      registers: [this.registry],
    });
    this.namespace = buildGlobalView(this.runtime, this.views, { tokens: this.tokens, metrics: [this.registry, processMetricsRegistry()] });
  }

  static async open(options: Agent9Options): Promise<Agent9> {
    const home = resolve(options.home);
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const plugins = [budgetCapability, ...(options.capabilities ?? defaultCapabilities(options))];
    const storage = Storage.open(home, { ...options.storage, migrations: [...serverMigrations(plugins), ...(options.storage?.migrations ?? [])] });
    let a9: Agent9;
    try {
      a9 = new Agent9(home, storage, plugins, options);
    } catch (err) {
      storage.close();
      throw err;
    }
    for (const c of a9.capabilities) {
      if (c.plugin.start) a9.inBackground(c.plugin.start(c.engine), c.plugin.name, 'start', {});
    }
    return a9;
  }

  /** The engine of a capability opened on this server (undefined when it is not one of them). */
  engineOf<E>(plugin: CapabilityPlugin<E>): E | undefined {
    return this.capabilities.find((c) => c.plugin === plugin)?.engine as E | undefined;
  }

  /** Model jobs of every agent (mounted at /compute in each agent's namespace); undefined when turned off. */
  get compute(): ComputeEngine | undefined {
    return this.engineOf(computeCapability);
  }

  /** The container engine behind every agent's /containers (undefined when turned off). */
  get containers(): ContainerEngine | undefined {
    return this.engineOf(containersCapability);
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

  /**
   * Every capability drops what it kept for a deleted agent (its rows are already gone, in the deletion's
   * transaction). A failure is reported three ways: a warning in the log, the counter
   * `agent9_capability_failures_total{capability,work="forget"}`, and a `data` event
   * `{type: "forget_failed", capability, error}` at `/agents/<id>` (what `watch /agents` shows).
   */
  private forgetAgent(id: string): void {
    for (const c of this.capabilities) {
      let work: Promise<void>;
      try {
        work = c.plugin.forgetAgent(c.engine, id);
      } catch (err) {
        work = Promise.reject(err);
      }
      this.inBackground(work, c.plugin.name, 'forget', { agent: id });
    }
  }

  private inBackground(work: Promise<void>, capability: string, kind: 'forget' | 'start', fields: { agent?: string }): void {
    const tracked: Promise<void> = work
      .catch((err: unknown) => this.reportFailure(capability, kind, fields.agent, err))
      .finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  private reportFailure(capability: string, kind: 'forget' | 'start', agent: string | undefined, err: unknown): void {
    const error = errorText(err);
    this.failures.inc({ capability, work: kind });
    const what = kind === 'forget' ? `${capability} could not forget deleted agent ${agent}` : `${capability} could not settle what the previous run left`;
    this.log.warn({ capability, ...(agent !== undefined ? { agent } : {}), err: error }, what);
    if (agent !== undefined && !this.closed) {
      this.storage.events.emit(SERVER_SCOPE, `/agents/${agent}`, 'data', { data: { type: 'forget_failed', capability, error } });
    }
  }

  private async closeCapabilities(): Promise<void> {
    // In reverse: a capability may use one opened before it (every one uses the budget ledger).
    for (const c of [...this.capabilities].reverse()) await c.plugin.close(c.engine);
  }

  /** Lets background forgetting finish, stops the capabilities and the scheduler, closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.background]);
    this.closed = true;
    await this.closeCapabilities();
    await this.runtime.close();
    this.tokens.close();
    this.storage.close();
  }
}

/** The standard capabilities, less those `options` turn off. */
function defaultCapabilities(options: Agent9Options): CapabilityPlugin[] {
  return STANDARD_CAPABILITIES.filter((p) => !(p === computeCapability && options.compute === false) && !(p === containersCapability && options.containers === false));
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
