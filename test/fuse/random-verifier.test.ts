/**
 * A random read/write/truncate/mmap verifier against a model (test/fuse/random_ops.py): thousands of
 * operations on one data file, on the server mount and on an --agent mount, as root and as nobody. Every
 * read through a descriptor, a second descriptor or a shared mapping matches the model, and after the
 * last close the server holds exactly the model's bytes (read through the service, as HTTP does).
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll } from '../../src/fs/ops.js';
import type { Cx } from '../../src/fs/types.js';
import { cleanup } from '../helpers.js';
import { ok, PYTHON, q, sh } from './helpers.js';
import { AGENT, as, serverMounts, type ServerMounts } from './server-mounts.js';

const SCRIPT = fileURLToPath(new URL('./random_ops.py', import.meta.url));
const admin: Cx = { principal: { id: 'test', admin: true } };
let s: ServerMounts;

beforeAll(async () => {
  s = await serverMounts();
}, 120_000);

afterAll(async () => {
  await s?.close();
  cleanup();
});

const RUNS = [
  { kind: 0, mount: 'the server mount', user: 'root', ops: 3000, seed: 1 },
  { kind: 1, mount: 'an --agent mount', user: 'root', ops: 3000, seed: 2 },
  { kind: 0, mount: 'the server mount', user: 'nobody', ops: 1500, seed: 3 },
  { kind: 1, mount: 'an --agent mount', user: 'nobody', ops: 1500, seed: 4 },
] as const;

describe('random operations against a model', () => {
  it.each(RUNS)('$mount as $user: $ops operations (seed $seed)', async ({ kind, user, ops, seed }) => {
    const k = s.kinds[kind]!;
    const name = `random-${kind}-${user}`;
    const path = `${k.memory}/pub/${name}`;
    const r = await sh(as(user, `${PYTHON} ${q(SCRIPT)} ${q(path)} ${ops} ${seed}`), { timeoutMs: 240_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^ok \d+ \d+ [0-9a-f]{64}\n$/);
    const [, , size, sha] = r.stdout.trim().split(' ');
    // What the server holds, read as HTTP reads it.
    const held = await readAll(s.a9.namespace, `/agents/${AGENT}/memory/pub/${name}`, admin);
    expect(held.length).toBe(Number(size));
    expect(createHash('sha256').update(held).digest('hex')).toBe(sha);
    await ok(`rm ${q(path)}`);
  }, 300_000);
});
