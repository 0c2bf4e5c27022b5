/** The conformance cases in process, straight on the Namespace. */
import { afterAll } from 'vitest';
import { conformance } from './cases.js';
import { buildFixture } from './fixture.js';
import { TransportError, type Transport } from './transport.js';
import { FsError } from '../../src/fs/errors.js';
import { readAll, writeAll, callFile } from '../../src/fs/ops.js';
import { utf8 } from '../../src/fs/bytes.js';
import { admin, cleanup, openStorage } from '../helpers.js';
import type { Namespace } from '../../src/fs/namespace.js';

afterAll(cleanup);

function wrap<T>(p: Promise<T>): Promise<T> {
  return p.catch((err: unknown) => {
    if (err instanceof FsError) throw new TransportError(err.code, err.message);
    throw err;
  });
}

export function localTransport(ns: Namespace): Transport {
  return {
    name: 'in-process',
    admin: true,
    read: (p) => wrap(readAll(ns, p, admin).then(utf8)),
    write: (p, d) => wrap(writeAll(ns, p, d, admin).then(() => undefined)),
    append: (p, d) => wrap(writeAll(ns, p, d, admin, { append: true }).then(() => undefined)),
    call: (p, d) => wrap(callFile(ns, p, d, admin).then(utf8)),
    list: (p) =>
      wrap(ns.readdir(p, admin).then((es) => es.map((e) => ({ name: e.name, type: e.stat.type, size: e.stat.size })))),
    stat: (p) => wrap(ns.stat(p, admin)),
    remove: async (p) => {
      const st = await wrap(ns.stat(p, admin));
      await wrap(ns.remove(p, admin, { dir: st.type === 'dir' }));
    },
    mkdir: (p) => wrap(ns.mkdir(p, 0o755, admin)),
    readStream: (p) => wrap(readAll(ns, p, admin).then(utf8)),
    watch: async (p, from, n, ms = 3000) => {
      const ac = new AbortController();
      const out = [];
      const timer = setTimeout(() => ac.abort(), ms);
      try {
        for await (const ev of ns.watch(p, from, { ...admin, signal: ac.signal })) {
          out.push(ev);
          if (out.length >= n) break;
        }
      } finally {
        clearTimeout(timer);
      }
      return out;
    },
  };
}

conformance('in-process', async () => {
  const storage = openStorage();
  const ns = buildFixture(storage);
  const t = localTransport(ns);
  return { t, feed: (line) => t.write('/svc/feed-ctl', line) };
});
