/**
 * A bad field reads the same in every service (CONTRACT section 2): over HTTP from `agentctl serve`,
 * an unknown field and a field of the wrong type get EINVAL (400) worded by the one formatter, whether
 * they go to /compute, /containers, a policy, /runtime/tokens or /budget.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { ServedHome } from './served-home.js';

let served: ServedHome;

beforeAll(async () => {
  served = await ServedHome.start('compute', {});
}, 240_000);

afterAll(async () => {
  await served?.stop();
  cleanup();
});

async function einval(method: string, path: string, body: string): Promise<string> {
  const res = await served.req(path, { method, body });
  const answer = (await res.json()) as { error: { code: string; message: string } };
  expect(res.status, `${method} ${path}`).toBe(400);
  expect(answer.error.code).toBe('EINVAL');
  return answer.error.message;
}

describe('validation errors', () => {
  const unknown: [string, string, string][] = [
    ['POST', '/agents/demo/compute/new', '{"model":"echo","prompt":"hi","bogus":1}'],
    ['POST', '/agents/demo/containers/new', '{"commands":["true"],"bogus":1}'],
    ['PUT', '/agents/demo/compute/policy', '{"bogus":1}'],
    ['PUT', '/agents/demo/containers/policy', '{"bogus":1}'],
    ['POST', '/runtime/tokens/new', '{"bogus":1}'],
  ];

  it.each(unknown)('%s %s: an unknown field is named the same way', async (method, path, body) => {
    expect(await einval(method, path, body)).toMatch(/: unknown field 'bogus'$/);
  });

  const wrongType: [string, string, string, string][] = [
    ['POST', '/agents/demo/compute/new', '{"model":"echo","prompt":"hi","max_cost":"lots"}', 'max_cost'],
    ['POST', '/agents/demo/containers/new', '{"commands":["true"],"max_cost":"lots"}', 'max_cost'],
    ['PUT', '/agents/demo/compute/policy', '{"max_concurrent_jobs":"lots"}', 'max_concurrent_jobs'],
    ['PUT', '/agents/demo/containers/policy', '{"max_concurrent":"lots"}', 'max_concurrent'],
    ['POST', '/runtime/tokens/new', '{"read_only":"lots"}', 'read_only'],
    ['PUT', '/agents/demo/budget', '{"day":"lots"}', 'day'],
  ];

  it.each(wrongType)('%s %s: a field of the wrong type is named the same way', async (method, path, body, field) => {
    expect(await einval(method, path, body)).toMatch(new RegExp(`: field '${field}': `));
  });
});
