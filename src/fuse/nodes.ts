/**
 * The node table of a mount: inode number <-> path. The kernel names files by inode number in the
 * low-level protocol; we give each path a number the first time the kernel sees it and keep it for as
 * long as the path exists on this mount, even after the kernel forgot the node (cache pressure,
 * `echo 2 > drop_caches`): `ls -i`, `find -inum`, tar's hard-link detection and rsync see one number
 * per file. A rename moves the numbers with the files; a removal ends them.
 */

export const ROOT_INO = 1;

interface Node {
  readonly ino: number;
  /** Undefined once the path was removed (the kernel may still hold the node for an open file). */
  path: string | undefined;
  /** How many lookups the kernel has not forgotten yet. */
  lookups: number;
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

export class NodeTable {
  private readonly byIno = new Map<number, Node>();
  private readonly byPath = new Map<string, Node>();
  private next = ROOT_INO + 1;

  constructor() {
    const root: Node = { ino: ROOT_INO, path: '/', lookups: 1 };
    this.byIno.set(ROOT_INO, root);
    this.byPath.set('/', root);
  }

  /** The path of a node, or undefined for a node the kernel should not know (or a removed file). */
  path(ino: number): string | undefined {
    return this.byIno.get(ino)?.path;
  }

  /** The number of a path, given now if it has none (readdir: the kernel gets no reference). */
  ino(path: string): number {
    return this.node(path).ino;
  }

  /** The number of a path, if it has one (no number is given). */
  known(path: string): number | undefined {
    return this.byPath.get(path)?.ino;
  }

  /** Every number in use. */
  inos(): IterableIterator<number> {
    return this.byIno.keys();
  }

  /** A lookup the kernel will remember (lookup, create, mkdir): one more reference on the node. */
  lookup(path: string): number {
    const n = this.node(path);
    n.lookups++;
    return n.ino;
  }

  /** The kernel dropped `count` references. A node keeps its number while its path exists. */
  forget(ino: number, count: number): void {
    const n = this.byIno.get(ino);
    if (!n || ino === ROOT_INO) return;
    n.lookups = Math.max(0, n.lookups - count);
    if (n.lookups === 0 && n.path === undefined) this.byIno.delete(ino);
  }

  /** `path` (and, for a directory, everything under it) no longer exists. */
  removed(path: string, dir = true): void {
    if (!dir) {
      const n = this.byPath.get(path);
      if (n) this.detach(path, n);
      return;
    }
    for (const [p, n] of this.under(path)) this.detach(p, n);
  }

  /** `from` is now `to`: the nodes under `from` move, what was at `to` is gone. */
  renamed(from: string, to: string): void {
    if (from === to) return;
    this.removed(to);
    const moving = this.under(from);
    for (const [p] of moving) this.byPath.delete(p);
    for (const [p, n] of moving) {
      n.path = to + p.slice(from.length);
      this.byPath.set(n.path, n);
    }
  }

  /** How many nodes are known (for tests and status). */
  get size(): number {
    return this.byIno.size;
  }

  private node(path: string): Node {
    let n = this.byPath.get(path);
    if (!n) {
      n = { ino: this.next++, path, lookups: 0 };
      this.byPath.set(path, n);
      this.byIno.set(n.ino, n);
    }
    return n;
  }

  private detach(path: string, n: Node): void {
    this.byPath.delete(path);
    n.path = undefined;
    if (n.lookups === 0) this.byIno.delete(n.ino);
  }

  /** The path and every path below it (a linear scan: only for removals and renames of directories). */
  private under(path: string): Array<[string, Node]> {
    const out: Array<[string, Node]> = [];
    const self = this.byPath.get(path);
    if (self) out.push([path, self]);
    const prefix = path === '/' ? '/' : path + '/';
    for (const [p, n] of this.byPath) if (p.startsWith(prefix) && p !== path) out.push([p, n]);
    return out;
  }
}
