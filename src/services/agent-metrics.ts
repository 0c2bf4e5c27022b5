/**
 * /metrics: counters as JSON views.
 * - `ticks`: {count, failed, consecutive_failures, last_ms, avg_ms};
 * - `queue`: {depth, max_depth, oldest_age_ms, deadletter_depth, enqueued, delivered, duplicates, dropped,
 *   deadlettered, discarded, rejected, replayed};
 * - `outbox`: {messages_out};
 * - `spend`: the budget ledger's usage, `{tick, day}` each `{limit, reserved, spent, remaining}` in micro-USD.
 */
import { FsError } from '../fs/errors.js';
import { SyntheticFs, dir, jsonView } from '../fs/synthetic.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import type { AgentRow } from '../runtime/agent-store/index.js';
import { queueCounters } from './status.js';

export function metricsService(rt: AgentRuntime, id: string): SyntheticFs {
  const row = (path: string): AgentRow => {
    const r = rt.store.getAgent(id);
    if (!r) throw new FsError('ENOENT', path, `no agent '${id}'`);
    return r;
  };
  return new SyntheticFs(
    dir({
      ticks: jsonView(() => {
        const r = row('/ticks');
        const n = r.tick_count + r.ticks_failed;
        return {
          count: r.tick_count,
          failed: r.ticks_failed,
          consecutive_failures: r.consecutive_failures,
          last_ms: r.last_tick_ms,
          avg_ms: n ? Math.round((r.tick_ms_total / n) * 100) / 100 : null,
        };
      }),
      queue: jsonView(() => {
        const r = row('/queue');
        const oldest = rt.store.inboxOldest(id);
        return {
          depth: r.queue_depth,
          max_depth: rt.queues.policy(id, '/queue').max_depth,
          oldest_age_ms: oldest ? Math.max(0, Date.now() - oldest.created_at) : null,
          deadletter_depth: r.deadletter_depth,
          ...queueCounters(r),
        };
      }),
      outbox: jsonView(() => ({ messages_out: row('/outbox').messages_out })),
    }, {
      dynamic: {
        // Present when the server has a budget ledger.
        list: () => (rt.engine.budgets ? ['spend'] : []),
        get: (name) =>
          name === 'spend' && rt.engine.budgets
            ? jsonView(() => {
                row('/spend');
                return rt.engine.budgets!.usage(id);
              })
            : undefined,
      },
    }),
    'metrics',
  );
}
