/**
 * A data tree behaves like a local disk (issue 14, CONTRACT sections 4 and 15): symbolic and hard links,
 * FIFOs and sockets, device nodes refused, unlink while open, shared mmap, POSIX and flock locks,
 * S_ISUID/S_ISGID cleared by a non-owner's write, directory link counts, fallocate, statfs, path limits
 * from the tree's root and the file size cap. Each case is a shell script in a child process, on the
 * server mount and on an --agent mount, as root and as nobody.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cx } from '../../src/fs/types.js';
import { readAll } from '../../src/fs/ops.js';
import { cleanup } from '../helpers.js';
import { ok, PYTHON, q, sh } from './helpers.js';
import { AGENT, as, MAX_FILE_BYTES, QUOTA_BYTES, serverMounts, type ServerMounts } from './server-mounts.js';

let s: ServerMounts;
const admin: Cx = { principal: { id: 'test', admin: true } };

beforeAll(async () => {
  s = await serverMounts();
}, 120_000);

afterAll(async () => {
  await s?.close();
  cleanup();
});

const USERS = ['root', 'nobody'] as const;
const uidOf = { root: 0, nobody: 65534 };

/** A fresh directory of the user's for one case; returns its path on the mount and in the tree. */
async function workDir(kind: number, user: (typeof USERS)[number], name: string): Promise<{ dir: string; rel: string }> {
  const k = s.kinds[kind]!;
  const rel = `/pub/${kind}-${user}-${name}`;
  const dir = `${k.memory}${rel}`;
  await ok(as(user, `mkdir ${q(dir)}`));
  return { dir, rel };
}

/** Runs `script` in `dir` as `user`; stdout and stderr together, as a user would read them. */
async function run(user: (typeof USERS)[number], dir: string, script: string, timeoutMs = 20_000): Promise<string> {
  // One stream, in the order things happened (stderr as a user sees it, between the lines of stdout).
  const r = await sh(as(user, `exec 2>&1; cd ${q(dir)} || exit 99\n${script}`), { timeoutMs });
  if (r.timedOut) throw new Error(`timed out: ${script}\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

describe.each([0, 1])('node kinds and POSIX calls, mount %i', (kind) => {
  describe.each(USERS)('as %s', (user) => {
    it(`${kind === 0 ? 'server mount' : '--agent mount'}: symbolic links: ln -s, readlink, lstat, followed by the kernel (relative, .., a directory), dangling`, async () => {
      const { dir } = await workDir(kind, user, 'symlink');
      const out = await run(
        user,
        dir,
        `echo hello > f; ln -s f l; mkdir d; echo inside > d/x; ln -s d ld; ln -s ../$(basename "$PWD")/f up; ln -s nowhere dangling
readlink l; stat -c '%F %s %u %h' l; cat l; cat ld/x; cat up; ls ld
[ -e dangling ] || echo dangling-missing; [ -L dangling ] && echo dangling-is-a-link
echo made > dangling; cat nowhere
ln -s l l2 && cat l2
rm l; [ -e f ] && echo f-kept; ls`,
      );
      expect(out).toBe(
        `f\nsymbolic link 1 ${uidOf[user]} 1\nhello\ninside\nhello\nx\ndangling-missing\ndangling-is-a-link\nmade\nhello\nf-kept\nd\ndangling\nf\nl2\nld\nnowhere\nup\n`,
      );
    });

    it('hard links: one file under several names, one inode number and link count; a directory is EPERM', async () => {
      const { dir, rel } = await workDir(kind, user, 'hardlink');
      const out = await run(
        user,
        dir,
        `echo one > f; ln f g; mkdir sub; ln g sub/h
stat -c '%i %h' f g sub/h | sort -u | awk '{print NF, $2}'
echo two >> g; cat f; cat sub/h
rm f; cat g; stat -c %h g sub/h
mkdir dd; ln dd dd2; mv g sub/h 2>&1; stat -c %h sub/h`,
      );
      expect(out).toBe(`2 3\none\ntwo\none\ntwo\none\ntwo\n2\n2\nln: dd: hard link not allowed for directory\nmv: 'g' and 'sub/h' are the same file\n2\n`);
      // The change through one name is the file's under every name, for the service too.
      const tree = s.kinds[0]!.memory.slice(s.kinds[0]!.mount.dir.length);
      expect(new TextDecoder().decode(await readAll(s.a9.namespace, `${tree}${rel}/sub/h`, admin))).toBe('one\ntwo\n');
    });

    it('FIFOs and Unix sockets are nodes whose data the kernel passes; device nodes are EPERM', async () => {
      const { dir } = await workDir(kind, user, 'fifo');
      const out = await run(
        user,
        dir,
        `mkfifo p; mknod q p; stat -c '%F %u' p q
(echo through the fifo > p &); timeout 10 cat p
${PYTHON} - <<'EOF'
import os, socket
s = socket.socket(socket.AF_UNIX); s.bind('sock'); s.listen(1)
if os.fork() == 0:
    c = socket.socket(socket.AF_UNIX); c.connect('sock'); c.sendall(b'through the socket'); os._exit(0)
conn, _ = s.accept(); print(conn.recv(100).decode()); os.wait()
EOF
stat -c %F sock
mknod c c 1 3; mknod b b 7 0; ls`,
      );
      expect(out).toBe(
        `fifo ${uidOf[user]}\nfifo ${uidOf[user]}\nthrough the fifo\nthrough the socket\nsocket\n` +
          `mknod: c: Operation not permitted\nmknod: b: Operation not permitted\np\nq\nsock\n`,
      );
    });

    it('a file removed while open stays readable and writable through its descriptors, and goes at the last close', async () => {
      const { dir } = await workDir(kind, user, 'unlinked');
      const out = await run(
        user,
        dir,
        `${PYTHON} - <<'EOF'
import os, tempfile
fd = os.open('f', os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b'written before')
os.unlink('f')
print(os.path.exists('f'), os.fstat(fd).st_nlink, os.fstat(fd).st_size)
os.lseek(fd, 0, 0); print(os.read(fd, 100).decode())
os.write(fd, b', and after'); os.fsync(fd)
os.lseek(fd, 0, 0); print(os.read(fd, 100).decode())
os.ftruncate(fd, 7); print(os.fstat(fd).st_size)
os.close(fd)
t = tempfile.TemporaryFile(dir='.')
t.write(b'x' * 100000); t.seek(0); print(len(t.read()), os.fstat(t.fileno()).st_nlink)
t.close()
print(os.listdir('.'))
EOF`,
      );
      expect(out).toBe(`False 0 14\nwritten before\nwritten before, and after\n7\n100000 0\n[]\n`);
    });

    it('shared mmap: writes through a mapping reach the file and other processes, before and after msync', async () => {
      const { dir } = await workDir(kind, user, 'mmap');
      const out = await run(
        user,
        dir,
        `${PYTHON} - <<'EOF'
import mmap, os, subprocess
fd = os.open('m', os.O_CREAT | os.O_RDWR, 0o644)
os.ftruncate(fd, 3 * 4096)
m = mmap.mmap(fd, 3 * 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[4096:4101] = b'shared'[:5]
print(subprocess.run(['dd', 'if=m', 'bs=1', 'skip=4096', 'count=5', 'status=none'], capture_output=True).stdout.decode())
m.flush(); m[0:3] = b'abc'; m.close(); os.close(fd)
with open('m', 'rb') as f: data = f.read()
print(len(data), data[0:3].decode(), data[4096:4101].decode())
EOF`,
      );
      expect(out).toBe(`share\n12288 abc share\n`);
    });

    it('POSIX (fcntl) and flock locks work between the processes of the mount', async () => {
      const { dir } = await workDir(kind, user, 'locks');
      const out = await run(
        user,
        dir,
        `touch f
flock -x f -c 'flock -n f -c "echo got it" || echo flock held'
${PYTHON} - <<'EOF'
import fcntl, os
f = open('f', 'r+'); fcntl.lockf(f, fcntl.LOCK_EX)
if os.fork() == 0:
    g = open('f', 'r+')
    try: fcntl.lockf(g, fcntl.LOCK_EX | fcntl.LOCK_NB); print('child got it')
    except OSError as e: print('lockf held', e.errno == 11 or e.errno == 13)
    os._exit(0)
os.wait(); fcntl.lockf(f, fcntl.LOCK_UN)
if os.fork() == 0:
    g = open('f', 'r+'); fcntl.lockf(g, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free again'); os._exit(0)
os.wait()
EOF`,
      );
      expect(out).toBe(`flock held\nlockf held True\nfree again\n`);
    });

    it('a write by another user than the owner clears S_ISUID and S_ISGID; the owner root keeps them', async () => {
      const { dir } = await workDir(kind, user, 'suid');
      // root makes the file; the user writes it.
      await ok(`cd ${q(dir)} && echo x > s && chmod 6777 s`);
      const out = await run(user, dir, `echo more >> s; stat -c %a s`);
      expect(out).toBe(user === 'root' ? '6777\n' : '777\n');
    });

    it('a directory counts 2 and its subdirectories in nlink, through mkdir, rmdir and mv', async () => {
      const { dir } = await workDir(kind, user, 'nlink');
      const out = await run(user, dir, `mkdir d d/a d/b e; touch d/file; stat -c %h d; rmdir d/a; stat -c %h d; mv d/b e/; stat -c '%h' d e .`);
      expect(out).toBe(`4\n3\n2\n3\n4\n`);
    });

    it('fallocate: the default mode makes the file long enough, KEEP_SIZE changes nothing, punching is not supported', async () => {
      const { dir } = await workDir(kind, user, 'fallocate');
      const out = await run(
        user,
        dir,
        `fallocate -l 100000 f; stat -c %s f
${PYTHON} -c "import os; fd = os.open('f', os.O_RDWR); os.posix_fallocate(fd, 0, 200000); print(os.fstat(fd).st_size)"
fallocate -n -l 500000 f; stat -c %s f
fallocate -p -o 0 -l 10 f 2>/dev/null || echo punch refused; cmp -n 200000 f /dev/zero && echo zeros`,
      );
      expect(out).toBe(`100000\n200000\n200000\npunch refused\nzeros\n`);
    });

    it('statfs reports the agent\u2019s data quota', async () => {
      const { dir } = await workDir(kind, user, 'statfs');
      expect(await run(user, dir, `stat -f -c '%S %b' .`)).toBe(`4096 ${QUOTA_BYTES / 4096}\n`);
    });

    it('paths count 4096 bytes from the data tree\u2019s own root, whatever is mounted above it', async () => {
      const { dir, rel } = await workDir(kind, user, 'pathmax');
      // Directories of 200-byte names, one `cd` at a time (each call's own path stays short), and one of
      // the length that makes a 200-byte file name end exactly at 4096 bytes from the root of the memory
      // tree; a name one byte longer there is ENAMETOOLONG.
      const name = 'n'.repeat(200);
      const depth = Math.floor((4096 - rel.length - 203) / 201);
      const filler = 4096 - rel.length - depth * 201 - 202;
      const out = await run(
        user,
        dir,
        `for i in $(seq ${depth}); do mkdir ${name} && cd ${name} || exit 1; done
mkdir ${'m'.repeat(filler)} && cd ${'m'.repeat(filler)} || exit 1
echo deep > ${'f'.repeat(200)} && cat ${'f'.repeat(200)}
echo deeper > ${'g'.repeat(201)}`,
      );
      expect(rel.length + depth * 201 + 1 + filler + 1 + 200).toBe(4096);
      expect(out).toMatch(/^deep\n.*File name too long\n$/s);
    });

    it('a file past memory.max_file_bytes is EFBIG; the file keeps what fitted', async () => {
      const { dir } = await workDir(kind, user, 'filecap');
      const mib = MAX_FILE_BYTES / (1024 * 1024);
      const out = await run(user, dir, `dd if=/dev/zero of=big bs=1M count=${mib + 1} status=none; echo "dd $?"; stat -c %s big; truncate -s ${MAX_FILE_BYTES + 1} big; echo "truncate $?"`);
      expect(out).toMatch(/File too large\ndd 1\n/);
      expect(out).toMatch(new RegExp(`\\n${MAX_FILE_BYTES}\\n`));
      expect(out).toMatch(/truncate: .*File too large\ntruncate 1\n$/);
    });
  });
});

describe('outside data trees', () => {
  it('links and nodes are EPERM where no data tree is', async () => {
    const dir = s.kinds[0]!.mount.dir;
    const r = await sh(`cd ${q(dir)}/agents/${AGENT} || exit 99; ln -s x goals/l; ln status inbox.d/x; mkfifo goals/p`);
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([
      "ln: failed to create symbolic link 'goals/l': Operation not permitted",
      "ln: failed to create hard link 'inbox.d/x' => 'status': Operation not permitted",
      "mkfifo: cannot create fifo 'goals/p': Operation not permitted",
    ]);
  });
});
