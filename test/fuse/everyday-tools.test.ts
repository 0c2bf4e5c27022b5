/**
 * Everyday tools on a data tree, as child processes, on the server mount and on an --agent mount:
 * git (init, add, commit, status, gc, fsck), tar cf/xf of a tree with hard links, symbolic links and a
 * FIFO, cp -a, rsync -a twice (the second copies nothing), rm -rf, SQLite in WAL mode with two writing
 * processes, an editor-style save (temp file, fsync, rename over the file, while a reader holds the
 * old one), tempfile.TemporaryFile(dir=...), ln -s, ln, mkfifo.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup } from '../helpers.js';
import { ok, PYTHON, q, sh } from './helpers.js';
import { AGENT, serverMounts, type ServerMounts } from './server-mounts.js';

let s: ServerMounts;
/** A local tree with every node kind, to copy onto the mount. */
let source: string;

beforeAll(async () => {
  s = await serverMounts();
  source = await mkdtemp(join(tmpdir(), 'agent9-tools-'));
  await ok(`cd ${q(source)} && mkdir -p tree/sub/deep && echo alpha > tree/a && ln tree/a tree/sub/a-again && ln -s a tree/to-a &&
    ln -s sub/deep tree/to-deep && mkfifo tree/fifo && head -c 300000 /dev/urandom > tree/sub/deep/blob && chmod 600 tree/sub/deep/blob &&
    touch -h -d '2001-02-03 04:05:06.123456789' tree/to-a && touch -d '2002-03-04 05:06:07.5' tree/a tree/sub/deep`);
}, 120_000);

afterAll(async () => {
  await s?.close();
  await sh(`rm -rf ${q(source)}`);
  cleanup();
});

/** Every node of a tree: links, type, mode, size, mtime (ns), link target; what a faithful copy keeps. */
const listing = (dir: string) =>
  ok(`cd ${q(dir)} && find . -mindepth 1 ! -type d -printf '%n %y %m %s %T@ %p %l\\n' | sort; find . -mindepth 1 -type d -printf '%y %m %p\\n' | sort`);

describe.each([0, 1])('everyday tools, mount %i', (kind) => {
  const at = (name: string) => `${s.kinds[kind]!.memory}/pub/tools-${kind}-${name}`;

  it(`${kind === 0 ? 'server mount' : '--agent mount'}: git init, add, commit, status, gc and fsck`, async () => {
    const repo = at('git');
    const out = await ok(
      `exec 2>&1; export HOME=$(mktemp -d) GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
git init -q ${q(repo)} && cd ${q(repo)} || exit 1
for i in $(seq 30); do echo "line $i" > f$i.txt; done; ln -s f1.txt link; mkdir d; echo x > d/x
git add -A && git commit -qm one && echo changed >> f3.txt && git status --porcelain && git commit -qam two
git gc -q && git status --porcelain && git log --oneline | wc -l && git fsck --no-progress --strict && git cat-file -p HEAD:link; echo; git show -s --format=%s HEAD`,
      { timeoutMs: 120_000 },
    );
    expect(out).toBe(' M f3.txt\n2\nf1.txt\ntwo\n');
  }, 150_000);

  it('tar cf / tar xf, cp -a and rsync -a (twice: the second copies nothing) keep links, the FIFO, modes and exact times', async () => {
    const tarball = at('tree.tar');
    const [x, copy, synced] = [at('x'), at('cp'), at('rsync')];
    // The pax format keeps times to the nanosecond (GNU tar's own keeps seconds).
    await ok(`tar --format=posix -cf ${q(tarball)} -C ${q(source)} tree && mkdir ${q(x)} && tar xf ${q(tarball)} -C ${q(x)}`, { timeoutMs: 60_000 });
    const want = await listing(join(source, 'tree'));
    for (const line of ['1 l 777 1 981173106.1234567890 ./to-a a', '2 f 644 6 1015218367.5000000000 ./a ', '2 f 644 6 1015218367.5000000000 ./sub/a-again ', '1 p 644 0 ']) {
      expect(want).toContain(line);
    }
    expect(await listing(`${x}/tree`)).toBe(want);
    await ok(`cp -a ${q(x)}/tree ${q(copy)}`, { timeoutMs: 60_000 });
    expect(await listing(copy)).toBe(want);
    await ok(`rsync -aH ${q(source)}/tree/ ${q(synced)}/`, { timeoutMs: 60_000 });
    expect(await listing(synced)).toBe(want);
    expect(await ok(`rsync -aH --itemize-changes ${q(source)}/tree/ ${q(synced)}/`, { timeoutMs: 60_000 })).toBe('');
    // rm -rf takes all of it, and the quota gets its bytes back.
    const used = () => s.a9.runtime.quota.usage(AGENT).memory_bytes;
    const before = used();
    await ok(`rm -rf ${q(x)} ${q(copy)} ${q(synced)} ${q(tarball)}`, { timeoutMs: 60_000 });
    expect(await ok(`ls ${q(s.kinds[kind]!.memory)}/pub | grep -c '^tools-${kind}-\\(x\\|cp\\|rsync\\|tree.tar\\)$' || true`)).toBe('0\n');
    expect(used()).toBeLessThan(before - 3 * 300_000);
  }, 200_000);

  it('SQLite in WAL mode with two processes writing at once', async () => {
    const db = at('wal.sqlite');
    const writer = (who: string) =>
      `${PYTHON} -c ${q(`import sqlite3
c = sqlite3.connect(${JSON.stringify(db)}, timeout=60)
for i in range(150):
    with c: c.execute('insert into t values (?, ?)', (${JSON.stringify(who)}, i))
    if i % 50 == 0: print(c.execute('select count(*) from t').fetchone()[0] > 0)`)}`;
    const out = await ok(
      `exec 2>&1; ${PYTHON} -c ${q(`import sqlite3; c = sqlite3.connect(${JSON.stringify(db)}); print(c.execute('pragma journal_mode=wal').fetchone()[0]); c.execute('create table t (who text, n int)'); c.commit()`)}
(${writer('A')}) & (${writer('B')}) & wait
${PYTHON} -c ${q(`import sqlite3; c = sqlite3.connect(${JSON.stringify(db)}); print(c.execute('pragma integrity_check').fetchone()[0], c.execute('select who, count(*), count(distinct n) from t group by who order by who').fetchall())`)}`,
      { timeoutMs: 180_000 },
    );
    expect(out).toBe(`wal\nTrue\nTrue\nTrue\nTrue\nTrue\nTrue\nok [('A', 150, 150), ('B', 150, 150)]\n`);
  }, 200_000);

  it('an editor-style save (temp file, fsync, rename over) while a reader holds the old file; TemporaryFile; ln -s, ln, mkfifo', async () => {
    const dir = at('editor');
    const out = await ok(
      `exec 2>&1; mkdir ${q(dir)} && cd ${q(dir)} || exit 1
printf 'old text\\n' > notes.txt; ln -s notes.txt current; mkfifo pipe
${PYTHON} - <<'EOF'
import os, tempfile
old = open('notes.txt')
fd, tmp = tempfile.mkstemp(dir='.', prefix='.notes.')
os.write(fd, b'new text\\n'); os.fsync(fd); os.close(fd)
os.rename(tmp, 'notes.txt')
print(old.read().strip(), '|', open('current').read().strip())
t = tempfile.TemporaryFile(dir='.'); t.write(b'scratch'); t.seek(0); print(t.read().decode()); t.close()
EOF
ln notes.txt notes.bak; stat -c '%h %F' notes.txt notes.bak current pipe; ls -A`,
    );
    expect(out).toBe(
      'old text | new text\nscratch\n2 regular file\n2 regular file\n1 symbolic link\n1 fifo\ncurrent\nnotes.bak\nnotes.txt\npipe\n',
    );
  });
});
