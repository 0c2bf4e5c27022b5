/**
 * Export, import and delete the way users do them: `agentctl` as a subprocess and HTTP requests over
 * loopback against `agentctl serve` (agent-scoped tokens where they apply), on a server that is also
 * killed with SIGKILL mid-import. What is on disk is checked directly: the work dirs and the database.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, tempDir } from '../helpers.js';
import { agentctl, ensureBuilt, startServe, type RunOptions, type ServeProcess } from './helpers.js';

let home: string;
let server: ServeProcess;
const run = (argv: string[], options: RunOptions = {}) => agentctl(argv, { timeoutMs: 120_000, ...options, env: { AGENT9_URL: server.url, AGENT9_TOKEN: server.token, ...options.env } });

async function http(method: string, path: string, init: { body?: string | Uint8Array; token?: string } = {}): Promise<Response> {
  return fetch(server.url + path, { method, headers: { authorization: `Bearer ${init.token ?? server.token}` }, ...(init.body !== undefined ? { body: init.body } : {}) });
}

async function ok(r: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const res = await r;
  if (res.code !== 0) throw new Error(`agentctl failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function tickAndWait(id: string): Promise<void> {
  const before = (JSON.parse(await ok(run(['status', id, '--json']))) as { tick_count: number }).tick_count;
  await ok(run(['tick', id]));
  await until(`a tick of ${id}`, async () => {
    const st = JSON.parse(await ok(run(['status', id, '--json']))) as { tick_count: number; ticks_failed: number };
    return st.tick_count > before ? st : undefined;
  });
}

const lines = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown> & { t?: string; path?: string });
const staged = (db: Database.Database) => ({
  registered: db.prepare('SELECT count(*) FROM import_staging').pluck().get() as number,
  nodes: db.prepare("SELECT count(*) FROM data_nodes WHERE tree LIKE 'memory:~import-%'").pluck().get() as number,
  keys: db.prepare("SELECT count(*) FROM agent_keys WHERE agent_id LIKE '~import-%'").pluck().get() as number,
  events: db.prepare("SELECT count(*) FROM events WHERE scope LIKE '~import-%'").pluck().get() as number,
});
const workStagings = () => (existsSync(join(home, 'work')) ? readdirSync(join(home, 'work')).filter((n) => n.startsWith('.import-')) : []);

beforeAll(async () => {
  await ensureBuilt();
  home = tempDir('agent9-export-');
  // One export at a time, so that the bound is seen with two requests.
  writeFileSync(join(home, 'config.json'), JSON.stringify({ exports: { max_concurrent: 1 } }));
  server = await startServe(home);
}, 240_000);

afterAll(async () => {
  await server?.stop('SIGKILL');
  cleanup();
});

describe('delete means gone', () => {
  it('a new agent of the same name sees none of the files an exec program left in its work dir', async () => {
    await ok(run(['agents', 'create', 'wd', '--program', 'exec', '--command', 'mkdir -p sub && echo old > sub/old.txt && echo old > top.txt']));
    await tickAndWait('wd');
    expect(readFileSync(join(home, 'work', 'wd', 'sub', 'old.txt'), 'utf8')).toBe('old\n');
    await ok(run(['agents', 'delete', 'wd']));
    expect(existsSync(join(home, 'work', 'wd'))).toBe(false);
    // The new agent's program reports what its working directory holds.
    await ok(run(['agents', 'create', 'wd', '--program', 'exec', '--command', 'echo "seen:$(ls -A | tr "\\n" " ")"']));
    await tickAndWait('wd');
    const listing = (await (await http('GET', '/agents/wd/outbox/')).json()) as { name: string }[];
    expect(listing.length).toBeGreaterThan(0);
    for (const entry of listing) {
      const env = (await (await http('GET', `/agents/wd/outbox/${entry.name}`)).json()) as { payload: { text: string } };
      expect(env.payload.text.trim()).toBe('seen:');
    }
  });
});

describe('export and import carry the work dir', () => {
  it('round trip through agentctl: files, directories, modes and mtimes; links are neither followed nor kept', async () => {
    const script = [
      'mkdir -p d/e',
      "printf 'hello' > d/e/f.txt",
      'chmod 640 d/e/f.txt',
      'touch -d @1700000000 d/e/f.txt',
      'head -c 500000 /dev/urandom > big.bin',
      'ln -sf /etc/passwd leak',
      'ln -sfn /etc linkdir',
    ].join(' && ');
    await ok(run(['agents', 'create', 'wr', '--program', 'exec', '--command', script]));
    await tickAndWait('wr');
    const bigSum = createHash('sha256').update(readFileSync(join(home, 'work', 'wr', 'big.bin'))).digest('hex');
    // The agent's own token exports it too (GET /export over HTTP), streamed with its length.
    const token = (await ok(run(['token', 'create', '--agent', 'wr']))).trim();
    const own = await http('GET', '/export', { token });
    expect(own.status).toBe(200);
    const ownText = await own.text();
    expect(Number(own.headers.get('content-length'))).toBe(Buffer.byteLength(ownText));
    const work = lines(ownText).filter((r) => r.t === 'work').map((r) => r.path);
    expect(work.sort()).toEqual(['big.bin', 'd', 'd/e', 'd/e/f.txt']);
    expect(ownText).not.toContain(Buffer.from(readFileSync('/etc/passwd')).toString('base64').slice(0, 40));

    const file = join(tempDir(), 'wr.bundle');
    await ok(run(['agents', 'export', 'wr', '-o', file]));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await ok(run(['agents', 'delete', 'wr']));
    expect(existsSync(join(home, 'work', 'wr'))).toBe(false);
    const status = JSON.parse(await ok(run(['agents', 'import', file, '--json']))) as { id: string };
    expect(status.id).toBe('wr');
    const root = join(home, 'work', 'wr');
    expect(readFileSync(join(root, 'd', 'e', 'f.txt'), 'utf8')).toBe('hello');
    expect(statSync(join(root, 'd', 'e', 'f.txt')).mode & 0o777).toBe(0o640);
    expect(Math.round(statSync(join(root, 'd', 'e', 'f.txt')).mtimeMs / 1000)).toBe(1700000000);
    expect(createHash('sha256').update(readFileSync(join(root, 'big.bin'))).digest('hex')).toBe(bigSum);
    expect(existsSync(join(root, 'leak'))).toBe(false);
    expect(() => lstatSync(join(root, 'linkdir'))).toThrow();
    // Under another name: a copy with its own work dir.
    await ok(run(['agents', 'import', file, '--as', 'wr-copy']));
    expect(readFileSync(join(home, 'work', 'wr-copy', 'd', 'e', 'f.txt'), 'utf8')).toBe('hello');
  });
});

describe('export is one consistent snapshot', () => {
  it('while writes go on, the bundle holds memory files as they were at one moment', async () => {
    await ok(run(['agents', 'create', 'snap']));
    // A large file between the two counters makes the export take a while.
    const big = Buffer.alloc(40 * 1024 * 1024, 7);
    expect((await http('PUT', '/agents/snap/memory/m-big.bin', { body: big })).status).toBe(201);
    let stop = false;
    let writes = 0;
    const writer = (async () => {
      // Always a.txt first, then z.txt: in any one moment a is z or z + 1.
      for (let i = 1; !stop; i++) {
        await http('PUT', '/agents/snap/memory/a.txt', { body: String(i) });
        await http('PUT', '/agents/snap/memory/z.txt', { body: String(i) });
        writes++;
      }
    })();
    await until('the writer to start', async () => (writes >= 3 ? true : undefined));
    const during = writes;
    const res = await http('GET', '/agents/snap/export');
    const text = await res.text();
    const afterExport = writes;
    stop = true;
    await writer;
    const recs = lines(text);
    const valueOf = (path: string) => {
      const i = recs.findIndex((r) => r.t === 'memory' && r.path === path);
      return Number(Buffer.from(String(recs[i + 1]!['data']), 'base64').toString());
    };
    const a = valueOf('/a.txt');
    const z = valueOf('/z.txt');
    expect(a - z === 0 || a - z === 1).toBe(true);
    // The writes were not held up by the export.
    expect(afterExport - during).toBeGreaterThan(0);
  }, 120_000);
});

describe('import is atomic, also across kill -9', () => {
  it('the bound on exports is 429 with Retry-After; a server killed mid-import leaves no agent, and the restart removes the staging', async () => {
    await ok(run(['agents', 'create', 'kil']));
    const part = Buffer.alloc(40 * 1024 * 1024);
    for (let i = 0; i < 3; i++) {
      part.fill(i + 1);
      expect((await http('PUT', `/agents/kil/memory/part${i}.bin`, { body: part })).status).toBe(201);
    }
    // One export being read holds the only slot: another is refused until it is closed.
    const first = await http('GET', '/agents/kil/export');
    expect(first.status).toBe(200);
    const second = await http('GET', '/agents/kil/export');
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBe('1');
    expect(((await second.json()) as { error: { code: string; path: string } }).error).toMatchObject({ code: 'EAGAIN', path: '/agents/kil/export' });
    await first.body!.cancel();

    const file = join(tempDir(), 'kil.bundle');
    await until('a free export slot', async () => ((await run(['agents', 'export', 'kil', '-o', file])).code === 0 ? true : undefined));
    await ok(run(['agents', 'delete', 'kil']));

    // The bundle is sent slowly; once part of it is staged, the server is killed.
    const bytes = readFileSync(file);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= bytes.length) return controller.close();
        const n = Math.min(1024 * 1024, bytes.length - sent);
        controller.enqueue(bytes.subarray(sent, sent + n));
        sent += n;
        await new Promise((r) => setTimeout(r, 20));
      },
    });
    const request = fetch(server.url + '/agents/import', { method: 'POST', headers: { authorization: `Bearer ${server.token}` }, body, duplex: 'half' } as RequestInit).catch((err: unknown) => err);
    const db = new Database(join(home, 'agent9.db'), { readonly: true });
    try {
      await until('the import to be staging', async () => (staged(db).nodes > 0 && sent < bytes.length / 2 ? true : undefined));
      expect(staged(db).registered).toBe(1);
      expect(workStagings()).toHaveLength(1);
    } finally {
      db.close();
    }
    await server.stop('SIGKILL');
    expect(await request).toBeInstanceOf(Error);

    server = await startServe(home);
    expect((await http('GET', '/agents/kil/status')).status).toBe(404);
    const agents = (await (await http('GET', '/agents/')).json()) as { name: string }[];
    expect(agents.map((a) => a.name)).not.toContain('kil');
    const after = new Database(join(home, 'agent9.db'), { readonly: true });
    try {
      expect(staged(after)).toEqual({ registered: 0, nodes: 0, keys: 0, events: 0 });
    } finally {
      after.close();
    }
    expect(workStagings()).toEqual([]);
    // The same bundle imports whole afterwards.
    await ok(run(['agents', 'import', file]));
    const back = await http('GET', '/agents/kil/memory/part2.bin');
    expect(Buffer.from(await back.arrayBuffer()).equals(Buffer.alloc(40 * 1024 * 1024, 3))).toBe(true);
  }, 240_000);
});

describe('a hostile bundle writes nothing outside the new work dir', () => {
  it('names with .., absolute paths, NUL and control characters are EINVAL naming /agents/import', async () => {
    await ok(run(['agents', 'create', 'src']));
    const [header] = lines(await (await http('GET', '/agents/src/export')).text());
    const hdr = JSON.stringify({ ...header, agent: { ...(header!['agent'] as object), id: 'evil' } });
    const evilDir = tempDir();
    const names = ['../escape.txt', '../../escape.txt', 'a/../../escape.txt', `${evilDir}/escape.txt`, 'ok/\u0000x', 'new\nline', 'del\u007f', './x', 'a//b'];
    for (const name of names) {
      const body = [hdr, JSON.stringify({ t: 'work', path: name, type: 'file', mode: 0o644, mtime: 0, size: 4 }), JSON.stringify({ t: 'data', data: Buffer.from('evil').toString('base64') }), JSON.stringify({ t: 'end', records: 2 })].join('\n') + '\n';
      const res = await http('POST', '/agents/import', { body });
      expect(res.status, name).toBe(400);
      const err = ((await res.json()) as { error: { code: string; path: string; message: string } }).error;
      expect(err).toMatchObject({ code: 'EINVAL', path: '/agents/import' });
      expect(err.message).toContain('work path');
    }
    const memory = [hdr, JSON.stringify({ t: 'memory', path: '/../../escape.txt', type: 'file', mode: 0o644, mtime: 0, size: 0 }), JSON.stringify({ t: 'end', records: 1 })].join('\n') + '\n';
    expect((await http('PUT', '/agents/import', { body: memory })).status).toBe(400);
    // Nothing anywhere: not beside the work dirs, not in the data dir, not at the absolute path.
    expect(existsSync(join(home, 'escape.txt'))).toBe(false);
    expect(existsSync(join(home, 'work', 'escape.txt'))).toBe(false);
    expect(existsSync(join(evilDir, 'escape.txt'))).toBe(false);
    expect(existsSync(join(home, 'work', 'evil'))).toBe(false);
    expect(workStagings()).toEqual([]);
    expect((await http('GET', '/agents/evil/status')).status).toBe(404);
  }, 60_000);
});
