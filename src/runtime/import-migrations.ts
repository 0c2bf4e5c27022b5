/** The import staging table (migration 11): imports in progress, so that a start after a crash removes what they staged. */
import type { Migration } from './storage/db.js';

export const importStagingMigrations: Migration[] = [
  {
    version: 11,
    name: 'runtime: import staging (imports in progress, removed at start when a crash left them)',
    up: 'CREATE TABLE import_staging (id TEXT PRIMARY KEY, target TEXT, started_at INTEGER NOT NULL);',
  },
];
