/**
 * Every schema migration, by version. Each area owns a range so that work on different areas never
 * collides: 1-9 core, 10-29 runtime, 30-39 http/auth, 40-49 compute, 50-59 containers.
 */
import type { Migration } from './db.js';
import { eventMigrations } from './events.js';
import { dataFileMigrations } from './datafiles.js';
import { runtimeMigrations } from '../store/schema.js';
import { importStagingMigrations } from '../import-migrations.js';
import { budgetMigrations } from '../budgets.js';
import { journalMigrations } from '../journal.js';
import { tokenMigrations } from '../tokens.js';
import { computeMigrations } from '../../services/compute/migrations.js';
import { containerMigrations } from '../../services/containers/migrations.js';

const core: Migration[] = [
  {
    version: 1,
    name: 'server metadata',
    up: `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  },
];

export const migrations: Migration[] = [
  ...core,
  ...eventMigrations,
  ...dataFileMigrations,
  ...runtimeMigrations,
  ...importStagingMigrations,
  ...budgetMigrations,
  ...journalMigrations,
  ...tokenMigrations,
  ...computeMigrations,
  ...containerMigrations,
];
