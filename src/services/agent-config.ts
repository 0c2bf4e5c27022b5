/**
 * /config: `{name, program, env, limits, schedule}` and the sections of capabilities (`nostr`); writing
 * it (admin) edits the agent, keeping all its state; each top-level field given replaces that field.
 * /export: the agent as one bundle (services/export.ts).
 */
import { SyntheticFs, jsonView, parseJson } from '../fs/synthetic.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import { ExportFile } from './export.js';

export function configService(rt: AgentRuntime, id: string): SyntheticFs {
  return new SyntheticFs(
    jsonView(() => rt.agents.configOf(id, '/'), {
      write: (data) => void rt.agents.editConfig(id, parseJson(data, '/'), '/'),
      mtime: () => rt.store.getAgent(id)?.updated_at ?? Date.now(),
      maxBytes: 1024 * 1024,
    }),
    'config',
  );
}

export function exportService(rt: AgentRuntime, id: string): ExportFile {
  return new ExportFile(rt, id);
}
