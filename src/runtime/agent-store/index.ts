/**
 * The runtime's narrow store: domain operations over SQL, synchronous, no events and no policy. Callers
 * (queues, tick engine, registry) compose them inside `storage.tx()` so that a change commits together
 * with its events. Another backend implements the same methods.
 *
 * Each area's SQL lives in its own small store (agent-table.ts, inbox-table.ts,
 * deadletter-table.ts, outbox-table.ts, goal-table.ts, program-state-table.ts, seen-table.ts,
 * identity-key-table.ts, schedule-table.ts). `RuntimeStore` is their union:
 * one object whose methods are those of every area, so callers hold one store and never mind which
 * area a method belongs to. No two areas may have a method of the same name (checked when it is made).
 */
import type { Db } from '../storage/db.js';
import { AgentTable } from './agent-table.js';
import { DeadletterTable } from './deadletter-table.js';
import { GoalTable } from './goal-table.js';
import { IdentityKeyTable } from './identity-key-table.js';
import { InboxTable } from './inbox-table.js';
import { OutboxTable } from './outbox-table.js';
import { ProgramStateTable } from './program-state-table.js';
import { ScheduleTable } from './schedule-table.js';
import { SeenTable } from './seen-table.js';

export * from './row-types.js';

/** The public methods of an area store (its prepared statements stay private). */
type Methods<T> = { [K in keyof T]: T[K] };

export type RuntimeStore = { readonly db: Db } & Methods<AgentTable> &
  Methods<InboxTable> &
  Methods<DeadletterTable> &
  Methods<OutboxTable> &
  Methods<GoalTable> &
  Methods<ProgramStateTable> &
  Methods<SeenTable> &
  Methods<IdentityKeyTable> &
  Methods<ScheduleTable>;

class AreaUnion {
  constructor(readonly db: Db) {
    const areas = [AgentTable, InboxTable, DeadletterTable, OutboxTable, GoalTable, ProgramStateTable, SeenTable, IdentityKeyTable, ScheduleTable];
    const self = this as unknown as Record<string, unknown>;
    for (const Area of areas) {
      const area = new Area(db) as unknown as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(Area.prototype)) {
        if (name === 'constructor') continue;
        if (name in self) throw new Error(`agent store: two areas define ${name}`);
        self[name] = (area[name] as (...args: unknown[]) => unknown).bind(area);
      }
    }
  }
}

/** `new RuntimeStore(db)`: every area's store on `db`, as one object. */
export const RuntimeStore = AreaUnion as unknown as new (db: Db) => RuntimeStore;
