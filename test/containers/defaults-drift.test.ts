/**
 * Server defaults that change after an agent wrote its policy or submitted with an idempotency key, over
 * the real server: `agentctl serve` in a child process on the real Docker engine, plain HTTP on loopback,
 * config.json rewritten between two starts on the same data directory.
 * - A byte-identical retry of an idempotent submit replays the first session after `default_time_secs`
 *   and `default_memory_mb` changed (CONTRACT sections 17 and 19): the key stands for the request as
 *   written, not the request with the policy's defaults filled in.
 * - A policy stores only what was written: fields it leaves out follow the new defaults.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup } from '../helpers.js';
import { ServedHome } from '../kit/served-home.js';
import { removeLabelled, requireEngine } from './engine.js';

const base = '/agents/demo/containers';
let provider: DockerProvider;
let served: ServedHome;
const req = (path: string, init?: RequestInit) => served.req(path, init);
const json = (path: string, init?: RequestInit) => served.json(path, init);
const restart = (policy: Record<string, unknown>) => served.restart(policy);

beforeAll(async () => {
  provider = await requireEngine();
  served = await ServedHome.start('containers', { default_time_secs: 600, default_memory_mb: 256 });
}, 240_000);

afterAll(async () => {
  await served?.stop();
  // Every container this server made, found by the instance label it recorded.
  const db = new Database(join(served.home, 'agent9.db'), { readonly: true });
  const instance = db.prepare("SELECT value FROM meta WHERE key = 'containers.instance'").pluck().get() as string | undefined;
  db.close();
  if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  cleanup();
});

describe('server defaults changed in config.json', () => {
  // The exact bytes of one request, sent twice: before and after the defaults change.
  const request = '{"commands":["echo same bytes"],"idempotency_key":"drift-1","wait":true}';
  let first: Record<string, unknown>;

  it('before: a policy write of one field, and an idempotent submit', async () => {
    const put = await req(`${base}/policy`, { method: 'PUT', body: '{"max_concurrent":3}' });
    expect(put.status).toBeLessThan(300);
    expect(await json(`${base}/policy`)).toMatchObject({ max_concurrent: 3, default_time_secs: 600, default_memory_mb: 256 });
    first = await json(`${base}/new`, { method: 'POST', body: request });
    expect(first).toMatchObject({ status: 'complete', exit_code: 0, stdout: 'same bytes\n' });
    const status = await json(`${base}/sessions/${first['session_id']}/status`);
    expect(status['limits']).toMatchObject({ time_secs: 600, memory_mb: 256 });
  }, 60_000);

  it('after: a byte-identical retry replays the first session; a different request with the key is EEXIST', async () => {
    await restart({ default_time_secs: 300, default_memory_mb: 128 });
    const again = await json(`${base}/new`, { method: 'POST', body: request });
    expect(again).toMatchObject({ session_id: first['session_id'], status: 'complete', stdout: 'same bytes\n' });
    // Without wait the answer says it is the first request's session.
    const noWait = await json(`${base}/new`, { method: 'POST', body: '{"idempotency_key":"drift-1","commands":["echo same bytes"]}' });
    expect(noWait).toMatchObject({ session_id: first['session_id'], replayed: true });
    const other = await req(`${base}/new`, { method: 'POST', body: '{"commands":["echo other bytes"],"idempotency_key":"drift-1"}' });
    expect(other.status).toBe(409);
    expect(await other.json()).toMatchObject({ error: { code: 'EEXIST' } });
    expect(((await json(`${base}/usage`))['sessions'] as Record<string, number>)['complete']).toBe(1);
  }, 60_000);

  it('after: the policy keeps what was written and follows the new defaults elsewhere', async () => {
    expect(await json(`${base}/policy`)).toMatchObject({ max_concurrent: 3, default_time_secs: 300, default_memory_mb: 128 });
    const fresh = await json(`${base}/new`, { method: 'POST', body: '{"commands":["true"],"wait":true}' });
    const status = await json(`${base}/sessions/${fresh['session_id']}/status`);
    expect(status['limits']).toMatchObject({ time_secs: 300, memory_mb: 128 });
  }, 60_000);
});
