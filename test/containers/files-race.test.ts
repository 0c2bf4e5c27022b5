/**
 * files/ never leaves the workdir, even while the container races it: a loop in the session swaps `sw`
 * between a directory, a link to /etc and a link to /tmp as fast as it can, while reads, writes, lists,
 * stats, mkdirs, deletes and moves of files/sw/... arrive over HTTP (an agent-scoped token), through the
 * in-process namespace and through the FUSE mount. Nothing may come from /etc or /tmp of the container
 * (/etc/passwd starts with `root:`; /tmp holds `victim` and `a`, whose content is `outside`), nothing
 * may land there (/tmp is writable, so an escaped write or mkdir stays there to be seen; the root is
 * read-only, so an escaped write to /etc fails with "read-only": that error alone is an escape).
 */
import { rmdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsError } from '../../src/fs/errors.js';
import type { Cx, FileService } from '../../src/fs/types.js';
import { mountServer, type FuseMount } from '../../src/fuse/index.js';
import { startServer, type RunningServer } from '../../src/http/listener.js';
import { Agent9 } from '../../src/server/agent9.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup, expectCode, tempDir } from '../helpers.js';
import { mountPoint, ok, q } from '../fuse/helpers.js';
import { files } from '../runtime/support.js';
import { BUSYBOX, removeLabelled, requireEngine } from './engine.js';

let provider: DockerProvider;
let a9: Agent9;
let server: RunningServer;
let mount: FuseMount;
let agentToken: string;
let ns: FileService;
let sid: string;
let F: string;
const bob: Cx = { principal: { id: 'agent:bob', admin: false, agentId: 'bob' } };

/**
 * Inside the workdir `sw/passwd` holds `inside\n` (7 bytes), or nothing yet (the loop's `echo >` has
 * created it and not written yet); every other answer came from outside.
 */
const INSIDE = 'inside\n';
const fromInside = (body: string) => body === INSIDE || body === '';
/**
 * Names `sw` may hold when it is the loop's directory (what the loop and these requests put there).
 * `etc` and `tmp`: when the loop's `rm -rf sw` loses a race with a mkdir of sw/newdir, sw stays a
 * directory and `ln -s /etc sw` puts the link *inside* it (sw/etc), which a listing rightly shows (a
 * link's name, never its target's entries); an escape lists the names of /etc or /tmp instead.
 */
const OURS = new Set(['passwd', 'x', 'newdir', 'back', 'etc', 'tmp']);
const SWAP_LOOP = [
  'while :; do',
  // Each state lasts about one fork and exec.
  '  rm -rf sw; mkdir sw; echo inside > sw/passwd; ls sw > /dev/null',
  '  rm -rf sw; ln -s /etc sw',
  '  rm -f sw; ln -s /tmp sw',
  'done',
].join('\n');

function req(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${agentToken}`);
  return fetch(server.url + path, { ...init, headers });
}

async function execWait(command: string): Promise<{ stdout: string; exit_code: number }> {
  const res = await req(`/containers/sessions/${sid}/exec/new`, { method: 'POST', body: JSON.stringify({ command, wait: true }) });
  expect(res.status).toBe(200);
  return (await res.json()) as { stdout: string; exit_code: number };
}

/** Runs `count` calls of `op`, `width` at a time. */
async function many(count: number, op: (i: number) => Promise<void>, width = 8): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) await op(next++);
    }),
  );
}

/** What one racing request gave: its text on success, else the error code and message. */
type Outcome = { ok: true; body: string } | { ok: false; code: string; message: string };

async function viaNs(p: Promise<unknown>): Promise<Outcome> {
  try {
    const v = await p;
    return { ok: true, body: typeof v === 'string' ? v : JSON.stringify(v ?? null) };
  } catch (err) {
    if (!(err instanceof FsError)) throw err;
    return { ok: false, code: err.code, message: err.message };
  }
}

async function viaHttp(path: string, init: RequestInit = {}): Promise<Outcome> {
  const res = await req(path, init);
  const body = await res.text();
  if (res.ok) return { ok: true, body };
  const error = (JSON.parse(body) as { error: { code: string; message: string } }).error;
  return { ok: false, code: error.code, message: error.message };
}

/** Fails on any sign of an escape in the outcomes; returns how many succeeded (to check the race ran). */
function noEscape(outcomes: Outcome[], escaped: (body: string) => boolean): number {
  const bad = outcomes.filter((o) => (o.ok ? escaped(o.body) : /read-only/i.test(o.message)));
  expect(bad.slice(0, 3)).toEqual([]);
  for (const o of outcomes) if (!o.ok) expect(['ENOENT', 'EINVAL', 'ENOTDIR', 'EISDIR', 'EEXIST', 'EAGAIN', 'ENOTEMPTY']).toContain(o.code);
  return outcomes.filter((o) => o.ok).length;
}

async function outsideIsUntouched(): Promise<void> {
  const r = await execWait('ls -A /tmp; cat /tmp/victim /tmp/a; ls /etc | grep -cx -e x -e newdir');
  expect(r.stdout).toBe('a\nvictim\noutsideoutside0\n');
}

beforeAll(async () => {
  provider = await requireEngine();
  const home = tempDir();
  a9 = await Agent9.open({ home, scheduler: false });
  server = await startServer({ home, storage: a9.storage, namespace: a9.namespace, tokens: a9.tokens, registry: a9.registry, port: 0 });
  const admin = { authorization: `Bearer ${server.adminToken}` };
  await fetch(`${server.url}/agents/new`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'bob', program: 'echo' }) });
  const minted = await fetch(`${server.url}/runtime/tokens/new`, { method: 'POST', headers: admin, body: JSON.stringify({ agent: 'bob' }) });
  agentToken = ((await minted.json()) as { token: string }).token;
  ns = await a9.agentNamespace('bob');
  mount = await mountServer(a9, await mountPoint());

  const answer = await req('/containers/new', { method: 'POST', body: JSON.stringify({ image: BUSYBOX, kind: 'interactive' }) });
  sid = ((await answer.json()) as { session_id: string }).session_id;
  F = `/containers/sessions/${sid}/files`;
  expect((await execWait('printf outside > /tmp/victim; printf outside > /tmp/a; ln -s /etc etc; echo in > inside.txt')).exit_code).toBe(0);
  const loop = await req(`/containers/sessions/${sid}/exec/new`, { method: 'POST', body: JSON.stringify({ command: SWAP_LOOP }) });
  expect(loop.status).toBe(200);
}, 60_000);

afterAll(async () => {
  if (mount) {
    await mount.unmount();
    await rmdir(mount.dir).catch(() => undefined);
  }
  await server?.close();
  const instance = a9?.containers?.instanceId;
  await a9?.close();
  if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  cleanup();
});

describe('files/ while the container swaps a directory for links out of the workdir', () => {
  it('1,000 reads and 1,000 writes over HTTP and 1,000 of each in-process: none escapes', async () => {
    const reads: Outcome[] = [];
    const writes: Outcome[] = [];
    await Promise.all([
      many(1000, async () => void reads.push(await viaHttp(`${F}/sw/passwd`))),
      many(1000, async () => void reads.push(await viaNs(files(ns, bob).read(`${F}/sw/passwd`)))),
      many(1000, async (i) => void writes.push(await viaHttp(`${F}/sw/x`, { method: 'PUT', body: `w${i}` }))),
      many(1000, async (i) => void writes.push(await viaNs(files(ns, bob).write(`${F}/sw/x`, `w${i}`)))),
    ]);
    const readOk = noEscape(reads, (body) => !fromInside(body));
    noEscape(writes, () => false);
    // The race really ran: some reads found the directory, others a link out.
    expect(readOk).toBeGreaterThan(0);
    expect(reads.some((o) => !o.ok && o.code === 'EINVAL')).toBe(true);
    await outsideIsUntouched();
  }, 300_000);

  it('lists, stats, mkdirs, deletes and moves: none escapes', async () => {
    const lists: Outcome[] = [];
    const stats: Outcome[] = [];
    const others: Outcome[] = [];
    await Promise.all([
      many(300, async (i) => void lists.push(i % 2 ? await viaHttp(`${F}/sw/`) : await viaNs(files(ns, bob).list(`${F}/sw`)))),
      many(300, async (i) => void stats.push(await viaNs(i % 2 ? files(ns, bob).stat(`${F}/sw/passwd`) : ns.stat(`${F}/sw/passwd`, bob)))),
      many(300, async (i) => void others.push(i % 2 ? await viaHttp(`${F}/sw/newdir/`, { method: 'PUT' }) : await viaNs(ns.mkdir!(`${F}/sw/newdir`, 0o755, bob)))),
      many(300, async (i) => void others.push(i % 2 ? await viaHttp(`${F}/sw/victim`, { method: 'DELETE' }) : await viaNs(ns.remove!(`${F}/sw/victim`, bob)))),
      many(300, async (i) =>
        void others.push(
          i % 2
            ? await viaHttp(`${F}/sw/a`, { method: 'MOVE', headers: { destination: `${F}/back` } })
            : await viaNs(ns.rename!(`${F}/sw/a`, `${F}/back`, bob)),
        ),
      ),
    ]);
    const listed = (body: string): string[] => {
      const v = JSON.parse(body) as (string | { name: string })[];
      return v.map((e) => (typeof e === 'string' ? e : e.name));
    };
    noEscape(lists, (body) => listed(body).some((name) => !OURS.has(name)));
    noEscape(stats, (body) => ![0, INSIDE.length].includes((JSON.parse(body) as { size: number }).size));
    noEscape(others, () => false);
    expect(lists.some((o) => o.ok) && stats.some((o) => o.ok)).toBe(true);
    // Nothing came back from /tmp through the moves.
    const back = await viaNs(files(ns, bob).read(`${F}/back`));
    expect(back.ok ? back.body : '').not.toBe('outside');
    await outsideIsUntouched();
  }, 300_000);

  it('through the FUSE mount: cat and echo > race the same loop and never escape', async () => {
    const M = `${mount.dir}/agents/bob${F}`;
    const out = await ok(
      // Paced over about 3 s: the mount may cache what it looked up for its 1 s entry timeout, so a loop
      // done within one such window can see a single state of sw and never the inside file.
      `for i in $(seq 150); do cat ${q(M)}/sw/passwd 2>&1; echo "w$i" > ${q(M)}/sw/x 2>/dev/null; ls ${q(M)}/sw 2>&1; sleep 0.02; done; true`,
      { timeoutMs: 120_000 },
    );
    expect(out).not.toContain('root:');
    expect(out).not.toMatch(/Read-only|victim|hostname/);
    expect(out).toContain(INSIDE);
    await outsideIsUntouched();
  }, 180_000);

  it('a move whose destination leads outside names the destination', async () => {
    await expectCode(ns.rename!(`${F}/inside.txt`, `${F}/etc/moved`, bob), 'EINVAL', `${F}/etc/moved`);
    const res = await req(`${F}/inside.txt`, { method: 'MOVE', headers: { destination: `${F}/etc/moved` } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { path: string } }).error.path).toBe(`${F}/etc/moved`);
    await expectCode(ns.rename!(`${F}/etc/passwd`, `${F}/moved`, bob), 'EINVAL', `${F}/etc/passwd`);
    expect(await files(ns, bob).read(`${F}/inside.txt`)).toBe('in\n');
  });
});
