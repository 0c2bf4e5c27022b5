/** The kit's parts on a real SQLite storage: what a policy row holds, and what an idempotency key stands for. */
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { IdempotencyJournal } from '../../src/runtime/idempotency-journal.js';
import { IdempotentSubmit, PolicyStore, requestHash, validate, type PolicyCodec } from '../../src/services/kit/index.js';
import { cleanup, openStorage } from '../helpers.js';

afterAll(() => cleanup());

const schema = z.strictObject({ limit: z.number().int().default(16), mode: z.enum(['a', 'b']).default('a') });
type Policy = z.infer<typeof schema>;
const codec: PolicyCodec<Policy> = { parse: (written, path, defaults) => validate(schema, { ...defaults, ...written }, path) };

describe('PolicyStore', () => {
  it('stores what was written and resolves it over the defaults of whichever store reads it', () => {
    const storage = openStorage();
    storage.db.exec('CREATE TABLE kit_policies (agent_id TEXT PRIMARY KEY, policy TEXT NOT NULL, version INTEGER NOT NULL, updated_at INTEGER NOT NULL)');
    const before = new PolicyStore(storage, 'kit_policies', codec, { limit: 16 });
    expect(before.get('a')).toMatchObject({ policy: { limit: 16, mode: 'a' }, version: 0 });
    expect(before.set('a', { mode: 'b' }).policy).toEqual({ limit: 16, mode: 'b' });
    expect(storage.db.prepare('SELECT policy FROM kit_policies').pluck().get()).toBe('{"mode":"b"}');
    const after = new PolicyStore(storage, 'kit_policies', codec, { limit: 4 });
    expect(after.get('a')).toMatchObject({ policy: { limit: 4, mode: 'b' }, version: 1 });
    expect(() => after.set('a', { mode: 'c' })).toThrow(/field 'mode'/);
    expect(() => after.set('a', [1])).toThrow(/must be a JSON object/);
  });
});

describe('IdempotentSubmit', () => {
  it('keys stand for the request as written: key order and ignored fields aside', () => {
    expect(requestHash({ a: 1, b: { c: 2, d: 3 } }, [])).toBe(requestHash({ b: { d: 3, c: 2 }, a: 1 }, []));
    expect(requestHash({ a: 1, wait: true }, ['wait'])).toBe(requestHash({ a: 1 }, ['wait']));
    expect(requestHash({ a: 1 }, [])).not.toBe(requestHash({ a: 2 }, []));
  });

  it('journal first: the first request creates, a repeat replays, another request is EEXIST', () => {
    const storage = openStorage();
    const submits = new IdempotentSubmit({ journal: new IdempotencyJournal(storage), service: 'kit', idField: 'job_id', noun: 'job', ignore: ['wait'] });
    const first = submits.begin('ann', { idempotency_key: 'k', prompt: 'x' });
    expect(submits.earlier(first, '/new')).toBeUndefined();
    let made = 0;
    expect(storage.tx(() => submits.commit(first, '/new', () => `job-${++made}`))).toEqual({ id: 'job-1', replayed: false });
    const again = submits.begin('ann', { prompt: 'x', wait: true, idempotency_key: 'k' });
    expect(submits.earlier(again, '/new')).toBe('job-1');
    expect(storage.tx(() => submits.commit(again, '/new', () => `job-${++made}`))).toEqual({ id: 'job-1', replayed: true });
    expect(made).toBe(1);
    expect(() => submits.earlier(submits.begin('ann', { idempotency_key: 'k', prompt: 'y' }), '/new')).toThrow(/used for a different request \(job job-1\)/);
    // Keys are per agent.
    expect(submits.earlier(submits.begin('bob', { idempotency_key: 'k', prompt: 'y' }), '/new')).toBeUndefined();
  });
});
