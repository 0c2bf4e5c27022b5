/**
 * The token store on a real database: what a token may mint given its own grant (the rules the HTTP
 * layer cannot reach with non-admin tokens, which may not mint at all), the ttl bound, agent tokens
 * dying with their agent (a trigger in the deleting transaction), and the upgrade that drops tokens of
 * agents already gone.
 */
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { FsError } from '../../src/fs/errors.js';
import type { Grant } from '../../src/fs/types.js';
import { migrate, openDb } from '../../src/runtime/storage/db.js';
import { Storage } from '../../src/runtime/storage/index.js';
import { storageMigrations } from '../../src/runtime/storage/storage-migrations.js';
import { serverMigrations } from '../../src/server/capabilities.js';
import { RuntimeStore } from '../../src/runtime/agent-store/index.js';
import { TokenStore, type Revocation } from '../../src/runtime/token-store.js';
import { openStorage, tempDir } from '../helpers.js';
import { createAgent, openServer } from './support.js';

function refusal(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof FsError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

function withAgents(...ids: string[]): TokenStore {
  const storage = openStorage();
  const store = new RuntimeStore(storage.db);
  for (const id of ids) store.insertAgent({ id, state: 'active', program: '{"type":"echo"}', env: '{}', limits: '{}', schedule: '{}', inbox_policy: '{}', created_at: Date.now() });
  return new TokenStore(storage);
}

describe('minting within a grant', () => {
  // support.ts closes every storage after each test.
  let tokens: TokenStore;
  beforeEach(() => {
    tokens = withAgents('bob', 'alice');
  });
  const grant = (g: Partial<Grant>): Grant => ({ id: 'parent', paths: [], readOnly: false, ...g });

  it('an agent grant mints only for its agent', () => {
    const bob = grant({ agent: 'bob' });
    expect(tokens.create({ agent: 'bob', readOnly: true }, { within: bob }).info.agent).toBe('bob');
    expect(refusal(() => tokens.create({ agent: 'alice' }, { within: bob }))).toMatchObject({ code: 'EACCES', message: expect.stringContaining("agent: token parent is scoped to agent 'bob'") });
    expect(refusal(() => tokens.create({}, { within: bob })).code).toBe('EACCES');
  });

  it('a read-only grant mints only read-only tokens', () => {
    const ro = grant({ readOnly: true });
    expect(tokens.create({ readOnly: true }, { within: ro }).info.readOnly).toBe(true);
    expect(refusal(() => tokens.create({}, { within: ro })).message).toContain('read_only: token parent is read-only');
  });

  it('a path grant mints only paths under its own, compared in its own view', () => {
    const data = grant({ paths: ['/data', '/agents/bob'] });
    expect(tokens.create({ paths: ['/data/sub'] }, { within: data }).info.paths).toEqual(['/data/sub']);
    expect(refusal(() => tokens.create({}, { within: data })).message).toContain('paths: / is outside the paths of token parent (/data, /agents/bob)');
    expect(refusal(() => tokens.create({ paths: ['/database'] }, { within: data })).message).toContain('/database is outside');
    // bob's token sees /agents/bob of the grant's view at its /.
    expect(tokens.create({ agent: 'bob' }, { within: data }).info.agent).toBe('bob');
    expect(tokens.create({ agent: 'bob', paths: ['/memory'] }, { within: data }).info.paths).toEqual(['/memory']);
    expect(refusal(() => tokens.create({ agent: 'alice' }, { within: data })).message).toContain('/agents/alice is outside');
    // Within an agent grant, paths are the agent's own.
    const bobMemory = grant({ agent: 'bob', paths: ['/memory'] });
    expect(tokens.create({ agent: 'bob', paths: ['/memory/x'] }, { within: bobMemory }).info.paths).toEqual(['/memory/x']);
    expect(refusal(() => tokens.create({ agent: 'bob', paths: ['/inbox'] }, { within: bobMemory })).code).toBe('EACCES');
  });

  it('an expiring grant mints tokens that expire no later, by default exactly with it', () => {
    const expiresAt = Date.now() + 3_600_000;
    const short = grant({ expiresAt });
    expect(tokens.create({}, { within: short }).info.expiresAt).toBe(expiresAt);
    expect(tokens.create({ ttlMs: 60_000 }, { within: short }).info.expiresAt).toBeLessThanOrEqual(expiresAt);
    expect(refusal(() => tokens.create({ ttlMs: 7_200_000 }, { within: short }))).toMatchObject({ code: 'EACCES', message: expect.stringContaining('ttl: it would outlive token parent') });
    // Without a grant (the server's own tokens, the admin token) nothing is inherited.
    expect(tokens.create({}).info.expiresAt).toBeUndefined();
  });

  it('a ttl longer than the bound is EINVAL naming the bound; the default bound is 365 days', () => {
    const bounded = new TokenStore(openStorage(), { maxTtlMs: 3_600_000 });
    expect(refusal(() => bounded.create({ ttlMs: 7_200_000 }))).toMatchObject({ code: 'EINVAL', message: expect.stringContaining('ttl: 2h is longer than a token may live, 1h') });
    expect(bounded.create({ ttlMs: 3_600_000 }).info.expiresAt).toBeDefined();
    expect(tokens.maxTtlMs).toBe(365 * 86_400_000);
  });
});

describe('agent tokens', () => {
  it('need an existing agent, and go with it in the deleting transaction; a new agent of the name starts clean', async () => {
    const a9 = await openServer({ scheduler: false, compute: false, containers: false });
    const tokens = new TokenStore(a9.storage);
    expect(refusal(() => tokens.create({ agent: 'ghost' }))).toMatchObject({ code: 'ENOENT', message: expect.stringContaining("no agent 'ghost'") });
    await createAgent(a9, { name: 'carol', program: 'echo' });
    const { token, info } = tokens.create({ agent: 'carol' });
    const kept = tokens.create({ name: 'global' });
    expect(tokens.verify(token).agent).toBe('carol');
    const revoked: Revocation[] = [];
    tokens.onRevoke((r) => revoked.push(r));

    await a9.runtime.agents.delete('carol', '/agents/carol');
    expect(revoked).toEqual([{ agent: 'carol' }]);
    expect(refusal(() => tokens.verify(token)).code).toBe('EAUTH');
    expect(tokens.get(info.id)).toBeUndefined();
    expect(tokens.get(kept.info.id)).toBeDefined();

    await createAgent(a9, { name: 'carol', program: 'echo' });
    expect(tokens.list().filter((t) => t.agent === 'carol')).toEqual([]);
    expect(refusal(() => tokens.verify(token)).code).toBe('EAUTH');
    tokens.close();
  });

  it('the upgrade drops the tokens of agents deleted before this rule, and keeps the others', () => {
    const file = join(tempDir('agent9-tokens-upgrade-'), 'agent9.db');
    const db = openDb(file);
    migrate(db, [...storageMigrations, ...serverMigrations()].filter((m) => m.version <= 30));
    new RuntimeStore(db).insertAgent({ id: 'alive', state: 'active', program: '{"type":"echo"}', env: '{}', limits: '{}', schedule: '{}', inbox_policy: '{}', created_at: 1 });
    const insert = db.prepare("INSERT INTO tokens (id, name, hash, agent, created_at) VALUES (?, ?, '00', ?, 1)");
    insert.run('aaaaaaaaaaaa', 'of alive', 'alive');
    insert.run('bbbbbbbbbbbb', 'of gone', 'gone');
    insert.run('cccccccccccc', 'global', null);
    db.close();

    const storage = Storage.open(file, { migrations: serverMigrations() });
    try {
      const ids = (storage.db.prepare('SELECT id FROM tokens ORDER BY id').all() as { id: string }[]).map((r) => r.id);
      expect(ids).toEqual(['aaaaaaaaaaaa', 'cccccccccccc']);
    } finally {
      storage.close();
    }
  });
});
