/** Translation between the service's model (Stat, OpenFlags) and the kernel's (stat words, open flags). */
import type { OpenFlags, Stat } from '../fs/types.js';
import type { StatWords } from './binding.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** The S_IFMT bits of a node's type (every synthetic file is a regular file). */
export function typeBits(type: Stat['type']): number {
  switch (type) {
    case 'dir':
      return S_IFDIR;
    case 'symlink':
      return S_IFLNK;
    case 'fifo':
      return S_IFIFO;
    case 'socket':
      return S_IFSOCK;
    default:
      return S_IFREG;
  }
}
const O_ACCMODE = 0o3;
const O_WRONLY = 0o1;
const O_RDWR = 0o2;
export const O_EXCL = 0o200;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;

/** st_blksize: what stdio, Python and coreutils size their buffers by. */
export const BLOCK_SIZE = 128 * 1024;

/** ms since the epoch (and ns past that ms) -> [s, ns]. */
function splitTime(ms: number, ns = 0): [number, number] {
  const whole = Math.floor(ms);
  const s = Math.floor(whole / 1000);
  return [s, Math.min(999_999_999, (whole - s * 1000) * 1e6 + ns)];
}

export function statWords(ino: number, st: Stat, owner: { uid: number; gid: number }): StatWords {
  const dir = st.type === 'dir';
  const size = dir ? 0 : st.size;
  const [as, ans] = st.atime !== undefined ? splitTime(st.atime, st.atimeNs) : splitTime(st.mtime, st.mtimeNs);
  const [ms, mns] = splitTime(st.mtime, st.mtimeNs);
  const [cs, cns] = splitTime(st.ctime);
  return [
    ino,
    typeBits(st.type) | (st.mode & 0o7777),
    // A data tree counts names and subdirectories; a synthetic directory has none it knows of.
    st.nlink ?? (dir ? 2 : 1),
    st.uid ?? owner.uid,
    st.gid ?? owner.gid,
    size,
    Math.ceil(size / 512),
    BLOCK_SIZE,
    as,
    ans,
    ms,
    mns,
    cs,
    cns,
  ];
}

/** open(2) flags -> OpenFlags. */
export function openFlags(flags: number): OpenFlags {
  const access = flags & O_ACCMODE;
  const out: OpenFlags = { read: access !== O_WRONLY, write: access === O_WRONLY || access === O_RDWR };
  if (flags & O_APPEND) out.append = true;
  if (flags & O_TRUNC) out.truncate = true;
  return out;
}
