/**
 * The node table of a mount: inode number <-> paths. The kernel names files by inode number in the
 * low-level protocol; we give each path a number the first time the kernel sees it and keep it for as
 * long as the path exists on this mount, even after the kernel forgot the node (cache pressure,
 * `echo 2 > drop_caches`): `ls -i`, `find -inum`, tar's hard-link detection and rsync see one number
 * per file. A rename moves the numbers with the files; a removal ends them.
 *
 * A service that numbers its own nodes (a data tree: Stat.ino) says which paths are one file: the names
 * of a hard-linked file share one number (the kernel then shares one inode and one page cache between
 * them), and a path that turns out to name another file than the one it had (replaced elsewhere) gets
 * that file's number.
 */

export const ROOT_INO = 1;

/** How long a removal by this mount is remembered (its event arrives within milliseconds). */
const REMOVAL_MEMORY_MS = 5000;

interface Node {
  readonly ino: number;
  /** The names the file has on this mount (empty once removed: the kernel may hold it, open). */
  paths: string[];
  /** How many lookups the kernel has not forgotten yet. */
  lookups: number;
  /** The service's own number of the file (Stat.ino), when it has one. */
  identity: number | undefined;
}

/** What the table needs of a stat to tell files apart. */
export interface Identity {
  ino?: number;
  nlink?: number;
  type?: string;
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

export class NodeTable {
  private readonly byIno = new Map<number, Node>();
  private readonly byPath = new Map<string, Node>();
  private readonly byIdentity = new Map<number, Node>();
  private next = ROOT_INO + 1;

  constructor() {
    const root: Node = { ino: ROOT_INO, paths: ['/'], lookups: 1, identity: undefined };
    this.byIno.set(ROOT_INO, root);
    this.byPath.set('/', root);
  }

  /** A path of a node, or undefined for a node the kernel should not know (or a removed file). */
  path(ino: number): string | undefined {
    return this.byIno.get(ino)?.paths[0];
  }

  /** The number of a path, given now if it has none (readdir: the kernel gets no reference). */
  ino(path: string, id?: Identity): number {
    return this.node(path, id).ino;
  }

  /** The number of a path, if it has one (no number is given). */
  known(path: string): number | undefined {
    return this.byPath.get(path)?.ino;
  }

  /** Every number in use. */
  inos(): IterableIterator<number> {
    return this.byIno.keys();
  }

  /** A lookup the kernel will remember (lookup, create, mkdir, link): one more reference on the node. */
  lookup(path: string, id?: Identity): number {
    const n = this.node(path, id);
    n.lookups++;
    return n.ino;
  }

  /** The kernel dropped `count` references. A node keeps its number while it has a path. */
  forget(ino: number, count: number): void {
    const n = this.byIno.get(ino);
    if (!n || ino === ROOT_INO) return;
    n.lookups = Math.max(0, n.lookups - count);
    this.dropIfUnused(n);
  }

  /** `path` (and, for a directory, everything under it) no longer exists: this mount removed it. */
  removed(path: string, dir = true): void {
    this.removedNow(path);
    this.forgetPaths(path, dir);
  }

  /**
   * Whether this mount removed `path` (unlink, rmdir, rename away) in the last few seconds, once: the
   * event of that removal is its own, and the kernel dropped the name already.
   */
  removedHere(path: string): boolean {
    const t = this.removals.get(path);
    if (t === undefined) return false;
    this.removals.delete(path);
    return Date.now() - t < REMOVAL_MEMORY_MS;
  }

  private readonly removals = new Map<string, number>();

  private removedNow(path: string): void {
    const now = Date.now();
    if (this.removals.size > 1000) for (const [p, t] of this.removals) if (now - t > REMOVAL_MEMORY_MS) this.removals.delete(p);
    this.removals.set(path, now);
  }

  private forgetPaths(path: string, dir: boolean): void {
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
    this.removedNow(from);
    this.forgetPaths(to, true);
    const moving = this.under(from);
    for (const [p] of moving) this.byPath.delete(p);
    for (const [p, n] of moving) {
      const moved = to + p.slice(from.length);
      n.paths = n.paths.map((q) => (q === p ? moved : q));
      this.byPath.set(moved, n);
    }
  }

  /** How many nodes are known (for tests and status). */
  get size(): number {
    return this.byIno.size;
  }

  private node(path: string, id?: Identity): Node {
    const identity = id?.ino;
    let n = this.byPath.get(path);
    if (n && (identity === undefined || n.identity === undefined || n.identity === identity)) {
      if (identity !== undefined && n.identity === undefined) this.identify(n, identity);
      return n;
    }
    // The path names another file than the one it had here (it was replaced elsewhere).
    if (n) this.detach(path, n);
    n = identity === undefined ? undefined : this.byIdentity.get(identity);
    if (n) {
      // Several names of one file (a hard link) share its number; a file with one name that shows up
      // under another has moved (renamed elsewhere): its old names are gone.
      if (!(id?.nlink !== undefined && id.nlink > 1 && id.type !== 'dir')) for (const old of [...n.paths]) this.unname(old, n);
      n.paths.push(path);
      this.byPath.set(path, n);
      return n;
    }
    n = { ino: this.next++, paths: [path], lookups: 0, identity: undefined };
    this.byPath.set(path, n);
    this.byIno.set(n.ino, n);
    if (identity !== undefined) this.identify(n, identity);
    return n;
  }

  private identify(n: Node, identity: number): void {
    n.identity = identity;
    this.byIdentity.set(identity, n);
  }

  /** Drops one name of a node (the node itself stays while the kernel holds it). */
  private unname(path: string, n: Node): void {
    this.byPath.delete(path);
    n.paths = n.paths.filter((p) => p !== path);
  }

  private detach(path: string, n: Node): void {
    this.unname(path, n);
    this.dropIfUnused(n);
  }

  private dropIfUnused(n: Node): void {
    if (n.lookups > 0 || n.paths.length > 0 || n.ino === ROOT_INO) return;
    this.byIno.delete(n.ino);
    if (n.identity !== undefined && this.byIdentity.get(n.identity) === n) this.byIdentity.delete(n.identity);
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
