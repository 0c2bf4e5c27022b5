/**
 * The storage's own tables: server metadata, the event log and data files. Everything else brings its
 * migrations to `Storage.open` (the runtime's in src/runtime/runtime-migrations.ts, each capability's with its
 * plugin), so that storage knows no layer above it. Version ranges per area keep work on different areas
 * from colliding: 1-9 core, 10-29 runtime, 30-39 http/auth, 40-49 compute, 50-59 containers, 60-64 nostr,
 * 65-69 messaging/peers, 70-74 posix trees (data-file node kinds).
 */
import type { Migration } from './db.js';
import { eventMigrations } from './event-store.js';
import { dataFileMigrations } from './datafiles.js';

const core: Migration[] = [
  {
    version: 1,
    name: 'server metadata',
    up: `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  },
];

export const storageMigrations: Migration[] = [...core, ...eventMigrations, ...dataFileMigrations];
