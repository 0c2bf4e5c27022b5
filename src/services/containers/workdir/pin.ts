/**
 * A session's workdir opened from the host, through /proc/<pid>/root of the container's init process.
 * That works only where the engine runs: the process must exist here and be in the container's cgroup
 * (/proc/<pid>/cgroup names the container). The check goes through a descriptor of /proc/<pid>, which is
 * kept for later operations: once that process is gone every lookup through it fails, so a pid reused
 * meanwhile can never lend another process's root. The init's credentials (uid, gid, groups,
 * capabilities) are the session's user: files/ acts with them.
 */
import { constants as K, readFileSync } from 'node:fs';
import { FsError } from '../../../fs/errors.js';
import { identityOf, type Identity } from './user-permissions.js';
import { at, closeFd, errnoOf, O_PATH, openFd, statFd, Walk, type Jail } from './walk.js';

export interface PinnedWorkdir {
  jail: Jail;
  close(): void;
}

/**
 * Why a workdir could not be opened from here: the process is gone, it is not this machine's, or (without
 * a pid) the container is not known yet.
 */
export type Unpinned = 'gone' | 'elsewhere' | 'unknown';

/** A container's init process, checked once. */
interface Proc {
  pid: number;
  /** O_PATH descriptor of /proc/<pid>. */
  fd: number;
  user: Identity;
  usedAt: number;
}

/** Processes not used for this long are let go (their descriptor closed) at the next pin. */
const IDLE_MS = 30_000;

function isIdentityMap(text: string): boolean {
  const lines = text.trim().split('\n');
  return lines.length === 1 && lines[0]!.trim().split(/\s+/).join(' ') === '0 0 4294967295';
}

function procText(proc: number, name: string): string | undefined {
  try {
    return readFileSync(at(proc, name), 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ESRCH') return undefined;
    throw err;
  }
}

/** /proc/<pid> opened and checked: in the container's cgroup, with the user ids of this host. */
function openProc(pid: number, containerId: string, path: string): Proc | Unpinned {
  let fd: number;
  try {
    fd = openFd(`/proc/${pid}`, O_PATH | K.O_DIRECTORY);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 'gone';
    throw err;
  }
  let proc: Proc | Unpinned | undefined;
  try {
    proc = checkProc(fd, pid, containerId, path);
    return proc;
  } finally {
    if (typeof proc !== 'object') closeFd(fd);
  }
}

function checkProc(fd: number, pid: number, containerId: string, path: string): Proc | Unpinned {
  const cgroup = procText(fd, 'cgroup');
  const status = procText(fd, 'status');
  if (cgroup === undefined || status === undefined) return 'gone';
  if (!cgroup.includes(containerId)) return 'elsewhere';
  for (const map of ['uid_map', 'gid_map']) {
    const text = procText(fd, map);
    if (text !== undefined && !isIdentityMap(text)) {
      throw new FsError('ENOSYS', path, "files/ cannot act for the session's user: the engine maps user ids into a user namespace");
    }
  }
  return { pid, fd, user: identityOf(status), usedAt: Date.now() };
}

/** The init processes of containers seen from this host, by container id (synchronous, as walk.ts). */
export class ContainerProcs {
  private readonly procs = new Map<string, Proc>();

  /**
   * Opens the workdir of a container, through its init process: the one known already, else `pid` (what
   * the engine says). 'unknown' asks for the pid; 'gone' with a known process means ask again.
   */
  pin(containerId: string, workdir: string, path: string, pid?: number): PinnedWorkdir | Unpinned {
    this.sweep();
    let proc = this.procs.get(containerId);
    if (pid !== undefined && proc?.pid !== pid) {
      this.forget(containerId);
      const opened = openProc(pid, containerId, path);
      if (typeof opened === 'string') return opened;
      this.procs.set(containerId, (proc = opened));
    }
    if (!proc) return 'unknown';
    proc.usedAt = Date.now();
    let root: number;
    try {
      root = openFd(at(proc.fd, 'root'), O_PATH | K.O_DIRECTORY);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'ESRCH') throw err;
      this.forget(containerId);
      return 'gone';
    }
    try {
      return openBeneath(root, proc.user, workdir, path);
    } finally {
      closeFd(root);
    }
  }

  forget(containerId: string): void {
    const proc = this.procs.get(containerId);
    if (!proc) return;
    closeFd(proc.fd);
    this.procs.delete(containerId);
  }

  private sweep(): void {
    const old = Date.now() - IDLE_MS;
    for (const [id, proc] of this.procs) if (proc.usedAt < old) this.forget(id);
  }
}

/**
 * The workdir inside the container's root, walked like any path there (`..` and absolute links stay in
 * that root). Only the image's links are followed (on the read-only root), and what is found must be a
 * mount of its own: a session that moved a directory above its workdir (in /tmp, say) and put a link or
 * a directory of its own in its place does not get files/ to act there.
 */
function openBeneath(root: number, user: Identity, workdir: string, path: string): PinnedWorkdir {
  const walk = new Walk({ fd: root, where: [], user, linksOn: statFd(root).dev }, path);
  try {
    const found = walk.resolve(workdir);
    if (!found.node?.stat.isDirectory()) throw new FsError('ENOENT', path, "the session's workdir does not exist");
    if (found.node.stat.dev === found.dir.stat.dev) throw new FsError('ENOENT', path, "the session's workdir is not where its container mounted it");
    const fd = walk.keep(found.node.fd);
    const where = found.name === '' ? found.names : [...found.names, found.name];
    return { jail: { fd, where, user, dev: found.node.stat.dev }, close: () => closeFd(fd) };
  } finally {
    walk.close();
  }
}
