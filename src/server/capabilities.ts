/**
 * Capabilities as plugins. A capability (budget, compute, containers, nostr) is everything the
 * server needs to know about it: its tables (`migrations`, in its own version range), how to open its
 * engine on the server's storage, what it mounts in every agent's namespace, what it drops when an agent
 * is deleted, and how it stops. The assembly (agent9.ts) iterates a list of them; storage, the runtime
 * and the transports know none of them.
 */
import type { Registry } from 'prom-client';
import { ReadOnly, ReadWrite } from '../fs/access-levels.js';
import { BudgetLedger, budgetMigrations } from '../runtime/budget-ledger.js';
import { registerComputeMetrics } from '../runtime/prometheus-registry.js';
import { runtimeMigrations } from '../runtime/runtime-migrations.js';
import type { Migration } from '../runtime/storage/db.js';
import type { Storage } from '../runtime/storage/index.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import type { ServerMount } from '../mounts/global-view.js';
import type { AgentMount } from '../services/agent-mount.js';
import { budgetService } from '../services/budget-files.js';
import { computeMigrations, computeMount, openComputeEngine, type ComputeEngine } from '../services/compute/index.js';
import { containerMigrations, containersAgentMount, openContainerEngine, type ContainerEngine } from '../services/containers/index.js';
import { NOSTR_MOUNT, NostrEngine, nostrAgentService, nostrMigrations, nostrServerService, type NostrEngineOptions } from '../services/nostr/index.js';

/** What every capability is opened with. */
export interface CapabilityContext {
  /** AGENT9_HOME: config.json is read from here. */
  home: string;
  /** The server's storage, with every plugin's migrations already applied. */
  storage: Storage;
  /** The budget ledger the runtime and every capability reserve from (made by the assembly, served by `budget`). */
  ledger: BudgetLedger;
}

/**
 * One capability. Methods (not function-valued fields) so that a plugin of any engine type fits a
 * `CapabilityPlugin[]` list.
 */
export interface CapabilityPlugin<E = unknown> {
  /** A short name: log lines, metrics labels and errors name the capability by it. */
  readonly name: string;
  /** Its tables; versions in its own range, never renumbered (existing data directories hold them). */
  readonly migrations: readonly Migration[];
  /** Its engine, on the server's storage. A bad config section throws (the server does not start). */
  open(ctx: CapabilityContext): E;
  /** Its entries in every agent's namespace, after the standard services. */
  agentMounts(engine: E): AgentMount[];
  /**
   * Hooks into the agent runtime (optional): a capability that acts for agents (receives messages for
   * their inboxes, signs as them, takes their outbox envelopes, adds a section to their spec) gets the
   * runtime here. The runtime is built after the capabilities (it reserves from the ledger they share);
   * this runs right after, before any tick.
   */
  attach?(engine: E, runtime: AgentRuntime): void;
  /** Its server-level files under `/runtime` (optional; `/runtime/nostr`). */
  serverMounts?(engine: E): ServerMount[];
  /** Drops what it keeps for an agent that was just deleted; a rejection is reported, never swallowed. */
  forgetAgent(engine: E, agentId: string): Promise<void>;
  /** Its figures in the server's metrics registry (optional). */
  registerMetrics?(engine: E, registry: Registry): void;
  /** Background work after open: settling what a previous run left (optional; a rejection is reported). */
  start?(engine: E): Promise<void>;
  /** Stops it (before the runtime stops and the database closes). */
  close(engine: E): Promise<void>;
}

/** /budget: the ledger every capability reserves from, as one file per agent. */
export const budgetCapability: CapabilityPlugin<BudgetLedger> = {
  name: 'budget',
  migrations: budgetMigrations,
  open: (ctx) => ctx.ledger,
  agentMounts: (ledger) => [{ path: '/budget', build: ({ id }) => budgetService(ledger, id), access: ReadWrite, options: { adminWrite: ['/'] } }],
  forgetAgent: async (ledger, agentId) => ledger.forget(agentId),
  // The assembly owns the ledger (the runtime uses it too); closing the database ends it.
  close: async () => undefined,
};

/** /compute: model jobs, from the `compute` section of config.json. */
export const computeCapability: CapabilityPlugin<ComputeEngine> = {
  name: 'compute',
  migrations: computeMigrations,
  open: ({ storage, home, ledger }) => openComputeEngine({ storage, home, ledger }),
  agentMounts: (engine) => [computeMount(engine)],
  forgetAgent: (engine, agentId) => engine.forget(agentId),
  registerMetrics: (engine, registry) => registerComputeMetrics(registry, engine.stats),
  close: (engine) => engine.close(),
};

/** /containers: sandboxed sessions on a container engine, from the `containers` section of config.json. */
export const containersCapability: CapabilityPlugin<ContainerEngine> = {
  name: 'containers',
  migrations: containerMigrations,
  open: ({ storage, home, ledger }) => openContainerEngine({ storage, home, ledger }),
  agentMounts: (engine) => [containersAgentMount(engine)],
  forgetAgent: (engine, agentId) => engine.dropAgent(agentId),
  // Sessions and orphaned containers of a previous run; every /containers operation waits for it.
  start: async (engine) => void (await engine.start()),
  close: (engine) => engine.close(),
};

/**
 * /nostr: agents on Nostr relays (DMs and mentions into their inboxes, outbox `to: "nostr:<npub>"`, the
 * dm and publish call files), from the `nostr` section of config.json and each agent's `nostr` section.
 * `options` override the engine's (tests: short timeouts).
 */
export function nostrCapabilityWith(options: Omit<NostrEngineOptions, 'storage' | 'home'> = {}): CapabilityPlugin<NostrEngine> {
  return {
    name: 'nostr',
    migrations: nostrMigrations,
    open: ({ storage, home }) => new NostrEngine({ storage, home, ...options }),
    attach: (engine, runtime) => engine.attach(runtime),
    agentMounts: (engine) => [{ path: NOSTR_MOUNT, build: ({ id }) => nostrAgentService(engine, id), access: ReadWrite, options: { adminWrite: ['/policy'] } }],
    serverMounts: (engine) => [{ path: '/runtime/nostr', service: nostrServerService(engine), access: ReadOnly }],
    forgetAgent: (engine, agentId) => engine.forget(agentId),
    start: (engine) => engine.start(),
    close: (engine) => engine.close(),
  };
}

export const nostrCapability: CapabilityPlugin<NostrEngine> = nostrCapabilityWith();

/**
 * The optional capabilities of a full server, in the order their mounts appear. `budget` is not among
 * them: the runtime and every other capability need the ledger, so the assembly always opens it first.
 */
export const STANDARD_CAPABILITIES: readonly CapabilityPlugin[] = [computeCapability, containersCapability, nostrCapability];

/**
 * Every table of a server with these capabilities: the runtime's, the budget ledger's and each plugin's.
 * `Storage.open(home, { migrations: serverMigrations() })` opens a data directory the way the server
 * does (tools, tests).
 */
export function serverMigrations(plugins: readonly CapabilityPlugin[] = STANDARD_CAPABILITIES): Migration[] {
  return [...runtimeMigrations, ...budgetCapability.migrations, ...plugins.filter((p) => p !== budgetCapability).flatMap((p) => p.migrations)];
}
