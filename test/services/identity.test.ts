/** /identity: persistent keys, call files, SignOnly, and no secret key anywhere in clear. */
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { schnorr } from '@noble/curves/secp256k1.js';
import { createHash } from 'node:crypto';
import * as nip19 from 'nostr-tools/nip19';
import nacl from 'tweetnacl';
import { createAgent, files, openServer } from '../runtime/support.js';
import { expectCode, tempDir } from '../helpers.js';
import { SERVER_KEY_FILE } from '../../src/runtime/keys.js';
import type { FileService } from '../../src/fs/types.js';
import { admin } from '../helpers.js';

async function twoAgents(home = tempDir()) {
  const a9 = await openServer({ home, scheduler: false });
  await createAgent(a9, { name: 'alice', program: 'echo' });
  await createAgent(a9, { name: 'bob', program: 'echo' });
  return { a9, f: files(a9.namespace), home };
}

/** Every file of a namespace, read (streams and call files skipped), recursively. */
async function readEverything(ns: FileService, dir = '/'): Promise<string> {
  let out = '';
  for (const e of await ns.readdir(dir, admin)) {
    const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
    if (e.stat.type === 'dir') out += await readEverything(ns, p);
    else if (e.stat.kind === 'view' || e.stat.kind === 'data' || (e.stat.kind === 'message' && e.stat.mode & 0o444)) {
      out += await files(ns).read(p).catch((err: Error) => err.message);
    }
  }
  return out;
}

describe('/identity', () => {
  it('pubkey and npub are one line each and stay the same across restarts; the server key is 0600', async () => {
    const { a9, f, home } = await twoAgents();
    const pubkey = (await f.read('/agents/alice/identity/pubkey')).trim();
    expect(pubkey).toMatch(/^[0-9a-f]{64}$/);
    const npub = (await f.read('/agents/alice/identity/npub')).trim();
    expect(nip19.decode(npub)).toEqual({ type: 'npub', data: pubkey });
    expect((await f.json<{ pubkey: string }>('/agents/alice/status')).pubkey).toBe(pubkey);
    expect(statSync(join(home, SERVER_KEY_FILE)).mode & 0o777).toBe(0o600);
    await a9.close();
    const again = await openServer({ home, scheduler: false });
    expect((await files(again.namespace).read('/agents/alice/identity/pubkey')).trim()).toBe(pubkey);
  });

  it('a server key others can read makes the server refuse to start', async () => {
    const home = tempDir();
    const a9 = await openServer({ home, scheduler: false });
    await a9.close();
    chmodSync(join(home, SERVER_KEY_FILE), 0o644);
    await expectCode(openServer({ home, scheduler: false }), 'EACCES', 'chmod 600');
    chmodSync(join(home, SERVER_KEY_FILE), 0o600);
    await openServer({ home, scheduler: false });
  });

  it('sign answers a BIP-340 signature over SHA-256(request); verify checks it', async () => {
    const { f } = await twoAgents();
    const pubkey = (await f.read('/agents/alice/identity/pubkey')).trim();
    const sig = (await f.call('/agents/alice/identity/sign', 'hello world')).trim();
    expect(sig).toMatch(/^[0-9a-f]{128}$/);
    const digest = createHash('sha256').update('hello world').digest();
    expect(schnorr.verify(Buffer.from(sig, 'hex'), digest, Buffer.from(pubkey, 'hex'))).toBe(true);
    const verify = (message: string, key = pubkey) => f.call('/agents/bob/identity/verify', JSON.stringify({ pubkey: key, signature: sig, message }));
    expect(await verify('hello world')).toBe('true\n');
    expect(await verify('hello world!')).toBe('false\n');
    const npub = (await f.read('/agents/alice/identity/npub')).trim();
    expect(await verify('hello world', npub)).toBe('true\n');
    await expectCode(f.call('/agents/bob/identity/verify', '{"pubkey": "zz", "signature": "00", "message": "m"}'), 'EINVAL', 'pubkey');
    await expectCode(f.call('/agents/bob/identity/verify', `{"pubkey": "${pubkey}", "message": "m"}`), 'EINVAL', 'signature');
    await expectCode(f.call('/agents/bob/identity/verify', 'not json'), 'EINVAL', '/agents/bob/identity/verify');
  });

  it('encrypt/decrypt: NIP-44 v2 between two agents, ciphertext exactly as encrypt answered it', async () => {
    const { f } = await twoAgents();
    const alice = (await f.read('/agents/alice/identity/pubkey')).trim();
    const bobNpub = (await f.read('/agents/bob/identity/npub')).trim();
    const payload = await f.call('/agents/alice/identity/encrypt', JSON.stringify({ recipient: bobNpub, plaintext: 'secret ünïcode ✓' }));
    expect(payload.trim()).toMatch(/^[A-Za-z0-9+/=]+$/);
    const plain = await f.call('/agents/bob/identity/decrypt', JSON.stringify({ sender: alice, ciphertext: payload }));
    expect(plain).toBe('secret ünïcode ✓');
    // Alice can decrypt her own message to bob too (same conversation key).
    const bob = nip19.decode(bobNpub).data as string;
    expect(await f.call('/agents/alice/identity/decrypt', JSON.stringify({ sender: bob, ciphertext: payload.trim() }))).toBe('secret ünïcode ✓');
    await expectCode(f.call('/agents/bob/identity/decrypt', JSON.stringify({ sender: alice, ciphertext: 'AAAA' })), 'EINVAL', 'ciphertext');
    await expectCode(f.call('/agents/alice/identity/encrypt', JSON.stringify({ recipient: bob, plaintext: '' })), 'EINVAL', 'plaintext');
    await expectCode(f.call('/agents/alice/identity/encrypt', JSON.stringify({ recipient: 'nobody', plaintext: 'x' })), 'EINVAL', 'recipient');
  });

  it('SignOnly: nothing but the six identity files, no writes besides the call files', async () => {
    const { a9 } = await twoAgents();
    const local = files(await a9.agentNamespace('alice'));
    expect((await local.list('/identity')).sort()).toEqual(['decrypt', 'encrypt', 'npub', 'pubkey', 'sign', 'verify']);
    expect(await local.read('/mounts')).toMatch(/^\/identity identity sign-only$/m);
    await expectCode(local.write('/identity/pubkey', 'x'), 'EACCES');
    await expectCode(local.read('/identity/secret'), 'EACCES');
    await expectCode(local.remove('/identity/sign'), 'EACCES');
  });

  it('test_signer_no_key_leak: the secret key is in no read, trace, export, log or database byte in clear', async () => {
    const { a9, f, home } = await twoAgents();
    const alicePub = (await f.read('/agents/alice/identity/pubkey')).trim();
    // Use every operation so that any leak on those paths would show.
    await f.call('/agents/alice/identity/sign', 'm');
    const c = await f.call('/agents/alice/identity/encrypt', JSON.stringify({ recipient: alicePub, plaintext: 'p' }));
    await f.call('/agents/alice/identity/decrypt', JSON.stringify({ sender: alicePub, ciphertext: c }));
    await f.write('/agents/alice/inbox', 'x');
    await f.write('/agents/alice/ctl', 'tick');
    const bundle = await f.read('/agents/alice/export');
    // The secret keys, recovered with the server key the way only the key store may.
    const serverKey = Buffer.from(readFileSync(join(home, SERVER_KEY_FILE), 'utf8').trim(), 'hex');
    const secrets = ['alice', 'bob'].map((id) => {
      const sealed = Buffer.from(a9.runtime.store.getKey(id)!.sealed, 'base64');
      const sk = nacl.secretbox.open(sealed.subarray(24), sealed.subarray(0, 24), serverKey)!;
      return Buffer.from(sk);
    });
    const haystacks: [string, Buffer][] = [
      ['alice namespace', Buffer.from(await readEverything(await a9.agentNamespace('alice')))],
      ['global view', Buffer.from(await readEverything(a9.namespace, '/runtime'))],
      ['export bundle', Buffer.from(bundle)],
      ['trace', Buffer.from(await f.read('/agents/alice/logs/trajectory'))],
    ];
    await a9.close();
    for (const name of readdirSync(home)) {
      const p = join(home, name);
      if (statSync(p).isFile()) haystacks.push([name, readFileSync(p)]);
    }
    expect(haystacks.some(([n]) => n === 'agent9.db')).toBe(true);
    for (const sk of secrets) {
      for (const [name, hay] of haystacks) {
        expect(hay.includes(sk), `raw secret key in ${name}`).toBe(false);
        expect(hay.includes(Buffer.from(sk.toString('hex'))), `hex secret key in ${name}`).toBe(false);
        expect(hay.includes(Buffer.from(sk.toString('base64'))), `base64 secret key in ${name}`).toBe(false);
        expect(hay.includes(Buffer.from(nip19.nsecEncode(Uint8Array.from(sk)))), `nsec in ${name}`).toBe(false);
      }
    }
  });
});
