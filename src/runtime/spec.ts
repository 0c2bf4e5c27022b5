/**
 * The shapes users write and read: agent specs and config, limits, schedules, inbox policy, envelopes,
 * goals, triggers. Validated with zod; every failure is EINVAL naming the file and the field.
 */
import { z } from 'zod';
import { FsError } from '../fs/errors.js';
import { parseJson } from '../fs/synthetic.js';

/** Agent ids are lowercase names; `new` and `import` are files of /agents. */
export const AGENT_ID_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const RESERVED_AGENT_IDS: ReadonlySet<string> = new Set(['new', 'import']);

/** Envelope and goal ids are file names: no slash, no leading dot. */
export const RECORD_ID_RE = /^[A-Za-z0-9_][A-Za-z0-9._:@+=-]{0,199}$/;

export function checkAgentId(id: unknown, path: string): string {
  if (typeof id !== 'string' || !AGENT_ID_RE.test(id)) {
    throw new FsError('EINVAL', path, `invalid agent name ${JSON.stringify(id)}: use [a-z0-9][a-z0-9_-]{0,62}`);
  }
  if (RESERVED_AGENT_IDS.has(id)) throw new FsError('EINVAL', path, `'${id}' is reserved; choose another name`);
  return id;
}

/** zod issues as one line: `field.sub: problem; other: problem`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => {
      const where = i.path.length ? i.path.join('.') : '(top level)';
      if (i.code === 'unrecognized_keys') return `${where}: unknown field(s) ${i.keys.map((k) => `'${k}'`).join(', ')}`;
      return `${where}: ${i.message}`;
    })
    .join('; ');
}

export function validate<T>(schema: z.ZodType<T>, value: unknown, path: string, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new FsError('EINVAL', path, `bad ${what}: ${describeIssues(r.error)}`);
  return r.data;
}

export function parseJsonObject(data: Uint8Array | string, path: string): Record<string, unknown> {
  const v = parseJson(data, path);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FsError('EINVAL', path, 'expected a JSON object');
  return v as Record<string, unknown>;
}

// --- limits, schedule, inbox policy ---

export const LimitsSchema = z
  .object({
    /** Envelopes one tick drains at most. */
    batch_size: z.number().int().min(1).max(1000).default(16),
    /** Deadline of one tick (exec programs are killed at it). */
    tick_timeout_ms: z.number().int().min(10).max(3_600_000).default(30_000),
    /** Failed ticks an envelope may be part of before it goes to the deadletter. */
    max_attempts: z.number().int().min(1).max(100).default(3),
    /** Consecutive failed ticks before the agent is marked failed. */
    max_failures: z.number().int().min(1).max(1_000_000).default(10),
    /** First retry delay after a failed tick; doubles per consecutive failure, capped at 60 s. */
    retry_backoff_ms: z.number().int().min(0).max(3_600_000).default(200),
    /** Outbox envelopes kept (oldest dropped beyond). */
    outbox_max: z.number().int().min(1).max(1_000_000).default(1000),
    /** Envelope ids remembered for deduplication. */
    seen_max: z.number().int().min(16).max(1_000_000).default(1024),
    /** Largest program state, as JSON. */
    state_max_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    /** Data quota: bytes of memory files plus the work dir (EDQUOT past it; statfs reports it). Default 1 GiB. */
    memory_bytes: z.number().int().min(0).max(2 ** 50).default(1024 ** 3),
  })
  .strict();
export type Limits = z.infer<typeof LimitsSchema>;

export const ScheduleSchema = z
  .object({
    /** Tick as soon as envelopes arrive (otherwise only manual, alarm and interval ticks drain the inbox). */
    on_message: z.boolean().default(true),
    /** Tick every this many ms while active. */
    interval_ms: z.number().int().min(100).max(366 * 24 * 3600 * 1000).nullable().default(null),
  })
  .strict();
export type Schedule = z.infer<typeof ScheduleSchema>;

export const OVERFLOW_POLICIES = ['reject', 'drop-oldest', 'deadletter'] as const;
export type OverflowPolicy = (typeof OVERFLOW_POLICIES)[number];

export const InboxPolicySchema = z
  .object({
    max_depth: z.number().int().min(1).max(1_000_000).default(1000),
    overflow: z.enum(OVERFLOW_POLICIES).default('reject'),
    deadletter_max: z.number().int().min(1).max(1_000_000).default(100),
  })
  .strict();
export type InboxPolicy = z.infer<typeof InboxPolicySchema>;

// --- programs ---

/** `{type, ...options}`; the program named by `type` validates its options. `"echo"` is short for {type:"echo"}. */
export const ProgramSpecSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { type: v } : v),
  z.looseObject({ type: z.string().min(1).max(64) }),
);
export type ProgramSpec = { type: string } & Record<string, unknown>;

export const EnvSchema = z
  .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names are [A-Za-z_][A-Za-z0-9_]*'), z.string().max(64 * 1024))
  .default({});

// --- goals ---

export const GOAL_STATUSES = ['pending', 'active', 'blocked', 'done', 'failed', 'cancelled'] as const;
export const GoalSchema = z.looseObject({
  description: z.string().min(1).max(100_000),
  priority: z.number().int().min(-1000).max(1000).default(0),
  status: z.enum(GOAL_STATUSES).default('pending'),
});
export type Goal = z.infer<typeof GoalSchema>;

// --- agent spec and config ---

export const AgentSpecSchema = z
  .object({
    name: z.string(),
    program: ProgramSpecSchema,
    env: EnvSchema,
    limits: LimitsSchema.default(LimitsSchema.parse({})),
    schedule: ScheduleSchema.default(ScheduleSchema.parse({})),
    inbox: InboxPolicySchema.default(InboxPolicySchema.parse({})),
    goals: z.array(z.looseObject({ id: z.string().regex(RECORD_ID_RE).optional() })).max(1000).default([]),
  })
  .strict();
export type AgentSpec = z.infer<typeof AgentSpecSchema>;

/** What /agents/<id>/config shows and takes: writing it replaces the fields given, keeping all state. */
export const ConfigEditSchema = z
  .object({
    name: z.string().optional(),
    program: ProgramSpecSchema.optional(),
    env: z.record(z.string(), z.string()).optional(),
    limits: z.record(z.string(), z.unknown()).optional(),
    schedule: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export interface AgentConfig {
  name: string;
  program: ProgramSpec;
  env: Record<string, string>;
  limits: Limits;
  schedule: Schedule;
}

export const DEFAULT_LIMITS: Limits = LimitsSchema.parse({});
export const DEFAULT_SCHEDULE: Schedule = ScheduleSchema.parse({});
export const DEFAULT_INBOX_POLICY: InboxPolicy = InboxPolicySchema.parse({});

// --- envelopes ---

export interface Envelope {
  id: string;
  source: string;
  from: string;
  created_at: number;
  payload: unknown;
  metadata?: Record<string, unknown>;
  /** Outbox envelopes: the agent they are addressed to, when any. */
  to?: string;
}

export const EnvelopeInputSchema = z
  .object({
    id: z.string().regex(RECORD_ID_RE, 'ids are 1-200 characters of [A-Za-z0-9._:@+=-], not starting with . or -').optional(),
    source: z.string().min(1).max(200).optional(),
    from: z.string().min(1).max(200).optional(),
    created_at: z.number().int().min(0).optional(),
    payload: z.unknown(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export const LIFECYCLE_STATES = ['creating', 'active', 'dormant', 'failed', 'terminated'] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

// --- triggers ---

export type Trigger =
  | { type: 'init' }
  | { type: 'message'; envelope_id: string; from: string; source: string; attempt: number; envelope: Envelope }
  | { type: 'manual'; invoked_by: string; reason?: string }
  | { type: 'ctl'; invoked_by: string; reason?: string }
  | { type: 'alarm'; scheduled_at: number; fired_at: number }
  | { type: 'schedule'; interval_ms: number; scheduled_at: number; fired_at: number };

/** Why a tick runs. `message` ticks only drain the inbox; the others add their own trigger. */
export type TickCause =
  | { type: 'message' }
  | { type: 'init' }
  | { type: 'manual'; invoked_by: string; reason?: string }
  | { type: 'ctl'; invoked_by: string; reason?: string }
  | { type: 'alarm'; scheduled_at: number }
  | { type: 'schedule'; interval_ms: number; scheduled_at: number };
