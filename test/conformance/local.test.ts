/** The conformance cases in process, straight on the Namespace. */
import { afterAll } from 'vitest';
import { conformance } from './cases.js';
import { buildFixtureWithGoals } from './fixture-goals.js';
import { serviceTransport } from './service.js';
import { admin, cleanup, openStorage } from '../helpers.js';
import type { Namespace } from '../../src/fs/namespace.js';
import type { Transport } from './transport.js';

afterAll(cleanup);

/** Kept for callers of the earlier API; the adapter now lives in service.ts. */
export function localTransport(ns: Namespace): Transport {
  return serviceTransport(ns, admin);
}

conformance('in-process', async () => {
  const storage = openStorage();
  const ns = buildFixtureWithGoals(storage);
  const t = localTransport(ns);
  return { t, feed: (line) => t.write('/svc/feed-ctl', line) };
});
