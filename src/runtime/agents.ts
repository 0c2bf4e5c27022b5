/**
 * The agent registry: create, read, edit (keeping all state), lifecycle transitions and delete. Every
 * change commits with its events: `created`/`deleted` of `/agents/<id>` in the server scope, `modified`
 * of `/status` and `/config` in the agent's scope, and a trace event.
 */
import { FsError } from '../fs/errors.js';
import { SERVER_SCOPE } from '../fs/events.js';
import type { Storage } from './storage/index.js';
import type { RuntimeStore, AgentRow } from './agent-store/index.js';
import type { KeyStore } from './keys.js';
import type { Tracer } from './trace.js';
import type { ProgramRegistry } from './programs/index.js';
import { AgentSections, type SectionValues } from './agent-sections.js';
import {
  AgentSpecSchema,
  ConfigEditSchema,
  GoalSchema,
  InboxPolicySchema,
  LimitsSchema,
  ScheduleSchema,
  EnvSchema,
  checkAgentId,
  validate,
  type AgentConfig,
  type InboxPolicy,
  type LifecycleState,
  type Limits,
  type ProgramSpec,
  type Schedule,
} from './spec.js';

/** An agent row with its JSON columns parsed. */
export interface AgentRecord {
  row: AgentRow;
  id: string;
  state: LifecycleState;
  program: ProgramSpec;
  env: Record<string, string>;
  limits: Limits;
  schedule: Schedule;
  inboxPolicy: InboxPolicy;
}

interface ParsedConfig {
  key: string;
  program: ProgramSpec;
  env: Record<string, string>;
  limits: Limits;
  schedule: Schedule;
  inboxPolicy: InboxPolicy;
}

/** Parsed configs by agent, keyed by the raw JSON: ticks and the scheduler read them all the time. */
const configCache = new Map<string, ParsedConfig>();
const CONFIG_CACHE_MAX = 4096;

export function parseAgent(row: AgentRow): AgentRecord {
  const key = row.program + '\u0000' + row.env + '\u0000' + row.limits + '\u0000' + row.schedule + '\u0000' + row.inbox_policy;
  let c = configCache.get(row.id);
  if (!c || c.key !== key) {
    c = {
      key,
      program: JSON.parse(row.program) as ProgramSpec,
      env: JSON.parse(row.env) as Record<string, string>,
      // Parsing through the schemas fills in fields added after the agent was created.
      limits: LimitsSchema.parse(JSON.parse(row.limits)),
      schedule: ScheduleSchema.parse(JSON.parse(row.schedule)),
      inboxPolicy: InboxPolicySchema.parse(JSON.parse(row.inbox_policy)),
    };
    if (configCache.size >= CONFIG_CACHE_MAX) configCache.delete(configCache.keys().next().value as string);
    configCache.set(row.id, c);
  }
  // Copies: callers may keep or change them.
  return {
    row,
    id: row.id,
    state: row.state,
    program: { ...c.program },
    env: { ...c.env },
    limits: { ...c.limits },
    schedule: { ...c.schedule },
    inboxPolicy: { ...c.inboxPolicy },
  };
}

export function configOf(agent: AgentRecord): AgentConfig {
  return { name: agent.id, program: agent.program, env: agent.env, limits: agent.limits, schedule: agent.schedule };
}

export function memoryTree(agentId: string): string {
  return `memory:${agentId}`;
}

export interface RegistryHooks {
  /** The agent may have work now (created, woken, started, schedule changed). */
  changed(agentId: string): void;
  /** The agent is gone: drop cached namespaces, pending work. */
  deleted(agentId: string): void;
  /** Runs `fn` when no tick of the agent is running (and none starts meanwhile). */
  exclusive<T>(agentId: string, fn: () => Promise<T> | T): Promise<T>;
  /** Removes what the agent has outside the database (its work dir); called by delete, no tick running. */
  removeFiles?(agentId: string): Promise<void>;
}

export class AgentRegistry {
  private readonly ids: Set<string>;
  /** Capability fields of the spec and config (`nostr`), stored by their capability with the agent's rows. */
  readonly sections = new AgentSections();

  constructor(
    private readonly storage: Storage,
    private readonly store: RuntimeStore,
    private readonly keys: KeyStore,
    private readonly tracer: Tracer,
    private readonly programs: ProgramRegistry,
    private readonly hooks: RegistryHooks,
  ) {
    this.ids = new Set(store.agentIds());
  }

  /** Whether an agent exists (from memory: no query). */
  has(id: string): boolean {
    return this.ids.has(id);
  }

  list(): string[] {
    return [...this.ids].sort();
  }

  get count(): number {
    return this.ids.size;
  }

  get(id: string): AgentRecord | undefined {
    const row = this.store.getAgent(id);
    return row && parseAgent(row);
  }

  /** The agent, or ENOENT naming `path`. */
  require(id: string, path: string): AgentRecord {
    const agent = this.get(id);
    if (!agent) throw new FsError('ENOENT', path, `no agent '${id}'`);
    return agent;
  }

  private statusChanged(id: string): void {
    this.storage.events.emit(id, '/status', 'modified');
  }

  /** Creates an agent from a spec (`{name, program, env?, limits?, schedule?, inbox?, goals?}`). */
  create(raw: unknown, path: string): AgentRecord {
    const taken = this.sections.take(raw, path);
    const spec = validate(AgentSpecSchema, taken.rest, path, 'agent spec');
    const id = checkAgentId(spec.name, path);
    const program = this.programs.validate(spec.program as ProgramSpec, path);
    const goals = spec.goals.map((g, i) => {
      const { id: goalId, ...body } = g;
      return { id: (goalId as string | undefined) ?? `goal-${i + 1}`, body: validate(GoalSchema, body, path, `goals[${i}]`) };
    });
    const now = Date.now();
    if (this.store.hasAgent(id)) throw new FsError('EEXIST', path, `agent '${id}' already exists`);
    try {
      this.createRows(id, spec, program, goals, taken, now);
    } catch (err) {
      if (!this.store.hasAgent(id)) this.ids.delete(id);
      throw err;
    }
    this.hooks.changed(id);
    this.sections.changed(id, taken);
    return this.require(id, path);
  }

  private createRows(
    id: string,
    spec: ReturnType<typeof AgentSpecSchema.parse>,
    program: ProgramSpec,
    goals: { id: string; body: unknown }[],
    sections: SectionValues,
    now: number,
  ): void {
    this.storage.tx(() => {
      this.store.insertAgent({
        id,
        state: 'creating',
        program: JSON.stringify(program),
        env: JSON.stringify(spec.env),
        limits: JSON.stringify(spec.limits),
        schedule: JSON.stringify(spec.schedule),
        inbox_policy: JSON.stringify(spec.inbox),
        created_at: now,
      });
      if (spec.schedule.interval_ms) this.store.setNextRun(id, now + spec.schedule.interval_ms);
      const pubkey = this.keys.create(id, now);
      for (const g of goals) this.store.goalPut(id, g.id, JSON.stringify(g.body), now);
      this.sections.write(id, sections, now);
      this.storage.events.emit(SERVER_SCOPE, `/agents/${id}`, 'created', { version: 1 });
      this.tracer.emit(id, { type: 'created', program: program.type, pubkey });
      // Known before the events publish (at commit), so watchers of /agents see them.
      this.ids.add(id);
    });
  }

  /** Registers an agent restored from a bundle (the bundle code wrote its rows in `write`). */
  adopt(id: string, write: () => void): void {
    try {
      this.storage.tx(() => {
        write();
        this.storage.events.emit(SERVER_SCOPE, `/agents/${id}`, 'created', { version: 1 });
        this.ids.add(id);
      });
    } catch (err) {
      if (!this.store.hasAgent(id)) this.ids.delete(id);
      throw err;
    }
    this.hooks.changed(id);
  }

  /**
   * Edits the config: each top-level field given replaces that field (name must stay the same); the
   * agent keeps its state, queues, goals, memory and identity.
   */
  editConfig(id: string, raw: unknown, path: string): AgentConfig {
    const agent = this.require(id, path);
    const taken = this.sections.take(raw, path);
    const edit = validate(ConfigEditSchema, taken.rest, path, 'config');
    if (edit.name !== undefined && edit.name !== id) {
      throw new FsError('EINVAL', path, `name: cannot change '${id}' to '${edit.name}' (export and import under the new name instead)`);
    }
    const program = edit.program ? this.programs.validate(edit.program as ProgramSpec, path) : agent.program;
    const env = edit.env ? validate(EnvSchema, edit.env, path, 'config env') : agent.env;
    const limits = edit.limits ? validate(LimitsSchema, edit.limits, path, 'config limits') : agent.limits;
    const schedule = edit.schedule ? validate(ScheduleSchema, edit.schedule, path, 'config schedule') : agent.schedule;
    const now = Date.now();
    this.storage.tx(() => {
      this.store.setConfig(id, JSON.stringify(program), JSON.stringify(env), JSON.stringify(limits), JSON.stringify(schedule), now);
      if (schedule.interval_ms !== agent.schedule.interval_ms) {
        this.store.setNextRun(id, schedule.interval_ms ? now + schedule.interval_ms : null);
      }
      this.sections.write(id, taken, now);
      this.storage.events.emit(id, '/config', 'modified');
      const fields = [...Object.keys(edit).filter((k) => k !== 'name'), ...taken.values.map((v) => v.section.name)];
      this.tracer.emit(id, { type: 'config_changed', fields });
    });
    this.hooks.changed(id);
    this.sections.changed(id, taken);
    return this.configOf(id, path);
  }

  /** What `/config` shows: the runtime's fields and every capability section the agent has. */
  configOf(id: string, path: string): AgentConfig & Record<string, unknown> {
    return { ...configOf(this.require(id, path)), ...this.sections.read(id) };
  }

  setInboxPolicy(id: string, raw: unknown, path: string): InboxPolicy {
    this.require(id, path);
    const policy = validate(InboxPolicySchema, raw, path, 'inbox policy');
    this.storage.tx(() => {
      this.store.setInboxPolicy(id, JSON.stringify(policy), Date.now());
      this.storage.events.emit(id, '/inbox.policy', 'modified');
      this.tracer.emit(id, { type: 'inbox_policy', ...policy });
    });
    return policy;
  }

  /** Moves an agent to `to` when it is in one of `from`; traced. Returns whether it changed. */
  transition(id: string, from: readonly LifecycleState[], to: LifecycleState, path: string, reason: string): boolean {
    let changed = false;
    this.storage.tx(() => {
      const agent = this.store.getAgent(id);
      if (!agent) throw new FsError('ENOENT', path, `no agent '${id}'`);
      if (!from.includes(agent.state) || agent.state === to) return;
      // An agent that never finished a tick is still being created.
      const target = to === 'active' && agent.tick_count === 0 ? 'creating' : to;
      this.store.setState(id, target, Date.now());
      // Starting again starts clean: no pending retry delay, full batches.
      if (target === 'active' || target === 'creating') this.store.updateAgent(id, { retry_at: null, consecutive_failures: 0 });
      this.statusChanged(id);
      this.tracer.emit(id, { type: 'state_change', from: agent.state, to: target, reason });
      changed = true;
    });
    if (changed) this.hooks.changed(id);
    return changed;
  }

  /** Deletes an agent and everything it has, once its running tick (if any) is done. */
  async delete(id: string, path: string): Promise<void> {
    if (!this.has(id)) throw new FsError('ENOENT', path, `no agent '${id}'`);
    await this.hooks.exclusive(id, async () => {
      if (!this.store.hasAgent(id)) throw new FsError('ENOENT', path, `no agent '${id}'`);
      this.storage.tx(() => {
        this.store.deleteAgent(id);
        this.storage.events.emit(SERVER_SCOPE, `/agents/${id}`, 'deleted');
        this.tracer.end(id);
      });
      this.ids.delete(id);
      this.storage.dataFiles.dropTree(memoryTree(id));
      this.storage.eventStore.dropScope(id);
      // Still under the agent's lock: a new agent of the same name cannot tick (and write) before it is gone.
      await this.hooks.removeFiles?.(id);
    });
    this.hooks.deleted(id);
  }
}
