/**
 * Programs: what an agent runs in a tick. A program gets the tick's triggers and the agent's state and
 * answers a result (new state, outbox messages, next alarm, ...) that the tick engine commits in one
 * transaction. Built in: `echo` and `exec`; servers may register more.
 */
import { z } from 'zod';
import { FsError } from '../../fs/errors.js';
import { describeIssues, RECORD_ID_RE, type AgentConfig, type ProgramSpec, type TickCause, type Trigger } from '../spec.js';

export interface ProgramContext {
  agentId: string;
  tick: number;
  cause: TickCause;
  triggers: readonly Trigger[];
  /** The state the last successful tick left (undefined before the first). */
  state: unknown;
  config: AgentConfig;
  /** Milliseconds since the epoch by which the tick must be done. */
  deadline: number;
  signal: AbortSignal;
  /** Extra environment for processes (AGENT_ROOT or AGENT9_URL + token), from the server's hook. */
  execEnv(): Promise<Record<string, string>>;
  /** A directory the program may use as its working directory. */
  workDir(): Promise<string>;
}

export interface OutboxDraft {
  id?: string;
  to?: string;
  payload: unknown;
  metadata?: Record<string, unknown>;
}

export interface ProgramResult {
  /** The new state; undefined leaves it as it was. */
  state?: unknown;
  /** Envelopes to emit; a string is short for `{payload: {text}}`. */
  outbox?: (OutboxDraft | string)[];
  /** Relative form of next_alarm. */
  alarm_in_ms?: number;
  /** Milliseconds since the epoch; null clears the alarm; undefined keeps it. */
  next_alarm?: number | null;
  /** Go dormant after this tick (wakes on inbox or alarm). */
  hibernate?: boolean;
  kv?: { set?: Record<string, unknown>; delete?: string[] };
  /** Extra trace events (each gets `type: "program"` unless it has a type). */
  trace?: unknown[];
}

export interface Program {
  readonly name: string;
  /** Programs that take time get their tick_start/trigger events committed before they run. */
  readonly live: boolean;
  /** Checks and completes a program spec (`{type, ...options}`); EINVAL naming `path` when wrong. */
  validate(spec: ProgramSpec, path: string): ProgramSpec;
  run(ctx: ProgramContext): Promise<ProgramResult>;
}

const OutboxDraftSchema = z.union([
  z.string().transform((text) => ({ payload: { text } })),
  z
    .object({
      id: z.string().regex(RECORD_ID_RE).optional(),
      to: z.string().min(1).max(200).optional(),
      payload: z.unknown(),
      metadata: z.record(z.string(), z.unknown()).optional(),
    })
    .strict(),
]);

const AlarmSchema = z.union([
  z.number().int().min(0),
  z.iso.datetime({ offset: true }).transform((s) => Date.parse(s)),
  z.null(),
]);

/** The result protocol, as programs (and exec programs' stdout) give it. */
export const ProgramResultSchema = z
  .object({
    state: z.unknown().optional(),
    outbox: z.array(OutboxDraftSchema).max(10_000).optional(),
    next_alarm: AlarmSchema.optional(),
    alarm_in_ms: z.number().int().min(0).optional(),
    hibernate: z.boolean().optional(),
    kv: z
      .object({ set: z.record(z.string().min(1).max(512), z.unknown()).optional(), delete: z.array(z.string()).optional() })
      .strict()
      .optional(),
    trace: z.array(z.unknown()).max(1000).optional(),
  })
  .strict();

/** A result as the engine commits it: validated, text outbox entries expanded, alarm absolute. */
export type NormalizedResult = Omit<ProgramResult, 'outbox' | 'alarm_in_ms'> & { outbox?: OutboxDraft[] };

/** Validates a program's result; `alarm_in_ms` becomes `next_alarm`. EINVAL when malformed. */
export function normalizeResult(raw: unknown, now: number, where: string): NormalizedResult {
  const r = ProgramResultSchema.safeParse(raw ?? {});
  if (!r.success) throw new FsError('EINVAL', where, `bad program result: ${describeIssues(r.error)}`);
  const { alarm_in_ms, ...rest } = r.data;
  const out: NormalizedResult = {};
  if (rest.state !== undefined) out.state = rest.state;
  if (rest.outbox) out.outbox = rest.outbox as OutboxDraft[];
  if (rest.next_alarm !== undefined) out.next_alarm = rest.next_alarm;
  if (alarm_in_ms !== undefined) out.next_alarm = now + alarm_in_ms;
  if (rest.hibernate !== undefined) out.hibernate = rest.hibernate;
  if (rest.kv) {
    out.kv = {};
    if (rest.kv.set) out.kv.set = rest.kv.set;
    if (rest.kv.delete) out.kv.delete = rest.kv.delete;
  }
  if (rest.trace) out.trace = rest.trace;
  return out;
}

export class ProgramRegistry {
  private readonly programs = new Map<string, Program>();

  register(program: Program): this {
    this.programs.set(program.name, program);
    return this;
  }

  get(name: string): Program | undefined {
    return this.programs.get(name);
  }

  names(): string[] {
    return [...this.programs.keys()].sort();
  }

  /** Validates a spec against its program; EINVAL for an unknown program type. */
  validate(spec: ProgramSpec, path: string): ProgramSpec {
    const program = this.programs.get(spec.type);
    if (!program) {
      throw new FsError('EINVAL', path, `bad program: unknown type '${spec.type}' (known: ${this.names().join(', ')})`);
    }
    return program.validate(spec, path);
  }
}
