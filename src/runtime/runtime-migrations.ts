/**
 * The runtime's tables: agents and their queues (10-29; the data quota's usage totals, 12), tokens (30-31), the idempotency journal (41).
 * The budget ledger's tables come with the budget capability (src/server/capabilities.ts). Whoever
 * opens a Storage for the runtime passes these (the server assembly passes them with every plugin's).
 */
import type { Migration } from './storage/db.js';
import { agentStoreMigrations } from './agent-store/schema.js';
import { tokenMigrations } from './token-store.js';
import { journalMigrations } from './idempotency-journal.js';
import { quotaMigrations } from './quota.js';
import { importStagingMigrations } from './import-migrations.js';

export const runtimeMigrations: Migration[] = [...agentStoreMigrations, ...importStagingMigrations, ...quotaMigrations, ...tokenMigrations, ...journalMigrations];
