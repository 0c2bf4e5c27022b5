/** /outbox: the envelopes the agent emitted, oldest first, `<id>.json` each (the newest limits.outbox_max kept). */
import { SyntheticFs, dir, view } from '../fs/synthetic.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';

const JSON_SUFFIX = '.json';

export function outboxService(rt: AgentRuntime, id: string): SyntheticFs {
  return new SyntheticFs(
    dir(
      {},
      {
        dynamic: {
          list: () => rt.store.outboxList(id).map((r) => r.env_id + JSON_SUFFIX),
          get: (name) => {
            if (!name.endsWith(JSON_SUFFIX)) return undefined;
            const row = rt.store.outboxOne(id, name.slice(0, -JSON_SUFFIX.length));
            if (!row) return undefined;
            return view(() => JSON.stringify(JSON.parse(row.body), null, 2) + '\n', { mtime: () => row.created_at, version: () => 1 });
          },
        },
      },
    ),
    'outbox',
  );
}
