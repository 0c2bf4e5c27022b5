/**
 * What the libfuse3 binding gives that users see with everyday tools, in child processes on a real
 * mount (allow_other, so `nobody` reaches it too): the caller of each request reaches the service; the
 * creator owns what it creates and can write it again; access and modification times are set apart and
 * exactly (touch -a/-m, tar, cp -a, rsync -a: a second rsync copies nothing); inode numbers stay with a
 * file across a cache drop and a rename.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SyntheticFs, dir, jsonView } from '../../src/fs/synthetic.js';
import type { Cx } from '../../src/fs/types.js';
import { cleanup, tempDir } from '../helpers.js';
import { mountService, ok, PYTHON, q, sh, until } from './helpers.js';
import { buildFixture } from '../conformance/fixture.js';
import { openStorage } from '../helpers.js';

/** Runs a script as nobody (uid and gid 65534, no other groups). */
const asNobody = (script: string) => `setpriv --reuid=65534 --regid=65534 --clear-groups bash -c ${q(script)}`;

let m: Awaited<ReturnType<typeof mountService>>;
let D: string;
let ns: ReturnType<typeof buildFixture>;
const admin: Cx = { principal: { id: 'test', admin: true } };

/** Replaces a file's content through the service, as HTTP and the runtime do. */
async function writeElsewhere(path: string, text: string): Promise<void> {
  const h = await ns.open(path, { write: true, truncate: true }, admin);
  await h.write(new TextEncoder().encode(text), 0);
  await h.close();
}

beforeAll(async () => {
  const storage = openStorage();
  ns = buildFixture(storage);
  // A view that shows who asked: the caller of the open that computes it.
  ns.mount('/who', new SyntheticFs(dir({ me: jsonView((cx) => cx.caller ?? null) })));
  m = await mountService(ns, { allowOther: true });
  D = q(m.dir);
  await ok(`mkdir ${D}/data/pub && chmod 1777 ${D}/data/pub`);
});

afterAll(async () => {
  await m?.close();
  cleanup();
});

describe('the caller of each request', () => {
  it('reaches the service: uid, gid and pid, as root and as nobody', async () => {
    /** What the view saw, and the pid of the cat that read it. */
    const who = async (script: string) => {
      const r = await sh(script);
      expect(r.stderr).toBe('');
      const [json, pid] = r.stdout.split('PID ');
      return { seen: JSON.parse(json!) as unknown, pid: Number(pid) };
    };
    const read = `cat ${m.dir}/who/me & pid=$!; wait; echo "PID $pid"`;
    const root = await who(read);
    expect(root.seen).toEqual({ uid: 0, gid: 0, pid: root.pid });
    const nobody = await who(asNobody(read));
    expect(nobody.seen).toEqual({ uid: 65534, gid: 65534, pid: nobody.pid });
  });

  it('the creator owns what it creates (as nobody on an allow_other mount) and writes it again', async () => {
    await ok(asNobody(`echo one > ${m.dir}/data/pub/mine.txt && mkdir ${m.dir}/data/pub/mydir && echo two >> ${m.dir}/data/pub/mine.txt`));
    expect((await ok(`stat -c '%u:%g %a' ${D}/data/pub/mine.txt ${D}/data/pub/mydir`)).trim().split('\n')).toEqual(['65534:65534 644', '65534:65534 755']);
    expect(await ok(`cat ${D}/data/pub/mine.txt`)).toBe('one\ntwo\n');
    // The umask of the caller applies.
    await ok(asNobody(`umask 077 && echo x > ${m.dir}/data/pub/private.txt`));
    expect((await ok(`stat -c %a ${D}/data/pub/private.txt`)).trim()).toBe('600');
    // Another user cannot write it (the kernel checks the owner and mode).
    const r = await sh(`setpriv --reuid=65533 --regid=65533 --clear-groups bash -c ${q(`echo no >> ${m.dir}/data/pub/mine.txt`)}`);
    expect(r.stderr).toMatch(/Permission denied/);
  });
});

describe('times', () => {
  it('touch -a and touch -m set one time each, to the nanosecond', async () => {
    await ok(`echo t > ${D}/data/t.txt && touch -d '2001-02-03 04:05:06.123456789' ${D}/data/t.txt`);
    expect((await ok(`stat -c '%x|%y' ${D}/data/t.txt`)).trim()).toBe('2001-02-03 04:05:06.123456789 +0000|2001-02-03 04:05:06.123456789 +0000');
    await ok(`touch -a -d '2010-01-01 00:00:00.000000001' ${D}/data/t.txt`);
    expect((await ok(`stat -c '%X.%x|%Y' ${D}/data/t.txt`)).trim()).toBe('1262304000.2010-01-01 00:00:00.000000001 +0000|981173106');
    await ok(`touch -m -d '2020-06-07 08:09:10.987654321' ${D}/data/t.txt`);
    expect((await ok(`stat -c '%x|%y' ${D}/data/t.txt`)).trim()).toBe('2010-01-01 00:00:00.000000001 +0000|2020-06-07 08:09:10.987654321 +0000');
    // touch with no date: both now (UTIME_NOW), in the server's clock.
    const before = Math.floor(Date.now() / 1000);
    await ok(`touch ${D}/data/t.txt`);
    const [x, y] = (await ok(`stat -c '%X %Y' ${D}/data/t.txt`)).trim().split(' ').map(Number);
    expect(x).toBeGreaterThanOrEqual(before);
    expect(y).toBe(x);
  });

  it('tar xf, cp -a and rsync -a keep every mtime; a second rsync -a copies nothing', async () => {
    const src = tempDir();
    await ok(`cd ${q(src)} && mkdir -p t/a/b && for i in $(seq 1 30); do echo "file $i" > t/a/f$i; done && echo deep > t/a/b/deep &&
      i=0; for f in $(find t -type f | sort); do i=$((i+1)); touch -d "2019-0$(( i % 9 + 1 ))-1$(( i % 9 )) 10:11:12.$(printf %09d $((i * 7654321)))" "$f"; done &&
      tar --format=posix -cf ${q(src)}/t.tar t`);
    const times = (root: string) => ok(`cd ${q(root)} && find t -type f -printf '%P %T@ %s\\n' | sort`);
    const want = await times(src);
    expect(want.split('\n').length).toBeGreaterThan(30);

    await ok(`mkdir ${D}/data/untar && cd ${D}/data/untar && tar xf ${q(src)}/t.tar`);
    expect(await times(`${m.dir}/data/untar`)).toBe(want);

    await ok(`mkdir ${D}/data/cp && cp -a ${q(src)}/t ${D}/data/cp/`);
    expect(await times(`${m.dir}/data/cp`)).toBe(want);

    await ok(`mkdir ${D}/data/rs && rsync -a ${q(src)}/t ${D}/data/rs/`);
    expect(await times(`${m.dir}/data/rs`)).toBe(want);
    const again = await ok(`rsync -a --itemize-changes ${q(src)}/t ${D}/data/rs/`);
    expect(again).toBe('');
    // And back out: the copy's times are the originals.
    const out = tempDir();
    await ok(`cp -a ${D}/data/rs/t ${q(out)}/`);
    expect(await times(out)).toBe(want);
  });
});

describe('inode numbers', () => {
  it('stay with a file across a cache drop and a rename; ls -i agrees with stat', async () => {
    await ok(`mkdir -p ${D}/data/ino/sub && for i in 1 2 3 4 5; do echo $i > ${D}/data/ino/f$i; done && echo s > ${D}/data/ino/sub/s`);
    const inos = async () => (await ok(`cd ${D}/data/ino && stat -c '%n %i' f1 f2 f3 f4 f5 sub sub/s`)).trim();
    const first = await inos();
    expect(new Set(first.split('\n').map((l) => l.split(' ')[1])).size).toBe(7);
    const listed = (await ok(`ls -i ${D}/data/ino | awk '{print $2" "$1}' | sort`)).trim();
    expect(listed).toBe(first.split('\n').filter((l) => !l.startsWith('sub/')).sort().join('\n'));
    await ok('sync && echo 2 > /proc/sys/vm/drop_caches');
    expect(await inos()).toBe(first);
    const f1 = first.split('\n')[0]!.split(' ')[1];
    await ok(`mv ${D}/data/ino/f1 ${D}/data/ino/sub/moved && mv ${D}/data/ino/sub ${D}/data/ino/sub2`);
    expect((await ok(`stat -c %i ${D}/data/ino/sub2/moved`)).trim()).toBe(f1);
    // find -inum finds it by the number.
    expect((await ok(`find ${D}/data/ino -inum ${f1}`)).trim()).toBe(`${m.dir}/data/ino/sub2/moved`);
  });
});

describe('the page cache', () => {
  it('data files are cached (shared mmap works) and a change made elsewhere is seen at once, size and all', async () => {
    await ok(`printf 'short' > ${D}/data/cached.txt`);
    // Shared writable mmap needs the page cache (direct-io files refuse it).
    await ok(`${PYTHON} -c ${q(`import mmap\nf = open('${m.dir}/data/cached.txt', 'r+b')\nmm = mmap.mmap(f.fileno(), 0)\nmm[0:1] = b'S'\nmm.flush()\nmm.close()\nf.close()`)}`);
    expect(await ok(`cat ${D}/data/cached.txt`)).toBe('Short');
    expect(await ok(`cat ${D}/data/cached.txt`)).toBe('Short'); // from the cache now
    const before = m.mount.adapter.invalidations;
    await writeElsewhere('/data/cached.txt', 'a longer text, written through the service');
    await until(() => m.mount.adapter.invalidations > before, 2000, 'the invalidation');
    // Within the attribute timeout, yet the new size and bytes (no stale page, no cut at the old size).
    expect(await ok(`cat ${D}/data/cached.txt`)).toBe('a longer text, written through the service');
    await writeElsewhere('/data/cached.txt', 'tiny');
    await until(() => m.mount.adapter.invalidations > before + 1, 2000, 'the second invalidation');
    expect(await ok(`cat ${D}/data/cached.txt; stat -c %s ${D}/data/cached.txt`)).toBe('tiny4\n');
  });
});
