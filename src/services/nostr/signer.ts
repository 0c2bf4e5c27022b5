/**
 * What the Nostr modules need from an identity: its public key, event signatures and the two DM
 * encryptions, all behind one interface so that the secret key stays with whoever holds it (the
 * server's KeyStore opens it per operation; the pool, inbound and outbound code never see it).
 */
import { finalizeEvent, getPublicKey, type EventTemplate, type VerifiedEvent } from 'nostr-tools/pure';
import * as nip04 from 'nostr-tools/nip04';
import * as nip44 from 'nostr-tools/nip44';

export interface NostrSigner {
  /** The identity's public key, 64 lowercase hex characters. */
  readonly pubkey: string;
  /** The template signed by this identity (pubkey, id and sig filled in). */
  signEvent(template: EventTemplate): Promise<VerifiedEvent>;
  /** NIP-44 v2 payload of `plaintext` for `peer` (hex pubkey). */
  nip44Encrypt(peer: string, plaintext: string): Promise<string>;
  /** The plaintext of a NIP-44 v2 payload between this identity and `peer`; throws if it does not open. */
  nip44Decrypt(peer: string, payload: string): Promise<string>;
  /** NIP-04 (legacy) ciphertext of `plaintext` for `peer`. */
  nip04Encrypt(peer: string, plaintext: string): Promise<string>;
  nip04Decrypt(peer: string, payload: string): Promise<string>;
}

/** NIP-44 payloads longer than this are refused before any work (a 65,535-byte message is ~87,500). */
export const MAX_NIP44_PAYLOAD = 200_000;

/**
 * A signer over a secret key held in memory: for tests and for outside parties in them, and the
 * reference behaviour a KeyStore-backed signer must match. The key is copied, so the caller may wipe its own.
 */
export function secretKeySigner(secretKey: Uint8Array): NostrSigner {
  const key = Uint8Array.from(secretKey);
  const conversation = new Map<string, Uint8Array>();
  const conversationKey = (peer: string): Uint8Array => {
    let k = conversation.get(peer);
    if (!k) {
      k = nip44.v2.utils.getConversationKey(key, peer);
      // The ECDH is most of a decrypt's cost; keep the keys of recent peers, a bounded number.
      if (conversation.size >= 256) conversation.clear();
      conversation.set(peer, k);
    }
    return k;
  };
  return {
    pubkey: getPublicKey(key),
    signEvent: async (template) => finalizeEvent({ ...template, tags: template.tags.map((t) => [...t]) }, key),
    nip44Encrypt: async (peer, plaintext) => nip44.v2.encrypt(plaintext, conversationKey(peer)),
    nip44Decrypt: async (peer, payload) => {
      if (payload.length > MAX_NIP44_PAYLOAD) throw new Error('NIP-44 payload too long');
      return nip44.v2.decrypt(payload, conversationKey(peer));
    },
    nip04Encrypt: async (peer, plaintext) => nip04.encrypt(key, peer, plaintext),
    nip04Decrypt: async (peer, payload) => nip04.decrypt(key, peer, payload),
  };
}
