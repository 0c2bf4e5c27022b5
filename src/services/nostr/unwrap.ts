/**
 * NIP-59 unwrapping through a signer (nostr-tools' unwrapEvent wants the secret key itself): the gift
 * wrap's content opens to a seal (kind 13) whose signature must verify, the seal's content opens to the
 * rumor (the unsigned message), and the rumor must be by the seal's author (else anyone could seal a
 * message "from" someone else) and carry its true id (the id is the deduplication key).
 */
import { getEventHash, validateEvent, verifyEvent, type Event, type UnsignedEvent } from 'nostr-tools/pure';
import type { NostrSigner } from './signer.js';

export const SEAL_KIND = 13;
export const GIFT_WRAP_KIND = 1059;

export type Rumor = UnsignedEvent & { id: string };

export type UnwrapFailure = 'undecryptable' | 'bad_seal' | 'bad_rumor' | 'seal_pubkey_mismatch';

export type UnwrapResult = { ok: true; seal: Event; rumor: Rumor } | { ok: false; reason: UnwrapFailure; detail: string };

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

const fail = (reason: UnwrapFailure, detail: string): UnwrapResult => ({ ok: false, reason, detail });

async function open(signer: NostrSigner, peer: string, payload: string): Promise<unknown> {
  const text = await signer.nip44Decrypt(peer, payload);
  return JSON.parse(text) as unknown;
}

/** A signed event of the right shape (what verifyEvent may be asked about). */
export function isEventShape(value: unknown): value is Event {
  if (!validateEvent(value)) return false;
  const v = value as Partial<Event>;
  return typeof v.id === 'string' && HEX64.test(v.id) && typeof v.sig === 'string' && HEX128.test(v.sig) && Number.isSafeInteger(v.created_at) && Number.isSafeInteger(v.kind);
}

/** Opens a gift wrap addressed to the signer's identity. The wrap's own signature is the caller's to check first. */
export async function unwrapGiftWrap(wrap: Event, signer: NostrSigner): Promise<UnwrapResult> {
  let seal: unknown;
  try {
    seal = await open(signer, wrap.pubkey, wrap.content);
  } catch (err) {
    return fail('undecryptable', `gift wrap does not open: ${(err as Error).message}`);
  }
  if (!isEventShape(seal) || seal.kind !== SEAL_KIND) return fail('bad_seal', 'the gift wrap does not hold a kind-13 seal');
  if (!verifyEvent(seal)) return fail('bad_seal', 'the seal signature does not verify');
  let rumor: unknown;
  try {
    rumor = await open(signer, seal.pubkey, seal.content);
  } catch (err) {
    return fail('undecryptable', `seal does not open: ${(err as Error).message}`);
  }
  if (!validateEvent(rumor) || !Number.isSafeInteger(rumor.kind) || !Number.isSafeInteger(rumor.created_at)) {
    return fail('bad_rumor', 'the seal does not hold an event');
  }
  if (rumor.pubkey !== seal.pubkey) {
    return fail('seal_pubkey_mismatch', `the message claims author ${rumor.pubkey} but was sealed by ${seal.pubkey}`);
  }
  const id = (rumor as { id?: unknown }).id;
  const hash = getEventHash(rumor);
  if (id !== hash) return fail('bad_rumor', 'the message id is not the hash of its content');
  const { kind, tags, content, created_at, pubkey } = rumor;
  return { ok: true, seal, rumor: { id: hash, kind, tags, content, created_at, pubkey } };
}
