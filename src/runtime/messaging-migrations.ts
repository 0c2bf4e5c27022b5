/**
 * The tables of messaging between agents (migrations 65-69): each agent's messaging policy (a column of
 * its row, part of its config), the delivery outcome of each outbox envelope, and the notices a sender's
 * next tick receives about deliveries that were refused (`delivery_failed` triggers), with their count
 * on the agent row so the scheduler sees an agent that has one.
 */
import type { Migration } from './storage/db.js';

export const messagingMigrations: Migration[] = [
  {
    version: 65,
    name: 'messaging: per-agent policy (allow, deny, max_hops)',
    up: `ALTER TABLE agents ADD COLUMN messaging TEXT NOT NULL DEFAULT '{}';`,
  },
  {
    version: 66,
    name: 'messaging: delivery outcome of outbox envelopes, delivery_failed notices',
    up: `
      ALTER TABLE outbox ADD COLUMN delivery TEXT;
      ALTER TABLE agents ADD COLUMN notices INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE agent_notices (agent_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (agent_id, seq)) WITHOUT ROWID;`,
  },
];
