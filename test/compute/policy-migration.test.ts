/**
 * Migration 48 on a database made the way the code before it made one: every migration up to 47 applied,
 * and compute policies stored whole, each written field with every other one filled in from the defaults
 * (what PolicyStore.set stored then). Opening it with this code strips the fields equal to the built-in
 * defaults, so they follow the server defaults from then on; the rest stays as written.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DB_FILE, Storage, migrate, openDb } from '../../src/runtime/storage/index.js';
import { storageMigrations } from '../../src/runtime/storage/storage-migrations.js';
import { serverMigrations } from '../../src/server/capabilities.js';
import { ComputeEngine, LocalEchoProvider, ProviderRegistry, parsePolicy } from '../../src/services/compute/index.js';
import { cleanup, tempDir } from '../helpers.js';

/** What the code before migration 48 stored for a write of `written` (with config.json's `defaults`). */
function storedTheOldWay(written: Record<string, unknown>, defaults: Record<string, unknown> = {}): string {
  return JSON.stringify(parsePolicy(written, '/policy', parsePolicy(defaults, 'config.json compute.policy')));
}

describe('migration 48: compute policies keep only what was written', () => {
  it('strips the stored defaults of an old database; what differed stays; reads follow the new defaults', () => {
    const dir = tempDir('agent9-migration-48-');
    const old = openDb(join(dir, DB_FILE));
    migrate(
      old,
      [...storageMigrations, ...serverMigrations()].filter((m) => m.version < 48),
    );
    const put = old.prepare('INSERT INTO compute_policies (agent_id, policy, version, updated_at) VALUES (?, ?, ?, ?)');
    put.run('alice', storedTheOldWay({ prefer: 'cost' }), 3, 1000);
    // Written equal to a built-in default: a stored row cannot tell, so it is stripped too.
    put.run('bob', storedTheOldWay({ max_concurrent_jobs: 16, blocked_models: ['gpt-*'] }), 1, 2000);
    // Filled in from config.json's policy when written (not a built-in default): it stays.
    put.run('carol', storedTheOldWay({ require_idempotency: true }, { default_model: 'echo' }), 1, 3000);
    put.run('dave', 'not json', 1, 4000);
    old.close();

    const storage = Storage.open(dir, { migrations: serverMigrations() });
    try {
      const rows = Object.fromEntries(
        (storage.db.prepare('SELECT agent_id, policy, version, updated_at FROM compute_policies').all() as { agent_id: string; policy: string; version: number; updated_at: number }[]).map((r) => [
          r.agent_id,
          r,
        ]),
      );
      expect(JSON.parse(rows['alice']!.policy)).toEqual({ prefer: 'cost' });
      expect(rows['alice']).toMatchObject({ version: 3, updated_at: 1000 });
      expect(JSON.parse(rows['bob']!.policy)).toEqual({ blocked_models: ['gpt-*'] });
      expect(JSON.parse(rows['carol']!.policy)).toEqual({ require_idempotency: true, default_model: 'echo' });
      expect(rows['dave']!.policy).toBe('not json');

      // The engine now resolves them over the defaults in force.
      const engine = new ComputeEngine({
        storage,
        providers: new ProviderRegistry([new LocalEchoProvider()]),
        policy: { max_concurrent_jobs: 4, default_timeout_ms: 30_000 },
      });
      expect(engine.policy('alice')).toMatchObject({ prefer: 'cost', max_concurrent_jobs: 4, default_timeout_ms: 30_000 });
      expect(engine.policies.get('alice').version).toBe(3);
      expect(engine.policy('bob')).toMatchObject({ max_concurrent_jobs: 4, blocked_models: ['gpt-*'] });
      expect(engine.policy('carol')).toMatchObject({ require_idempotency: true, default_model: 'echo', max_concurrent_jobs: 4 });
    } finally {
      storage.close();
      cleanup();
    }
  });
});
