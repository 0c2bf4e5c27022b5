/**
 * The trace sink of a capability: each submit, completion and failure is a `data` event at the agent's
 * `/logs/trace`, stamped with the service (`source`), the agent and the time. Emit it inside the
 * transaction of the change it describes.
 */
import type { Storage } from '../../runtime/storage/index.js';
import { emitTrace } from '../../runtime/trace.js';

export interface TraceEvent {
  type: string;
  [field: string]: unknown;
}

export type TraceSink = (agentId: string, event: TraceEvent) => void;

/** The default sink: a data event at /logs/trace in the agent's scope (what the logs service streams). */
export function eventLogTrace(storage: Storage, source: string): TraceSink {
  return (agentId, event) => {
    emitTrace(storage.events, agentId, { ...event, source, agent_id: agentId, at: Date.now() });
  };
}
