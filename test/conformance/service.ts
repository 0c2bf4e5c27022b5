/** A conformance transport over any FileService (the Namespace in process, the HTTP client, ...). */
import { FsError } from '../../src/fs/errors.js';
import { readAll, writeAll, callFile } from '../../src/fs/ops.js';
import { utf8 } from '../../src/fs/bytes.js';
import type { Cx, FileService, FsEvent } from '../../src/fs/types.js';
import { TransportError, type Transport } from './transport.js';

function wrap<T>(p: Promise<T>): Promise<T> {
  return p.catch((err: unknown) => {
    if (err instanceof FsError) throw new TransportError(err.code, err.message);
    throw err;
  });
}

export function serviceTransport(fs: FileService, cx: Cx, name = 'in-process', admin = true): Transport {
  return {
    name,
    admin,
    read: (p) => wrap(readAll(fs, p, cx).then(utf8)),
    write: (p, d) => wrap(writeAll(fs, p, d, cx).then(() => undefined)),
    append: (p, d) => wrap(writeAll(fs, p, d, cx, { append: true }).then(() => undefined)),
    call: (p, d) => wrap(callFile(fs, p, d, cx).then(utf8)),
    list: (p) =>
      wrap(fs.readdir(p, cx).then((es) => es.map((e) => ({ name: e.name, type: e.stat.type, size: e.stat.size })))),
    stat: (p) => wrap(fs.stat(p, cx)),
    remove: async (p) => {
      const st = await wrap(fs.stat(p, cx));
      await wrap(fs.remove!(p, cx, { dir: st.type === 'dir' }));
    },
    mkdir: (p) => wrap(fs.mkdir!(p, 0o755, cx)),
    readStream: (p) => wrap(readAll(fs, p, cx).then(utf8)),
    watch: async (p, from, n, ms = 3000) => {
      const ac = new AbortController();
      const out: FsEvent[] = [];
      const timer = setTimeout(() => ac.abort(), ms);
      try {
        for await (const ev of fs.watch!(p, from, { ...cx, signal: ac.signal })) {
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
