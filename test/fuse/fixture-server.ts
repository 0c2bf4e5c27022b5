/**
 * A server process for FUSE tests and benches: serves the conformance fixture namespace at a mount point,
 * so the test's own process never touches a mount it serves. Run with the TS loader:
 *   node --import ./test/support/ts-loader.mjs test/fuse/fixture-server.ts HOME MOUNTDIR [--attr-timeout S]
 * Prints one JSON line `{"ready":true,...}` once mounted. Reads commands from stdin, one per line:
 *   feed <text>    a datum (or `end`) for the /svc/feed stream
 *   write <path> <text>   writes a file through the namespace (a change made "elsewhere", like HTTP)
 *   exit           unmounts and exits
 * SIGINT/SIGTERM unmount and exit.
 */
import { createInterface } from 'node:readline';
import { Storage } from '../../src/runtime/storage/index.js';
import { buildFixture } from '../conformance/fixture.js';
import { writeAll } from '../../src/fs/ops.js';
import { mountNamespace, unmountAll, unmountOnSignals } from '../../src/fuse/index.js';
import { serverMigrations } from '../../src/server/capabilities.js';

const [home, dir, ...rest] = process.argv.slice(2);
if (!home || !dir) {
  process.stderr.write('usage: fixture-server.ts HOME MOUNTDIR [--attr-timeout S] [--entry-timeout S]\n');
  process.exit(2);
}
const flag = (name: string) => {
  const i = rest.indexOf(name);
  return i >= 0 ? Number(rest[i + 1]) : undefined;
};

const storage = Storage.open(home, { migrations: serverMigrations() });
const ns = buildFixture(storage);
const admin = { principal: { id: 'admin', admin: true } };
const opts: Parameters<typeof mountNamespace>[2] = {};
const attr = flag('--attr-timeout');
const entry = flag('--entry-timeout');
if (attr !== undefined) opts.attrTimeout = attr;
if (entry !== undefined) opts.entryTimeout = entry;

const mount = await mountNamespace(ns, dir, opts);
unmountOnSignals(() => {
  storage.close();
  process.exit(0);
});
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, dir: mount.dir, options: mount.options }) + '\n');

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const [cmd, ...args] = line.split(' ');
  try {
    if (cmd === 'feed') await writeAll(ns, '/svc/feed-ctl', args.join(' '), admin);
    else if (cmd === 'write') await writeAll(ns, args[0]!, args.slice(1).join(' '), admin);
    else if (cmd === 'exit') break;
    process.stdout.write(JSON.stringify({ ok: cmd }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: (err as Error).message }) + '\n');
  }
}
await unmountAll();
storage.close();
process.exit(0);
