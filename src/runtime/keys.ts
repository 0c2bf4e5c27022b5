/**
 * Agent identities: one persistent secp256k1 key per agent (Nostr keys, through nostr-tools), sealed at
 * rest with tweetnacl secretbox under the server key `$AGENT9_HOME/server.key` (mode 0600). A secret key
 * is opened only for the duration of one operation and wiped afterwards; it is never returned, logged,
 * traced or exported in clear.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { schnorr } from '@noble/curves/secp256k1.js';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import * as nip19 from 'nostr-tools/nip19';
import * as nip44 from 'nostr-tools/nip44';
import * as nip04 from 'nostr-tools/nip04';
import { FsError } from '../fs/errors.js';
import type { RuntimeStore } from './agent-store/index.js';

export const SERVER_KEY_FILE = 'server.key';

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

/** Reads the server key, creating it (0600) on first start; refuses one that others can read. */
export function loadServerKey(home: string): Uint8Array {
  const file = join(home, SERVER_KEY_FILE);
  try {
    const fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, Buffer.from(randomBytes(32)).toString('hex') + '\n');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    throw new FsError('EACCES', file, `server key is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${file}`);
  }
  const text = readFileSync(file, 'utf8').trim();
  if (!HEX64.test(text)) throw new FsError('EINVAL', file, 'server key must be 64 hex characters');
  return Uint8Array.from(Buffer.from(text, 'hex'));
}

/** A public key given as 64 hex characters or an npub, as hex. */
export function parsePubkey(value: unknown, path: string, field: string): string {
  if (typeof value !== 'string') throw new FsError('EINVAL', path, `${field}: expected a hex public key or an npub`);
  const v = value.trim();
  if (HEX64.test(v.toLowerCase())) return v.toLowerCase();
  if (v.startsWith('npub1')) {
    try {
      const decoded = nip19.decode(v);
      if (decoded.type === 'npub') return decoded.data;
    } catch {
      /* reported below */
    }
  }
  throw new FsError('EINVAL', path, `${field}: not a valid public key (64 hex characters or npub1...)`);
}

export function npubOf(pubkey: string): string {
  return nip19.npubEncode(pubkey);
}

/** The digest `sign` and `verify` use: SHA-256 of the message bytes. */
export function messageDigest(message: Uint8Array): Uint8Array {
  return Uint8Array.from(createHash('sha256').update(message).digest());
}

/** BIP-340 verification of `signature` (128 hex) over SHA-256(message) by `pubkey` (hex). */
export function verifySignature(pubkey: string, signature: string, message: Uint8Array): boolean {
  const sig = signature.trim().toLowerCase();
  if (!HEX128.test(sig)) return false;
  try {
    return schnorr.verify(Buffer.from(sig, 'hex'), messageDigest(message), Buffer.from(pubkey, 'hex'));
  } catch {
    return false;
  }
}

export interface SealedKey {
  pubkey: string;
  /** base64 of nonce || secretbox(secret key). */
  sealed: string;
  /** Which server key sealed it: the first 16 hex characters of SHA-256(server key). */
  key_id: string;
}

export class KeyStore {
  readonly keyId: string;

  constructor(
    private readonly serverKey: Uint8Array,
    private readonly store: RuntimeStore,
  ) {
    this.keyId = createHash('sha256').update(serverKey).digest('hex').slice(0, 16);
  }

  private seal(secret: Uint8Array): string {
    const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
    const box = nacl.secretbox(secret, nonce, this.serverKey);
    const out = new Uint8Array(nonce.length + box.length);
    out.set(nonce);
    out.set(box, nonce.length);
    return Buffer.from(out).toString('base64');
  }

  private unseal(sealed: string, keyId: string, path: string): Uint8Array {
    if (keyId !== this.keyId) {
      throw new FsError('EACCES', path, `identity key was sealed by another server key (${keyId}); this server's is ${this.keyId}`);
    }
    const raw = Uint8Array.from(Buffer.from(sealed, 'base64'));
    const nonce = raw.subarray(0, nacl.secretbox.nonceLength);
    const secret = nacl.secretbox.open(raw.subarray(nacl.secretbox.nonceLength), nonce, this.serverKey);
    if (!secret || secret.length !== 32) throw new FsError('EIO', path, 'identity key does not open with the server key');
    return secret;
  }

  /** Creates and stores a new key for an agent (inside the caller's transaction); returns its pubkey. */
  create(agentId: string, now: number): string {
    const secret = generateSecretKey();
    try {
      const pubkey = getPublicKey(secret);
      this.store.putKey({ agent_id: agentId, pubkey, sealed: this.seal(secret), key_id: this.keyId, created_at: now });
      return pubkey;
    } finally {
      secret.fill(0);
    }
  }

  pubkey(agentId: string): string | undefined {
    return this.store.getKey(agentId)?.pubkey;
  }

  /** The sealed form, for export bundles. */
  exportSealed(agentId: string): SealedKey | undefined {
    const row = this.store.getKey(agentId);
    return row && { pubkey: row.pubkey, sealed: row.sealed, key_id: row.key_id };
  }

  /** Stores a sealed key from a bundle after checking that it opens here and matches its pubkey. */
  importSealed(agentId: string, key: SealedKey, now: number, path: string): void {
    const secret = this.unseal(key.sealed, key.key_id, path);
    try {
      if (getPublicKey(secret) !== key.pubkey) throw new FsError('EINVAL', path, 'identity key does not match its pubkey');
    } finally {
      secret.fill(0);
    }
    this.store.putKey({ agent_id: agentId, pubkey: key.pubkey, sealed: key.sealed, key_id: key.key_id, created_at: now });
  }

  /** Runs `fn` with the agent's secret key, wiping it afterwards. */
  private withSecret<T>(agentId: string, path: string, fn: (secret: Uint8Array) => T): T {
    const row = this.store.getKey(agentId);
    if (!row) throw new FsError('ENOENT', path, 'this agent has no identity key');
    const secret = this.unseal(row.sealed, row.key_id, path);
    try {
      return fn(secret);
    } finally {
      secret.fill(0);
    }
  }

  /** BIP-340 Schnorr signature (hex) over SHA-256(message). */
  sign(agentId: string, message: Uint8Array, path: string): string {
    const digest = messageDigest(message);
    return this.withSecret(agentId, path, (secret) => Buffer.from(schnorr.sign(digest, secret)).toString('hex'));
  }

  /** NIP-44 v2 payload (base64) of `plaintext` for `recipient` (hex pubkey). */
  encrypt(agentId: string, recipient: string, plaintext: string, path: string): string {
    if (plaintext.length === 0) throw new FsError('EINVAL', path, 'plaintext: must not be empty (NIP-44 needs 1 to 65535 bytes)');
    if (Buffer.byteLength(plaintext) > 65535) throw new FsError('EFBIG', path, 'plaintext: NIP-44 takes at most 65535 bytes');
    return this.withSecret(agentId, path, (secret) => {
      const key = nip44.v2.utils.getConversationKey(secret, recipient);
      try {
        return nip44.v2.encrypt(plaintext, key);
      } finally {
        key.fill(0);
      }
    });
  }

  /** The plaintext of a NIP-44 v2 payload that `sender` (hex pubkey) encrypted for this agent. */
  decrypt(agentId: string, sender: string, payload: string, path: string): string {
    if (payload.length > 200_000) throw new FsError('EFBIG', path, 'ciphertext: too long for a NIP-44 payload');
    return this.withSecret(agentId, path, (secret) => {
      const key = nip44.v2.utils.getConversationKey(secret, sender);
      try {
        return nip44.v2.decrypt(payload, key);
      } catch (err) {
        throw new FsError('EINVAL', path, `ciphertext: cannot decrypt (${(err as Error).message})`);
      } finally {
        key.fill(0);
      }
    });
  }

  /** Legacy NIP-04 ciphertext (`<base64>?iv=<base64>`) of `plaintext` for `recipient` (hex pubkey). */
  nip04Encrypt(agentId: string, recipient: string, plaintext: string, path: string): string {
    if (Buffer.byteLength(plaintext) > 65535) throw new FsError('EFBIG', path, 'plaintext: at most 65535 bytes');
    return this.withSecret(agentId, path, (secret) => nip04.encrypt(secret, recipient, plaintext));
  }

  /** The plaintext of a NIP-04 ciphertext that `sender` (hex pubkey) made for this agent. */
  nip04Decrypt(agentId: string, sender: string, payload: string, path: string): string {
    if (payload.length > 200_000) throw new FsError('EFBIG', path, 'ciphertext: too long');
    return this.withSecret(agentId, path, (secret) => {
      try {
        return nip04.decrypt(secret, sender, payload);
      } catch (err) {
        throw new FsError('EINVAL', path, `ciphertext: cannot decrypt (${(err as Error).message})`);
      }
    });
  }
}
