/**
 * The mount as shells use it: coreutils on data files and directories (POSIX behaviour), the synthetic
 * file kinds, and freshness of what was changed elsewhere. Every command runs in a child process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SyntheticFs, dir, view, call, message } from '../../src/fs/synthetic.js';
import { readAll, writeAll } from '../../src/fs/ops.js';
import { utf8 } from '../../src/fs/bytes.js';
import { FsError } from '../../src/fs/errors.js';
import { admin, cleanup } from '../helpers.js';
import { mountFixture, ok, PYTHON, q, sh, sleep, until, type MountedFixture } from './helpers.js';

let m: MountedFixture;
let D: string; // the mount point
let scratch: string; // a local directory for cp in and out
const BIG_VIEW = Array.from({ length: 20_000 }, (_, i) => `line ${i}\n`).join(''); // ~190 KB, more than one read
let releaseSlowCall: () => void = () => undefined;
let slowCalls = 0;
const sent: string[] = [];

beforeAll(async () => {
  m = await mountFixture();
  D = m.dir;
  scratch = await mkdtemp(join(tmpdir(), 'agent9-scratch-'));
  m.ns.mount(
    '/kinds',
    new SyntheticFs(
      dir({
        big: view(() => BIG_VIEW),
        slow: call(async (req) => {
          slowCalls++;
          await new Promise<void>((r) => (releaseSlowCall = r));
          return 'slow:' + utf8(req);
        }),
        inbox: message((data) => void sent.push(utf8(data)), { read: () => JSON.stringify(sent) + '\n' }),
        full: message(() => undefined, {
          admit: () => {
            throw new FsError('EAGAIN', '/full', 'queue full; retry later');
          },
        }),
      }),
      'kinds',
    ),
  );
});

afterAll(async () => {
  await m?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
  cleanup();
});

const openHandlesSettle = () => until(() => m.mount.adapter.openHandles === 0, 5000, 'all FUSE handles released');

describe('data files and directories through coreutils', () => {
  it('echo >, >>, cat, ls -la, stat', async () => {
    await ok(`cd ${q(D)}/data && echo hello > a.txt && echo more >> a.txt`);
    expect(await ok(`cat ${q(D)}/data/a.txt`)).toBe('hello\nmore\n');
    const ls = await ok(`ls -la ${q(D)}/data`);
    expect(ls).toMatch(/^-rw-r--r-- 1 \S+ \S+ +11 .* a\.txt$/m);
    expect(ls).toMatch(/^d\S+ .* \.$/m);
    expect(await ok(`stat -c '%s %a %F' ${q(D)}/data/a.txt`)).toBe('11 644 regular file\n');
    // `>` truncates
    await ok(`echo short > ${q(D)}/data/a.txt`);
    expect(await ok(`cat ${q(D)}/data/a.txt`)).toBe('short\n');
  });

  it('head, dd, cp in and out, cmp, offset writes, truncate', async () => {
    const src = join(scratch, 'random.bin');
    await writeFile(src, randomBytes(3 * 1024 * 1024 + 123));
    await ok(`cp ${q(src)} ${q(D)}/data/random.bin && cmp ${q(src)} ${q(D)}/data/random.bin`);
    await ok(`cp ${q(D)}/data/random.bin ${q(scratch)}/back.bin && cmp ${q(src)} ${q(scratch)}/back.bin`);
    await ok(`dd if=${q(D)}/data/random.bin of=${q(scratch)}/dd.bin bs=1M status=none && cmp ${q(src)} ${q(scratch)}/dd.bin`);
    expect(await ok(`head -c 5 ${q(D)}/data/random.bin | wc -c`)).toBe('5\n');
    await ok(`printf 0123456789 > ${q(D)}/data/o.txt && printf AB | dd of=${q(D)}/data/o.txt bs=1 seek=3 conv=notrunc status=none`);
    expect(await ok(`cat ${q(D)}/data/o.txt`)).toBe('012AB56789');
    await ok(`truncate -s 4 ${q(D)}/data/o.txt`);
    expect(await ok(`cat ${q(D)}/data/o.txt`)).toBe('012A');
    await ok(`truncate -s 6 ${q(D)}/data/o.txt`);
    expect(await ok(`od -An -c ${q(D)}/data/o.txt | tr -s ' '`)).toBe(' 0 1 2 A \\0 \\0\n');
  });

  it('mkdir, mv (rename, over an existing file), rm, find, grep -r', async () => {
    const base = `${q(D)}/data/tree`;
    await ok(`mkdir -p ${base}/a/b && echo needle > ${base}/a/b/one && echo hay > ${base}/a/two && echo other > ${base}/three`);
    expect((await ok(`cd ${base} && find . | sort`)).split('\n').filter(Boolean)).toEqual([
      '.',
      './a',
      './a/b',
      './a/b/one',
      './a/two',
      './three',
    ]);
    expect(await ok(`grep -rl needle ${base} | sed 's|.*/tree/||'`)).toBe('a/b/one\n');
    await ok(`mv ${base}/three ${base}/a/two`); // over an existing file
    expect(await ok(`cat ${base}/a/two`)).toBe('other\n');
    await ok(`mv ${base}/a ${base}/z`); // a directory with everything below it
    expect(await ok(`cat ${base}/z/b/one`)).toBe('needle\n');
    const r = await sh(`rmdir ${base}/z`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Directory not empty/);
    await ok(`rm -r ${base}`);
    expect((await sh(`ls ${base}`)).stderr).toMatch(/No such file or directory/);
  });

  it('modes, ownership and timestamps', async () => {
    const f = `${q(D)}/data/perm.txt`;
    await ok(`echo x > ${f} && chmod 600 ${f} && chown 1234:2345 ${f}`);
    expect(await ok(`stat -c '%a %u %g' ${f}`)).toBe('600 1234 2345\n');
    await ok(`touch -d '2001-02-03 04:05:06 UTC' ${f}`);
    expect(await ok(`TZ=UTC stat -c '%y' ${f}`)).toMatch(/^2001-02-03 04:05:06/);
    await ok(`touch ${f}`);
    const year = Number((await ok(`TZ=UTC stat -c '%y' ${f}`)).slice(0, 4));
    expect(year).toBeGreaterThanOrEqual(2024);
    await ok(`mkdir -m 700 ${q(D)}/data/private`);
    expect(await ok(`stat -c '%a %F' ${q(D)}/data/private`)).toBe('700 directory\n');
  });

  it('errors: ENAMETOOLONG, EEXIST on exclusive create, EISDIR, ENOTDIR, EACCES on read-only mounts', async () => {
    const long = 'n'.repeat(300);
    expect((await sh(`touch ${q(D)}/data/${long}`)).stderr).toMatch(/File name too long/);
    await ok(`echo x > ${q(D)}/data/exists`);
    const excl = await sh(`${PYTHON} -c "open('${D}/data/exists', 'x')"`);
    expect(excl.stderr).toMatch(/FileExistsError/);
    expect((await sh(`set -C; echo y > ${q(D)}/data/exists`)).stderr).toMatch(/cannot overwrite existing file/);
    expect((await sh(`cat ${q(D)}/data`)).stderr).toMatch(/Is a directory/);
    expect((await sh(`cat ${q(D)}/data/exists/x`)).stderr).toMatch(/Not a directory/);
    expect((await sh(`echo x > ${q(D)}/ro/x`)).stderr).toMatch(/Permission denied/);
    expect((await sh(`ls ${q(D)}/off`)).stderr).toMatch(/Permission denied/);
    // A data tree takes links (node-kinds.test.ts); a read-only mount refuses them as it refuses writes.
    expect((await sh(`ln -s a ${q(D)}/ro/link`)).stderr).toMatch(/Permission denied/);
  });

  it('a Budgeted mount charges each `>` once (one open with O_TRUNC), as a PUT', async () => {
    await ok(`echo 1 > ${q(D)}/paid/a && echo 2 > ${q(D)}/paid/a && echo 3 > ${q(D)}/paid/b`);
    const r = await sh(`echo 4 > ${q(D)}/paid/b`);
    expect(r.stderr).toMatch(/Disk quota exceeded/);
    expect(await ok(`cat ${q(D)}/paid/a ${q(D)}/paid/b`)).toBe('2\n3\n');
  });

  it('extended attributes show the version and the kind', async () => {
    await ok(`echo v1 > ${q(D)}/data/ver.txt`);
    const read = (f: string, a: string) => ok(`${PYTHON} -c "import os; print(os.getxattr('${f}', '${a}').decode())"`);
    const v1 = Number(await read(`${D}/data/ver.txt`, 'user.agent9.version'));
    await ok(`echo v2 >> ${q(D)}/data/ver.txt`);
    const v2 = Number(await read(`${D}/data/ver.txt`, 'user.agent9.version'));
    expect(v2).toBeGreaterThan(v1);
    expect(await read(`${D}/svc/feed`, 'user.agent9.kind')).toBe('stream\n');
    expect(await read(`${D}/svc/box`, 'user.agent9.kind')).toBe('message\n');
    expect(await ok(`${PYTHON} -c "import os; print(sorted(os.listxattr('${D}/data/ver.txt')))"`)).toBe(
      "['user.agent9.kind', 'user.agent9.version']\n",
    );
  });
});

describe('changes made elsewhere (HTTP, the runtime) are never read stale', () => {
  it('cat sees a change made in the serving process at once; stat within the attribute bound', async () => {
    await ok(`echo first > ${q(D)}/data/fresh.txt && cat ${q(D)}/data/fresh.txt && stat ${q(D)}/data/fresh.txt`);
    await writeAll(m.ns, '/data/fresh.txt', 'second, longer\n', admin);
    expect(await ok(`cat ${q(D)}/data/fresh.txt`)).toBe('second, longer\n');
    await until(async () => (await ok(`stat -c %s ${q(D)}/data/fresh.txt`)) === '15\n', 2500, 'the new size in stat');
    // New names appear at once (no negative caching); removed ones fail to open at once.
    await writeAll(m.ns, '/data/new-elsewhere.txt', 'n\n', admin);
    expect(await ok(`cat ${q(D)}/data/new-elsewhere.txt`)).toBe('n\n');
    await m.ns.remove('/data/new-elsewhere.txt', admin);
    expect((await sh(`cat ${q(D)}/data/new-elsewhere.txt`)).stderr).toMatch(/No such file or directory/);
  });

  it('tail -f follows a data file appended elsewhere', async () => {
    await writeAll(m.ns, '/data/log.txt', 'one\ntwo\n', admin);
    const tail = sh(`timeout 4 tail -f ${q(D)}/data/log.txt`, { timeoutMs: 10_000 });
    await sleep(1000);
    await writeAll(m.ns, '/data/log.txt', 'three\n', admin, { append: true });
    const r = await tail;
    expect(r.stdout).toBe('one\ntwo\nthree\n');
  });
});

describe('file kinds on the mount', () => {
  it('views read in full with cat, dd, head, less and cp, beyond one FUSE read', async () => {
    expect(await ok(`cat ${q(D)}/kinds/big`)).toBe(BIG_VIEW);
    expect(await ok(`dd if=${q(D)}/kinds/big bs=4k status=none`)).toBe(BIG_VIEW);
    expect(await ok(`head -n 3 ${q(D)}/kinds/big`)).toBe('line 0\nline 1\nline 2\n');
    expect(await ok(`less ${q(D)}/kinds/big`)).toBe(BIG_VIEW);
    await ok(`cp ${q(D)}/kinds/big ${q(scratch)}/big-copy`);
    expect(await readFile(join(scratch, 'big-copy'), 'utf8')).toBe(BIG_VIEW);
    expect(await ok(`stat -c %s ${q(D)}/kinds/big`)).toBe(`${BIG_VIEW.length}\n`);
    expect(await ok(`stat -c %A ${q(D)}/kinds/big`)).toBe('-r--r--r--\n');
  });

  it('message files: echo > and >> each send exactly one message; empty writes send none', async () => {
    sent.length = 0;
    await ok(`echo one > ${q(D)}/kinds/inbox`);
    await ok(`echo two >> ${q(D)}/kinds/inbox`);
    await ok(`printf 'three\\nlines\\n' > ${q(D)}/kinds/inbox`);
    await ok(`: > ${q(D)}/kinds/inbox`);
    await ok(`cat ${q(scratch)}/big-copy > ${q(D)}/kinds/inbox`); // several FUSE writes, one message
    expect(sent.slice(0, 3)).toEqual(['one\n', 'two\n', 'three\nlines\n']);
    expect(sent.length).toBe(4);
    expect(sent[3]).toBe(BIG_VIEW);
    expect(JSON.parse(await ok(`cat ${q(D)}/kinds/inbox`))).toHaveLength(4);
  });

  it('message files: over the cap is EFBIG and sends nothing; commit errors reach close(2)', async () => {
    const before = JSON.parse(await ok(`cat ${q(D)}/svc/count`)).messages as number;
    const r = await sh(`head -c 2000 /dev/zero | tr '\\0' x > ${q(D)}/svc/box`);
    expect(r.stderr).toMatch(/File too large/);
    expect(JSON.parse(await ok(`cat ${q(D)}/svc/count`)).messages).toBe(before);
    // The policy is a writable view: bad JSON fails when the file is closed, and cat reports it.
    const bad = await sh(`printf '{bad' | cat > ${q(D)}/svc/policy`);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/Invalid argument/);
  });

  it('a message file that admits writers at open makes even bash’s echo report a full queue', async () => {
    const r = await sh(`echo x > ${q(D)}/kinds/full`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Resource temporarily unavailable/);
  });

  it('call files keep state per handle: exec 3<>, write the request, read the answer', async () => {
    expect(await ok(`exec 3<> ${q(D)}/svc/echo; echo ping >&3; cat <&3; cat <&3; exec 3>&-`)).toBe('echo:ping\n');
    // Two handles at once, two independent calls.
    expect(await ok(`exec 3<> ${q(D)}/svc/echo 4<> ${q(D)}/svc/echo; echo a >&3; echo b >&4; cat <&4; cat <&3`)).toBe(
      'echo:b\necho:a\n',
    );
    const bad = await sh(`exec 3<> ${q(D)}/svc/echo; printf '{oops' >&3; cat <&3`);
    expect(bad.stderr).toMatch(/Invalid argument/);
    await openHandlesSettle();
  });

  it('stream files block in read until data or end; ls keeps working; head stops early', async () => {
    const reader = sh(`cat ${q(D)}/svc/feed`, { timeoutMs: 10_000 });
    await sleep(300);
    expect(await ok(`ls ${q(D)}/svc`)).toContain('feed');
    await writeAll(m.ns, '/svc/feed-ctl', 'a\nb\n', admin);
    const head = sh(`head -n 2 ${q(D)}/svc/feed`, { timeoutMs: 10_000 });
    await sleep(300);
    await writeAll(m.ns, '/svc/feed-ctl', 'c\nd\ne\n', admin);
    expect((await head).stdout).toBe('c\nd\n');
    await writeAll(m.ns, '/svc/feed-ctl', 'end\n', admin);
    const r = await reader;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('a\nb\nc\nd\ne\n');
    await openHandlesSettle();
  });

  it('Ctrl-C (SIGINT) ends a cat blocked on a stream; another blocked reader loses nothing', async () => {
    const other = sh(`cat ${q(D)}/svc/feed`, { timeoutMs: 10_000 });
    await until(() => m.mount.adapter.openHandles === 1, 5000, 'the other reader to open the stream');
    const interrupted = sh(
      `${PYTHON} -c 'import signal, os, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp("cat", ["cat", sys.argv[1]])' ${q(D)}/svc/feed & pid=$!
       sleep 0.5; kill -INT $pid; wait $pid; echo "rc=$?"`,
      { timeoutMs: 10_000 },
    );
    const r = await interrupted;
    expect(r.timedOut).toBe(false);
    expect(r.stdout).toBe('rc=130\n');
    await writeAll(m.ns, '/svc/feed-ctl', 'after\nend\n', admin);
    const o = await other;
    expect(o.stdout).toBe('after\n');
    await openHandlesSettle();
  });

  it('Ctrl-C ends a read waiting for a slow call; the call runs once and its handle is freed', async () => {
    slowCalls = 0;
    const r = await sh(
      `${PYTHON} -c 'import signal, os, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
fd = os.open(sys.argv[1], os.O_RDWR); os.write(fd, b"req"); os.read(fd, 100)' ${q(D)}/kinds/slow & pid=$!
       sleep 0.5; kill -INT $pid; wait $pid; echo "rc=$?"`,
      { timeoutMs: 10_000 },
    );
    expect(r.stdout).toBe('rc=130\n');
    expect(slowCalls).toBe(1);
    releaseSlowCall();
    await openHandlesSettle();
  });

  it('Ctrl-C works as well after a descriptor of the call was duplicated and closed (an empty flush)', async () => {
    slowCalls = 0;
    const r = await sh(
      `${PYTHON} -c 'import signal, os, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
fd = os.open(sys.argv[1], os.O_RDWR); os.close(os.dup(fd)); os.write(fd, b"req"); os.read(fd, 100)' ${q(D)}/kinds/slow & pid=$!
       sleep 0.5; kill -INT $pid; wait $pid; echo "rc=$?"`,
      { timeoutMs: 10_000 },
    );
    expect(r.stdout).toBe('rc=130\n');
    expect(slowCalls).toBe(1);
    releaseSlowCall();
    await openHandlesSettle();
  });

  it('many readers blocked on streams do not starve other operations', async () => {
    const readers = Array.from({ length: 40 }, () => sh(`cat ${q(D)}/svc/feed`, { timeoutMs: 20_000 }));
    await until(() => m.mount.adapter.openHandles >= 40, 10_000, '40 open stream handles');
    // Were they starved, this would wait for the readers, which wait for the feed below: a timeout.
    await ok(`ls -la ${q(D)}/svc && cat ${q(D)}/svc/count && echo x > ${q(D)}/data/while-blocked`, { timeoutMs: 8000 });
    await writeAll(m.ns, '/svc/feed-ctl', 'all\nend\n', admin);
    for (const r of await Promise.all(readers)) expect(r.stdout).toBe('all\n');
    await openHandlesSettle();
  });
});

describe('in-process reads of what shells wrote', () => {
  it('a file written through the mount reads the same in the namespace', async () => {
    await ok(`printf 'via mount' > ${q(D)}/data/via.txt`);
    expect(utf8(await readAll(m.ns, '/data/via.txt', admin))).toBe('via mount');
  });
});
