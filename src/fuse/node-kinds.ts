/**
 * The requests of a local disk's other node kinds, beside adapter.ts: symbolic links (symlink,
 * readlink), hard links (link), FIFOs and sockets (mknod; device nodes are EPERM), and fallocate.
 * The kernel follows symbolic links itself and serves the I/O of FIFOs and sockets itself, so these are
 * the only requests they need. POSIX and flock locks need none: the addon offers no lock operations, so
 * the kernel keeps the locks of every process on this mount itself.
 */
import type { Cx, FileService, Stat } from '../fs/types.js';
import type { StatWords } from './binding.js';
import { Op } from './binding.js';
import { childPath, type NodeTable } from './nodes.js';
import type { OpenFile } from './open-files.js';
import type { Answers } from './reply-outcomes.js';
import type { Reply } from './requests.js';
import { S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK } from './translate.js';
import { EPERM, EBADF, EINVAL, ENOSYS, EOPNOTSUPP } from './errnos.js';

const FALLOC_FL_KEEP_SIZE = 0x01;

/** What these requests use of the adapter. */
export interface AdapterParts {
  readonly service: FileService;
  readonly nodes: NodeTable;
  readonly answers: Answers;
  readonly attrTimeout: number;
  readonly entryTimeout: number;
  statWords(ino: number, st: Stat): StatWords;
  pathOf(ino: number, reply: Reply): string | undefined;
  file(fh: number): OpenFile | undefined;
  /** `work`, once the writes held for these inodes are committed. */
  afterWrites<T>(inos: Array<number | undefined>, work: () => Promise<T>): Promise<T>;
}

export const NODE_KIND_OPS: ReadonlySet<number> = new Set([Op.readlink, Op.symlink, Op.link, Op.mknod, Op.fallocate]);

export class NodeKindRequests {
  constructor(private readonly a: AdapterParts) {}

  dispatch(op: number, reply: Reply, cx: Cx, ino: number, a: unknown, b: unknown, c: unknown, d: unknown): void {
    switch (op) {
      case Op.readlink:
        return this.readlink(reply, cx, ino);
      case Op.symlink:
        return this.symlink(reply, cx, ino, a as string, b as string);
      case Op.link:
        return this.link(reply, cx, ino, a as number, b as string);
      case Op.mknod:
        return this.mknod(reply, cx, ino, a as string, b as number);
      case Op.fallocate:
        return this.fallocate(reply, a as number, b as number, c as number, d as number);
      default:
        return reply.err(ENOSYS);
    }
  }

  /** A new name answered as the kernel's entry for it. */
  private entry(op: string, path: string, reply: Reply, work: Promise<Stat>): void {
    const { a } = this;
    a.answers.within(op, path, reply, work, (st) => reply.entry(a.statWords(a.nodes.lookup(path, st), st), a.attrTimeout, a.entryTimeout));
  }

  private readlink(reply: Reply, cx: Cx, ino: number): void {
    const path = this.a.pathOf(ino, reply);
    if (path === undefined) return;
    const { readlink } = this.a.service;
    if (!readlink) return reply.err(EINVAL);
    this.a.answers.within('readlink', path, reply, readlink.call(this.a.service, path, cx), (target) => reply.readlink(target));
  }

  private symlink(reply: Reply, cx: Cx, parent: number, name: string, target: string): void {
    const dir = this.a.pathOf(parent, reply);
    if (dir === undefined) return;
    const path = childPath(dir, name);
    const { symlink } = this.a.service;
    if (!symlink) return reply.err(EPERM);
    this.entry('symlink', path, reply, symlink.call(this.a.service, path, target, cx));
  }

  private link(reply: Reply, cx: Cx, ino: number, newParent: number, newName: string): void {
    const from = this.a.pathOf(ino, reply);
    if (from === undefined) return;
    const dir = this.a.pathOf(newParent, reply);
    if (dir === undefined) return;
    const to = childPath(dir, newName);
    const { link } = this.a.service;
    if (!link) return reply.err(EPERM);
    this.entry('link', to, reply, this.a.afterWrites([ino], () => link.call(this.a.service, from, to, cx)));
  }

  /** FIFOs and sockets are nodes; a regular file by mknod(2) is a create; device nodes are refused. */
  private mknod(reply: Reply, cx: Cx, parent: number, name: string, mode: number): void {
    const dir = this.a.pathOf(parent, reply);
    if (dir === undefined) return;
    const path = childPath(dir, name);
    const { service } = this.a;
    const type = mode & S_IFMT;
    if (type === S_IFCHR || type === S_IFBLK) return reply.err(EPERM);
    if (type === S_IFREG || type === 0) {
      const work = service.open(path, { write: true, create: true, exclusive: true, mode: mode & 0o7777 }, cx).then(async (h) => {
        await h.close();
        return service.stat(path, cx);
      });
      return this.entry('mknod', path, reply, work);
    }
    if (type !== S_IFIFO && type !== S_IFSOCK) return reply.err(EINVAL);
    const { mknod } = service;
    if (!mknod) return reply.err(EPERM);
    this.entry('mknod', path, reply, mknod.call(service, path, type === S_IFIFO ? 'fifo' : 'socket', mode & 0o7777, cx));
  }

  /**
   * posix_fallocate's default mode makes the file at least offset + length long (data files are sparse:
   * nothing else is to be reserved, but the quota counts the new size); KEEP_SIZE reserves nothing and
   * changes nothing. Punching or zeroing ranges is EOPNOTSUPP (glibc and tools then write zeros).
   */
  private fallocate(reply: Reply, mode: number, offset: number, length: number, fh: number): void {
    const f = this.a.file(fh);
    if (!f) return reply.err(EBADF);
    if (offset < 0 || length <= 0) return reply.err(EINVAL);
    if (mode & ~FALLOC_FL_KEEP_SIZE) return reply.err(EOPNOTSUPP);
    if (f.kind !== 'data' || !f.handle.truncate || !f.handle.stat) return reply.err(EOPNOTSUPP);
    const { handle } = f;
    const work = this.a.afterWrites([f.ino], async () => {
      const st = await handle.stat!();
      if (mode & FALLOC_FL_KEEP_SIZE || offset + length <= st.size) return;
      await handle.truncate!(offset + length);
    });
    this.a.answers.settle('fallocate', f.path, reply, work, () => reply.ok());
  }
}
