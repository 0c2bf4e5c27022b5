/**
 * The mount server of the FUSE bench, run as a child process of the bench (a process must never touch
 * a mount it serves synchronously):
 *   node dist-bench/bench/fuse-server.js agent9 HOME DIR [--attr S] [--entry S] [--big MiB]
 *     agent9's mount of a namespace with a data tree at /data (and /data/big of MiB MiB when asked)
 * Prints `{"ready":true}` once mounted; SIGTERM unmounts and exits.
 */
import { Storage } from '../src/runtime/storage/index.js';
import { Namespace } from '../src/fs/namespace.js';
import { mountWithAccess, ReadWrite } from '../src/mounts/access.js';
import { mountNamespace, unmountOnSignals } from '../src/fuse/index.js';
import type { Cx } from '../src/fs/types.js';
import { serverMigrations } from '../src/server/capabilities.js';

const [mode, ...rest] = process.argv.slice(2);
const num = (name: string): number | undefined => {
  const i = rest.indexOf(name);
  return i >= 0 ? Number(rest[i + 1]) : undefined;
};
const timeouts = { attrTimeout: num('--attr') ?? 1, entryTimeout: num('--entry') ?? 1 };
const ready = () => process.stdout.write(JSON.stringify({ ready: true, pid: process.pid }) + '\n');

async function serveAgent9(home: string, dir: string): Promise<void> {
  const storage = Storage.open(home, { migrations: serverMigrations() });
  const ns = new Namespace({ scope: 'bench', events: storage.events });
  mountWithAccess(ns, '/data', storage.dataTree('bench:data', { scope: 'bench', prefix: '/data' }), ReadWrite);
  const bigMiB = num('--big');
  if (bigMiB) {
    const cx: Cx = { principal: { id: 'bench', admin: true } };
    const piece = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) & 0xff);
    const h = await ns.open('/data/big', { write: true, create: true, truncate: true }, cx);
    for (let i = 0; i < bigMiB; i++) await h.write(piece, i * piece.length);
    await h.close();
  }
  await mountNamespace(ns, dir, timeouts);
  unmountOnSignals(() => {
    storage.close();
    process.exit(0);
  });
  ready();
}

if (mode === 'agent9') await serveAgent9(rest[0]!, rest[1]!);
else {
  process.stderr.write('usage: fuse-server.js agent9 HOME DIR [--attr S] [--entry S] [--big MiB]\n');
  process.exit(2);
}
