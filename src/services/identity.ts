/**
 * /identity: the agent's persistent secp256k1 (Nostr) key. Mounted SignOnly: these six files are all
 * there is, and the secret key never leaves the key store.
 * - `pubkey`, `npub`: views (one line);
 * - `sign`: call; the request bytes are the message; answers the BIP-340 signature over SHA-256(message), hex;
 * - `verify`: call; `{pubkey, signature, message}` answers `true` or `false`;
 * - `encrypt`: call; `{recipient, plaintext}` answers the NIP-44 v2 payload (base64);
 * - `decrypt`: call; `{sender, ciphertext}` (ciphertext exactly as encrypt answered) answers the plaintext.
 * Public keys may be 64 hex characters or an npub.
 */
import { FsError } from '../fs/errors.js';
import { SyntheticFs, call, dir, view } from '../fs/synthetic.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';
import { npubOf, parsePubkey, verifySignature } from '../runtime/keys.js';
import { parseJsonObject } from '../runtime/spec.js';

function needString(obj: Record<string, unknown>, field: string, path: string): string {
  const v = obj[field];
  if (typeof v !== 'string') throw new FsError('EINVAL', path, `${field}: required string`);
  return v;
}

export function identityService(rt: AgentRuntime, id: string): SyntheticFs {
  const pubkey = (path: string) => {
    const pk = rt.keys.pubkey(id);
    if (!pk) throw new FsError('ENOENT', path, 'this agent has no identity key');
    return pk;
  };
  return new SyntheticFs(
    dir({
      pubkey: view(() => pubkey('/pubkey') + '\n'),
      npub: view(() => npubOf(pubkey('/npub')) + '\n'),
      sign: call((req) => {
        if (req.length === 0) throw new FsError('EINVAL', '/sign', 'write the message to sign, then read the signature');
        return rt.keys.sign(id, req, '/sign') + '\n';
      }),
      verify: call((req) => {
        const r = parseJsonObject(req, '/verify');
        const pk = parsePubkey(r['pubkey'], '/verify', 'pubkey');
        const signature = needString(r, 'signature', '/verify');
        const message = needString(r, 'message', '/verify');
        return verifySignature(pk, signature, new TextEncoder().encode(message)) ? 'true\n' : 'false\n';
      }),
      encrypt: call((req) => {
        const r = parseJsonObject(req, '/encrypt');
        const recipient = parsePubkey(r['recipient'], '/encrypt', 'recipient');
        return rt.keys.encrypt(id, recipient, needString(r, 'plaintext', '/encrypt'), '/encrypt') + '\n';
      }),
      decrypt: call((req) => {
        const r = parseJsonObject(req, '/decrypt');
        const sender = parsePubkey(r['sender'], '/decrypt', 'sender');
        return rt.keys.decrypt(id, sender, needString(r, 'ciphertext', '/decrypt').trim(), '/decrypt');
      }),
    }),
    'identity',
  );
}
