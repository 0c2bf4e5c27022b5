/**
 * Outbound: event templates signed by an agent's signer, encrypted DMs (NIP-17 gift wraps or legacy
 * NIP-04) and replies in the scheme the sender used, published through the pool with its retries. Each
 * publish answers the event id and every relay's "ok" or reason.
 */
import { getEventHash, type Event, type EventTemplate } from 'nostr-tools/pure';
import { createWrap } from 'nostr-tools/nip59';
import { FsError } from '../../fs/errors.js';
import type { NostrSigner } from './signer.js';
import type { PublishResult, RelayPool } from './pool.js';
import { GIFT_WRAP_BACKDATE_SEC } from './pool.js';
import { CHAT_MESSAGE_KIND, LEGACY_DM_KIND, type NostrMessage } from './inbound.js';
import { SEAL_KIND } from './unwrap.js';
import { nowSeconds } from './timing.js';

export type DmScheme = 'nip17' | 'nip04';

export interface DmRequest {
  /** The recipient's hex pubkey. */
  to: string;
  text: string;
  scheme: DmScheme;
  /** The id of the message this answers (an `e` tag). */
  replyTo?: string;
}

export interface BuiltDm {
  /** What goes to the relays: the gift wrap (NIP-17) or the kind-4 event. */
  event: Event;
  /** The id the recipient sees: the inner message's for NIP-17, the event's for NIP-04. */
  message_id: string;
}

export interface PublishReport {
  event_id: string;
  relays: PublishResult;
}

export interface DmReport extends PublishReport {
  message_id: string;
  scheme: DmScheme;
}

export interface OutboundClock {
  now?: () => number;
  random?: () => number;
}

const MAX_TEMPLATE_TAGS = 2000;
const MAX_CONTENT_BYTES = 256 * 1024;
/** NIP-44 v2 takes 1 to 65,535 bytes; NIP-04 is held to the same. */
const MAX_DM_BYTES = 65_535;
const HEX64 = /^[0-9a-f]{64}$/;

/** `{kind, tags?, content?, created_at?}` checked, with errors that name `path`. */
export function parseEventTemplate(value: unknown, path: string, now: () => number = Date.now): EventTemplate {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FsError('EINVAL', path, 'event template: expected an object {kind, tags, content}');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!['kind', 'tags', 'content', 'created_at'].includes(key)) throw new FsError('EINVAL', path, `event template: unknown field ${JSON.stringify(key)} (use kind, tags, content, created_at)`);
  }
  const kind = v['kind'];
  if (typeof kind !== 'number' || !Number.isInteger(kind) || kind < 0 || kind > 65535) throw new FsError('EINVAL', path, 'event template: kind must be an integer from 0 to 65535');
  const tags = v['tags'] ?? [];
  if (!Array.isArray(tags) || tags.length > MAX_TEMPLATE_TAGS || !tags.every((t) => Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === 'string'))) {
    throw new FsError('EINVAL', path, `event template: tags must be a list (at most ${MAX_TEMPLATE_TAGS}) of non-empty lists of strings`);
  }
  const content = v['content'] ?? '';
  if (typeof content !== 'string') throw new FsError('EINVAL', path, 'event template: content must be a string');
  if (Buffer.byteLength(content) > MAX_CONTENT_BYTES) throw new FsError('EFBIG', path, `event template: content is over ${MAX_CONTENT_BYTES} bytes`);
  const createdAt = v['created_at'] ?? nowSeconds(now());
  if (typeof createdAt !== 'number' || !Number.isSafeInteger(createdAt) || createdAt < 0) throw new FsError('EINVAL', path, 'event template: created_at must be a whole number of seconds');
  return { kind, tags: tags as string[][], content, created_at: createdAt };
}

/** Signs and publishes a template; the answer holds the event id and each relay's "ok" or reason. */
export async function publishTemplate(pool: RelayPool, signer: NostrSigner, template: EventTemplate, relays: readonly string[]): Promise<PublishReport> {
  const event = await signer.signEvent(template);
  return { event_id: event.id, relays: await pool.publish(event, relays, { signer }) };
}

/** The scheme to answer `message` in: NIP-04 for a kind-4 DM, NIP-17 for a gift-wrapped one (and anything else). */
export function replySchemeFor(message: Pick<NostrMessage, 'kind'>): DmScheme {
  return message.kind === LEGACY_DM_KIND ? 'nip04' : 'nip17';
}

function checkDm(request: DmRequest, path: string): void {
  if (!HEX64.test(request.to)) throw new FsError('EINVAL', path, 'dm: the recipient must be a hex public key');
  if (request.text.length === 0) throw new FsError('EINVAL', path, 'dm: the message must not be empty');
  if (Buffer.byteLength(request.text) > MAX_DM_BYTES) throw new FsError('EFBIG', path, `dm: the message is over ${MAX_DM_BYTES} bytes`);
  if (request.replyTo !== undefined && !HEX64.test(request.replyTo)) throw new FsError('EINVAL', path, 'dm: reply_to must be an event id (64 hex characters)');
}

/** The event that carries a DM, encrypted by the signer; for NIP-17 sealed and gift-wrapped with the standard back-dating. */
export async function buildDm(signer: NostrSigner, request: DmRequest, path = '/', clock: OutboundClock = {}): Promise<BuiltDm> {
  checkDm(request, path);
  const now = nowSeconds((clock.now ?? Date.now)());
  const tags = [['p', request.to], ...(request.replyTo ? [['e', request.replyTo]] : [])];
  if (request.scheme === 'nip04') {
    const content = await signer.nip04Encrypt(request.to, request.text);
    const event = await signer.signEvent({ kind: LEGACY_DM_KIND, tags, content, created_at: now });
    return { event, message_id: event.id };
  }
  const unsigned = { kind: CHAT_MESSAGE_KIND, tags, content: request.text, created_at: now, pubkey: signer.pubkey };
  const rumor = { ...unsigned, id: getEventHash(unsigned) };
  const random = clock.random ?? Math.random;
  const seal = await signer.signEvent({
    kind: SEAL_KIND,
    tags: [],
    content: await signer.nip44Encrypt(request.to, JSON.stringify(rumor)),
    // NIP-59: the seal's time is random within the past two days, so it says nothing of when it was sent.
    created_at: Math.round(now - random() * GIFT_WRAP_BACKDATE_SEC),
  });
  return { event: createWrap(seal, request.to), message_id: rumor.id };
}

/** The reply to a received message, in the scheme it came in, naming it with an `e` tag. */
export function buildDmReply(signer: NostrSigner, message: Pick<NostrMessage, 'kind' | 'pubkey' | 'event_id'>, text: string, path = '/', clock: OutboundClock = {}): Promise<BuiltDm> {
  return buildDm(signer, { to: message.pubkey, text, scheme: replySchemeFor(message), replyTo: message.event_id }, path, clock);
}

/**
 * Builds and publishes a DM. A relay that demands AUTH sees the sender's identity on the connection
 * (never in a gift wrap, whose author is a one-time key).
 */
export async function sendDm(pool: RelayPool, signer: NostrSigner, request: DmRequest, relays: readonly string[], path = '/', clock: OutboundClock = {}): Promise<DmReport> {
  const dm = await buildDm(signer, request, path, clock);
  const answers = await pool.publish(dm.event, relays, { signer });
  return { event_id: dm.event.id, message_id: dm.message_id, scheme: request.scheme, relays: answers };
}
