/**
 * An agent's identity as a NostrSigner, over the server's KeyStore: every signature, encryption and
 * decryption opens the sealed key for that one operation and wipes it (src/runtime/keys.ts); the key
 * itself never reaches the Nostr code. An event's id is SHA-256 of its NIP-01 serialisation, and the
 * KeyStore signs SHA-256 of the bytes it is given, so signing the serialisation signs the id.
 */
import { getEventHash, serializeEvent, verifiedSymbol, type EventTemplate, type VerifiedEvent } from 'nostr-tools/pure';
import type { KeyStore } from '../../runtime/keys.js';
import type { NostrSigner } from './signer.js';

const encoder = new TextEncoder();

export function keyStoreSigner(keys: KeyStore, agentId: string, pubkey: string, path = '/identity'): NostrSigner {
  return {
    pubkey,
    signEvent: async (template: EventTemplate): Promise<VerifiedEvent> => {
      const unsigned = { kind: template.kind, tags: template.tags.map((t) => [...t]), content: template.content, created_at: template.created_at, pubkey };
      const id = getEventHash(unsigned);
      const sig = keys.sign(agentId, encoder.encode(serializeEvent(unsigned)), path);
      return { ...unsigned, id, sig, [verifiedSymbol]: true };
    },
    nip44Encrypt: async (peer, plaintext) => keys.encrypt(agentId, peer, plaintext, path),
    nip44Decrypt: async (peer, payload) => keys.decrypt(agentId, peer, payload, path),
    nip04Encrypt: async (peer, plaintext) => keys.nip04Encrypt(agentId, peer, plaintext, path),
    nip04Decrypt: async (peer, payload) => keys.nip04Decrypt(agentId, peer, payload, path),
  };
}
