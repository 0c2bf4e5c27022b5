/** /status: the agent as JSON, computed at open (every field of CONTRACT.md section 9, from the database). */
import { SyntheticFs, jsonView } from '../fs/synthetic.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import { npubOf } from '../runtime/keys.js';
import type { LifecycleState } from '../runtime/spec.js';
import type { AgentRow } from '../runtime/agent-store/index.js';
import type { MemoryUsage } from '../runtime/quota.js';

export interface AgentStatus {
  id: string;
  name: string;
  pubkey: string | null;
  npub: string | null;
  state: LifecycleState;
  program: string;
  created_at: number;
  updated_at: number;
  last_tick_at: number | null;
  last_tick_cause: string | null;
  last_tick_ms: number | null;
  tick_count: number;
  ticks_failed: number;
  consecutive_failures: number;
  last_error: string | null;
  queue_depth: number;
  deadletter_depth: number;
  next_alarm: number | null;
  next_run: number | null;
  retry_at: number | null;
  counters: Record<string, number>;
  budget?: unknown;
  /** limits.memory_bytes and what counts against it (memory files + work dir). */
  memory: MemoryUsage;
}

/** What happened to an agent's inbox envelopes, counted since it was created. */
export function queueCounters(r: AgentRow): Record<string, number> {
  return {
    enqueued: r.enqueued,
    delivered: r.delivered,
    duplicates: r.duplicates,
    dropped: r.dropped,
    deadlettered: r.deadlettered,
    discarded: r.discarded,
    rejected: r.rejected,
    replayed: r.replayed,
  };
}

export function statusOf(rt: AgentRuntime, id: string, path = '/status'): AgentStatus {
  const agent = rt.agents.require(id, path);
  const r = agent.row;
  const pubkey = rt.keys.pubkey(id) ?? null;
  const status: AgentStatus = {
    id,
    name: id,
    pubkey,
    npub: pubkey ? npubOf(pubkey) : null,
    state: r.state,
    program: agent.program.type,
    created_at: r.created_at,
    updated_at: r.updated_at,
    last_tick_at: r.last_tick_at,
    last_tick_cause: r.last_tick_cause,
    last_tick_ms: r.last_tick_ms,
    tick_count: r.tick_count,
    ticks_failed: r.ticks_failed,
    consecutive_failures: r.consecutive_failures,
    last_error: r.last_error,
    queue_depth: r.queue_depth,
    deadletter_depth: r.deadletter_depth,
    next_alarm: r.next_alarm,
    next_run: r.next_run,
    retry_at: r.retry_at,
    counters: { ...queueCounters(r), messages_out: r.messages_out },
    memory: rt.quota.usage(id),
  };
  const budgets = rt.engine.budgets;
  if (budgets) status.budget = budgets.usage(id);
  return status;
}

export function statusService(rt: AgentRuntime, id: string): SyntheticFs {
  return new SyntheticFs(
    jsonView(() => statusOf(rt, id, '/'), { mtime: () => rt.store.getAgent(id)?.updated_at ?? Date.now() }),
    'status',
  );
}
