/** The rows of the runtime's tables (agent-store/schema.ts), as the area stores read and write them. */
import type { LifecycleState } from '../spec.js';

export interface AgentRow {
  id: string;
  state: LifecycleState;
  program: string;
  env: string;
  limits: string;
  schedule: string;
  inbox_policy: string;
  created_at: number;
  updated_at: number;
  last_tick_at: number | null;
  last_tick_cause: string | null;
  last_tick_ms: number | null;
  last_error: string | null;
  tick_count: number;
  ticks_failed: number;
  consecutive_failures: number;
  tick_ms_total: number;
  queue_depth: number;
  deadletter_depth: number;
  inbox_seq: number;
  inbox_version: number;
  inbox_mtime: number;
  deadletter_seq: number;
  outbox_seq: number;
  seen_seq: number;
  enqueued: number;
  delivered: number;
  duplicates: number;
  dropped: number;
  deadlettered: number;
  discarded: number;
  rejected: number;
  replayed: number;
  messages_out: number;
  next_alarm: number | null;
  next_run: number | null;
  retry_at: number | null;
}

/** One agent's row as the per-agent metrics read it. */
export type AgentFigures = Pick<
  AgentRow,
  'id' | 'state' | 'tick_count' | 'ticks_failed' | 'tick_ms_total' | 'queue_depth' | 'deadletter_depth' | 'enqueued' | 'delivered' | 'messages_out'
>;

export interface TickMeta {
  state: LifecycleState;
  next_alarm: number | null;
  next_run: number | null;
  updated_at: number;
  consecutive_failures: number;
}

export interface InboxMeta {
  state: LifecycleState;
  inbox_policy: string;
  queue_depth: number;
  inbox_seq: number;
  inbox_version: number;
  inbox_mtime: number;
}

/** What a create writes: the row's own columns, the rest take their defaults. */
export type NewAgent = Pick<AgentRow, 'id' | 'state' | 'program' | 'env' | 'limits' | 'schedule' | 'inbox_policy' | 'created_at'>;

export interface QueuedRow {
  seq: number;
  env_id: string;
  sender: string;
  created_at: number;
  body: string;
  attempts: number;
  last_error: string | null;
}

export interface DeadRow {
  seq: number;
  env_id: string;
  body: string;
  reason: string;
  error: string | null;
  attempts: number;
  at: number;
}

export interface OutboxRow {
  seq: number;
  env_id: string;
  body: string;
  created_at: number;
}

export interface GoalRow {
  goal_id: string;
  body: string;
  version: number;
  created_at: number;
  updated_at: number;
}

export interface KeyRow {
  agent_id: string;
  pubkey: string;
  sealed: string;
  key_id: string;
  created_at: number;
}

/** Counter columns a tick or a queue operation may add to. */
export type Counter =
  | 'enqueued'
  | 'delivered'
  | 'duplicates'
  | 'dropped'
  | 'deadlettered'
  | 'discarded'
  | 'rejected'
  | 'replayed'
  | 'messages_out';
