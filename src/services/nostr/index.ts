/** Nostr for agents: the relay pool, inbound processing into inbox drafts, outbound DMs and events, and what persists. */
export { RelayPool, normalizeRelayUrl, DEFAULT_RESUME_MARGIN_SEC, GIFT_WRAP_BACKDATE_SEC } from './pool.js';
export type { PoolOptions, SubscribeRequest, PoolSubscription, SubscriptionCursor, PublishResult } from './pool.js';
export type { RelayState, RelayStatus } from './connection.js';
export { NostrStore, nostrMigrations, DEFAULT_PROCESSED_RETENTION_MS } from './store.js';
export { NostrInbound, DROP_REASONS } from './inbound.js';
export type { InboxDraft, InboundOutcome, InboundCounts, DropInfo, DropReason, NostrMessage, NostrPayload } from './inbound.js';
export { NostrReceiver, inboxFilters } from './receiver.js';
export type { WatchedAgent } from './receiver.js';
export { parseNostrReachPolicy, OPEN_POLICY, type NostrReachPolicy } from './policy.js';
export { buildDm, buildDmReply, sendDm, publishTemplate, parseEventTemplate, replySchemeFor } from './outbound.js';
export type { DmRequest, DmScheme, DmReport, PublishReport } from './outbound.js';
export { secretKeySigner, type NostrSigner } from './signer.js';
export { NostrEngine, NOSTR_MOUNT, NOSTR_ADDRESS_PREFIX, dmText, type NostrEngineOptions } from './engine.js';
export { loadNostrConfig, parseNostrConfig, type NostrConfig } from './config.js';
export { parseNostrSettings, type NostrAgentSettings } from './settings.js';
export { keyStoreSigner } from './keystore-signer.js';
export { NostrOutgoing, type OutgoingRecord, type SendSchedule } from './outgoing.js';
export { nostrAgentService, nostrServerService, relayFileName } from './service.js';
