/** /budget: an agent's limits and windows as one file, admin-write. */
import { describe, expect, it } from 'vitest';
import { admin, expectCode } from '../helpers.js';
import { createAgent, files, openServer } from '../runtime/support.js';

describe('/budget', () => {
  it('reads every window; an admin replaces the limits; scopes left out lose theirs', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const f = files(a9.namespace, admin);
    expect(await f.json('/agents/bob/budget')).toEqual({
      unit: 'micro-USD',
      tick: { limit: null, reserved: 0, spent: 0, remaining: null },
      day: { limit: null, reserved: 0, spent: 0, remaining: null },
      scopes: {},
    });
    await f.write('/agents/bob/budget', JSON.stringify({ tick: 100, day: 1000, scopes: { 'org:acme': { day: 50 }, 'issue:7': { tick: 6 } } }));
    // max_cost covers the input (5) and the one-token answer: since max_cost became a hard cap, less is EDQUOT.
    await f.call('/agents/bob/compute/new', '{"model":"echo","prompt":"hi","max_cost":6,"budget_scope":{"org":"acme","issue":"7"},"options":{"chunk_delay_ms":300}}');
    const doc = await f.json<Record<string, unknown>>('/agents/bob/budget');
    expect(doc).toMatchObject({
      tick: { limit: 100, reserved: 6, remaining: 94 },
      day: { limit: 1000, reserved: 6, remaining: 994 },
      scopes: { 'org:acme': { day: { limit: 50, reserved: 6, remaining: 44 } }, 'issue:7': { tick: { limit: 6, remaining: 0 } } },
    });
    expect(Object.keys(doc['scopes'] as object)).not.toContain('service:compute');
    await expectCode(f.call('/agents/bob/compute/new', '{"model":"echo","prompt":"x","max_cost":6,"budget_scope":{"issue":"7"}}'), 'EDQUOT', 'issue:7 tick window');
    // Write back what was read, with one change: the limits are the `limit` fields.
    (doc['tick'] as { limit: number }).limit = 200;
    delete (doc['scopes'] as Record<string, unknown>)['issue:7'];
    await f.write('/agents/bob/budget', JSON.stringify(doc));
    const after = await f.json<{ tick: { limit: number }; scopes: Record<string, { tick: { limit: number | null } }> }>('/agents/bob/budget');
    expect(after.tick.limit).toBe(200);
    expect(after.scopes['issue:7']!.tick.limit).toBeNull();
    await f.call('/agents/bob/compute/new', '{"model":"echo","prompt":"x","max_cost":6,"budget_scope":{"issue":"7"}}');
    expect(a9.budgets.usage('bob').day.limit).toBe(1000);
  });

  it('is admin-write and rejects bad documents with EINVAL naming the field', async () => {
    const a9 = await openServer({ scheduler: false });
    await createAgent(a9, { name: 'bob', program: 'echo' });
    const own = files(await a9.agentNamespace('bob'), { principal: { id: 'agent:bob', admin: false, agentId: 'bob' } });
    expect(await own.json('/budget')).toMatchObject({ unit: 'micro-USD' });
    await expectCode(own.write('/budget', '{"day": 1}'), 'EACCES', '/budget');
    const f = files(a9.namespace, admin);
    await expectCode(f.write('/agents/bob/budget', '{"day": -1}'), 'EINVAL', "field 'day'");
    await expectCode(f.write('/agents/bob/budget', '{"day": 1.5}'), 'EINVAL', "field 'day'");
    await expectCode(f.write('/agents/bob/budget', '{"scopes": {"team:x": {"day": 1}}}'), 'EINVAL', "invalid budget scope 'team:x'");
    await expectCode(f.write('/agents/bob/budget', '{"scopes": {"service:compute": {"day": 1}}}'), 'EINVAL', 'cannot be set here');
    await expectCode(f.write('/agents/bob/budget', '[1]'), 'EINVAL', '/agents/bob/budget');
    await expectCode(f.write('/agents/bob/budget', 'nope'), 'EINVAL', 'malformed JSON');
    expect(a9.budgets.usage('bob').day.limit).toBeNull();
  });
});
