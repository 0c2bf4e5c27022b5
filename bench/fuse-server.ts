/**
 * Mount servers for the FUSE bench, each run as a child process of the bench (a process must never
 * touch a mount it serves synchronously):
 *   node dist-bench/bench/fuse-server.js agent9 HOME DIR [--attr S] [--entry S] [--big MiB]
 *     agent9's mount of a namespace with a data tree at /data (and /data/big of MiB MiB when asked)
 *   node dist-bench/bench/fuse-server.js minimal DIR [--attr S] [--entry S] [--page-cache]
 *     the least a fuse-native filesystem can do with the same mount options: constant attributes for
 *     /, /data and /data/big (256 MiB of zeros): the binding's own cost, our baseline
 *     (--page-cache: without direct_io, to check that choice)
 * Prints `{"ready":true}` once mounted; SIGTERM unmounts and exits.
 */
import { createRequire } from 'node:module';
import { Storage } from '../src/runtime/storage/index.js';
import { Namespace } from '../src/fs/namespace.js';
import { mountWithAccess, ReadWrite } from '../src/mounts/access.js';
import { mountNamespace, mountOptionList, unmountOnSignals } from '../src/fuse/index.js';
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

type Cb = (code: number, value?: unknown) => void;

/** The minimal filesystem, straight on fuse-native with the same options (no namespace, no storage). */
function serveMinimal(dir: string): void {
  const Fuse = createRequire(import.meta.url)('fuse-native') as new (mnt: string, ops: object, opts: object) => {
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    _fuseOptions(): string;
  };
  const now = Date.now();
  const dirStat = { mode: 0o40755, uid: 0, gid: 0, size: 0, nlink: 2, blksize: 131072, blocks: 0, atime: now, mtime: now, ctime: now };
  const size = 256 * 1024 * 1024;
  const fileStat = { ...dirStat, mode: 0o100644, nlink: 1, size, blocks: size / 512 };
  const ops = {
    getattr: (path: string, cb: Cb) => {
      if (path === '/' || path === '/data') return cb(0, dirStat);
      if (path === '/data/big') return cb(0, fileStat);
      cb(-2);
    },
    readdir: (path: string, cb: (code: number, names?: string[]) => void) => cb(0, path === '/' ? ['data'] : ['big']),
    open: (_path: string, _flags: number, cb: Cb) => cb(0, 1),
    release: (_path: string, _fd: number, cb: Cb) => cb(0),
    read: (_path: string, _fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
      const n = Math.max(0, Math.min(len, size - pos));
      buf.fill(0, 0, n);
      cb(n);
    },
  };
  const fuse = new Fuse(dir, ops, { timeout: false });
  const options = mountOptionList(timeouts).filter((o) => !(rest.includes('--page-cache') && o === 'direct_io'));
  fuse._fuseOptions = () => '-o' + options.join(',');
  fuse.mount((err) => {
    if (err) {
      process.stderr.write(`mount failed: ${err.message}\n`);
      process.exit(1);
    }
    ready();
  });
  const stop = () => fuse.unmount(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (mode === 'agent9') await serveAgent9(rest[0]!, rest[1]!);
else if (mode === 'minimal') serveMinimal(rest[0]!);
else {
  process.stderr.write('usage: fuse-server.js agent9 HOME DIR | minimal DIR [--attr S] [--entry S] [--big MiB]\n');
  process.exit(2);
}
