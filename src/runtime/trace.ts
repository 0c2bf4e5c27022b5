/**
 * Trace events: `data` events at `/logs/trace` in the agent's scope, so `cat logs/trace`, `watch` and SSE
 * all see them, and `recent`/`trajectory` read them back from the event log. Emit inside the
 * transaction of the change they describe.
 */
import type { EventLog } from '../fs/events.js';
import { redactSecrets } from './redact.js';

export const TRACE_PATH = '/logs/trace';

/** One trace event's data: a `type` and its fields. */
export interface TraceData {
  type: string;
  [field: string]: unknown;
}

/** Stores one trace event in the agent's scope, with its secrets redacted (redact.ts): every trace goes through here. */
export function emitTrace(events: EventLog, agentId: string, data: TraceData): void {
  events.emit(agentId, TRACE_PATH, 'data', { data: redactSecrets(data) });
}

export class Tracer {
  constructor(private readonly events: EventLog) {}

  emit(agentId: string, data: TraceData): void {
    emitTrace(this.events, agentId, data);
  }

  /** Ends every reader of the agent's trace stream (the agent is being deleted). */
  end(agentId: string): void {
    this.events.emit(agentId, TRACE_PATH, 'end', { data: { reason: 'agent deleted' } });
  }
}

/** An error as one line for traces and status: the FsError message, or the error's own. */
export function errorText(err: unknown): string {
  const e = err as { message?: unknown } | undefined;
  const text = e && typeof e.message === 'string' ? e.message : String(err);
  return text.length > 4000 ? text.slice(0, 4000) + '...' : text;
}
