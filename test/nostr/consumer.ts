/**
 * A consumer as the integration will assemble it (pool, store, inbound, receiver on one SQLite
 * database), with a table standing in for the inbox: `deliver` writes each draft there inside the
 * transaction that records its ids, as the inbox enqueue will. Free of vitest, so that a child process
 * (fixtures/consumer-process.ts) can run one and be killed.
 */
import type { Storage } from '../../src/runtime/storage/index.js';
import { RelayPool, type PoolOptions } from '../../src/services/nostr/pool.js';
import { NostrStore } from '../../src/services/nostr/store.js';
import { NostrInbound, type InboxDraft, type InboundOptions } from '../../src/services/nostr/inbound.js';
import { NostrReceiver } from '../../src/services/nostr/receiver.js';

/** Options that keep tests quick: short backoffs and timeouts. */
export const QUICK: PoolOptions = {
  reconnect: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 },
  publishBackoff: { initialMs: 100, maxMs: 500, factor: 2, jitter: 0.5 },
  connectTimeoutMs: 2000,
  publishTimeoutMs: 3000,
};

export interface ConsumerOptions {
  pool?: PoolOptions;
  inbound?: InboundOptions;
  /** Called inside the delivering transaction, after the draft was written. */
  onDeliver?: (draft: InboxDraft) => void;
}

export interface Consumer {
  storage: Storage;
  store: NostrStore;
  pool: RelayPool;
  inbound: NostrInbound;
  receiver: NostrReceiver;
  /** The drafts delivered (read back from the table they were written to). */
  delivered(): InboxDraft[];
  close(): Promise<void>;
}

export function assembleConsumer(storage: Storage, options: ConsumerOptions = {}): Consumer {
  storage.db.exec('CREATE TABLE IF NOT EXISTS test_inbox (seq INTEGER PRIMARY KEY, agent_id TEXT NOT NULL, id TEXT NOT NULL, draft TEXT NOT NULL)');
  const insert = storage.db.prepare('INSERT INTO test_inbox (agent_id, id, draft) VALUES (?, ?, ?)');
  const store = new NostrStore(storage);
  const pool = new RelayPool({ ...QUICK, ...options.pool });
  const deliver = (d: InboxDraft) => {
    insert.run(d.agentId, d.envelope.id, JSON.stringify(d));
    options.onDeliver?.(d);
  };
  const inbound = new NostrInbound(store, deliver, options.inbound);
  const receiver = new NostrReceiver(pool, inbound, store);
  let closed = false;
  return {
    storage,
    store,
    pool,
    inbound,
    receiver,
    delivered: () => (storage.db.prepare('SELECT draft FROM test_inbox ORDER BY seq').pluck().all() as string[]).map((d) => JSON.parse(d) as InboxDraft),
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.close();
      storage.close();
    },
  };
}
