/**
 * The fixture's /goals: an agent's goals (files a write creates, validated as a whole, not a data tree),
 * mounted where the conformance cases run. Apart from fixture.ts because it brings the agent runtime,
 * which the FUSE crash tests' child server (test/fuse/fixture-server.ts) need not load.
 */
import { dirname } from 'node:path';
import type { Namespace } from '../../src/fs/namespace.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { AgentRuntime } from '../../src/runtime/agent-runtime.js';
import type { Storage } from '../../src/runtime/storage/index.js';
import { GoalsFs } from '../../src/services/goals.js';
import { buildFixture } from './fixture.js';

/** The agent whose goals the fixture mounts at /goals. */
export const FIXTURE_AGENT = 'fixture-agent';

/** The conformance fixture with /goals. */
export function buildFixtureWithGoals(storage: Storage): Namespace {
  const ns = buildFixture(storage);
  const rt = new AgentRuntime(dirname(storage.file), storage, { scheduler: false });
  if (!rt.agents.has(FIXTURE_AGENT)) rt.agents.create({ name: FIXTURE_AGENT, program: 'echo' }, '/goals');
  mountWithAccess(ns, '/goals', new GoalsFs(rt, FIXTURE_AGENT), ReadWrite);
  return ns;
}
