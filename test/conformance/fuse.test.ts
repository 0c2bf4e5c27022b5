/**
 * The core conformance cases over FUSE: the fixture namespace is mounted by this (forked) test process
 * and every operation is a shell command in a child process: cat, cat >, cat >>, exec 3<>, find-like
 * listings and stat through Python's os module (which reports errno and reads the version xattr).
 * FUSE has no watch verb (watching is HTTP's SSE); the watch case writes through the mount and watches
 * in the serving process, so it checks that changes made through the mount are recorded with no gap.
 */
import { afterAll } from 'vitest';
import { conformance } from './cases.js';
import { TransportError, type Transport, type WatchedEvent } from './transport.js';
import { codeOfErrno, codeOfStderr, mountFixture, PYTHON, q, sh, type MountedFixture } from '../fuse/helpers.js';
import { writeAll } from '../../src/fs/ops.js';
import { cleanup, admin } from '../helpers.js';

const mounted: MountedFixture[] = [];

afterAll(async () => {
  for (const m of mounted.splice(0)) await m.close();
  cleanup();
});

async function run(script: string, input?: string): Promise<string> {
  const r = await sh(script, input === undefined ? {} : { input });
  if (r.code === 0) return r.stdout;
  const code = r.code === 3 && r.stdout.startsWith('errno ') ? codeOfErrno(Number(r.stdout.slice(6))) : codeOfStderr(r.stderr);
  throw new TransportError(code ?? 'EIO', r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`);
}

/** Python prints `errno N` and exits 3 on an OSError, so the code is exact. */
const PY_PRELUDE = `import os, sys, json
def fail(e):
    print('errno %d' % e.errno); sys.exit(3)
`;

function python(body: string, ...args: string[]): string {
  return `${PYTHON} -c ${q(PY_PRELUDE + body)} ${args.map(q).join(' ')}`;
}

function fuseTransport(m: MountedFixture): Transport {
  const at = (p: string) => m.dir + p;
  return {
    name: 'fuse',
    admin: true,
    read: (p) => run(`cat -- ${q(at(p))}`),
    write: (p, d) => run(`cat > ${q(at(p))}`, d).then(() => undefined),
    append: (p, d) => run(`cat >> ${q(at(p))}`, d).then(() => undefined),
    call: (p, d) => run(`exec 3<> ${q(at(p))} && cat >&3 && cat <&3`, d),
    list: async (p) => {
      const out = await run(
        python(
          `try:
    es = list(os.scandir(sys.argv[1]))
except OSError as e:
    fail(e)
rows = []
for e in es:
    try:
        size = e.stat().st_size
    except OSError:
        size = 0
    rows.append({'name': e.name, 'type': 'dir' if e.is_dir() else 'file', 'size': size})
print(json.dumps(rows))`,
          at(p),
        ),
      );
      return JSON.parse(out) as { name: string; type: 'file' | 'dir'; size: number }[];
    },
    stat: async (p) => {
      const out = await run(
        python(
          `import stat
try:
    st = os.stat(sys.argv[1]); v = os.getxattr(sys.argv[1], 'user.agent9.version')
except OSError as e:
    fail(e)
print(json.dumps({'type': 'dir' if stat.S_ISDIR(st.st_mode) else 'file', 'size': st.st_size, 'version': int(v)}))`,
          at(p),
        ),
      );
      return JSON.parse(out) as { type: 'file' | 'dir'; size: number; version: number };
    },
    remove: (p) => run(`rm -d -- ${q(at(p))}`).then(() => undefined),
    mkdir: (p) => run(`mkdir -- ${q(at(p))}`).then(() => undefined),
    rename: (a, b) => run(`mv -T -- ${q(at(a))} ${q(at(b))}`).then(() => undefined),
    readStream: (p) => run(`cat -- ${q(at(p))}`),
    watch: async (p, from, n, ms = 3000) => {
      const ac = new AbortController();
      const out: WatchedEvent[] = [];
      const timer = setTimeout(() => ac.abort(), ms);
      try {
        for await (const ev of m.ns.watch(p, from, { ...admin, signal: ac.signal })) {
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

conformance('fuse', async () => {
  // One mount per case keeps cases independent, as the other transports do.
  const m = await mountFixture();
  mounted.push(m);
  return { t: fuseTransport(m), feed: (line) => writeAll(m.ns, '/svc/feed-ctl', line, admin).then(() => undefined) };
});
