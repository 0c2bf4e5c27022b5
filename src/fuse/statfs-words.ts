/**
 * statfs(2) numbers from a FileService's FsSpace: a tree under a quota (an agent's memory) reports its
 * limit as the size and its use, so `df` and `stat -f` show them; a tree without one reports the disk.
 */
import { NO_LIMIT, type FsSpace } from '../fs/types.js';

/** Blocks of this size: `df` and `stat -f` multiply by frsize, so bytes stay exact to 4 KiB. */
const QUOTA_BLOCK = 4096;
const U32 = 0xffffffff;
/** f_fsid: "a9" in ASCII, so tools that compare file systems see one. */
const FSID = 0x61393639;
const NAME_MAX = 255;

/** Whether a space is a limit of its own (not the "no limit" answer of a tree without a quota). */
export function hasLimit(space: FsSpace): boolean {
  return space.totalBytes < NO_LIMIT.totalBytes;
}

/**
 * The statvfs words the addon replies with (bsize, frsize, blocks, bfree, bavail, files, ffree, favail,
 * fsid, flag, namemax) for a space: block counts fit 32 bits (the block grows instead), used bytes round
 * up (a byte used takes a block) so that free never claims a byte that is not.
 */
export function statfsWords(space: FsSpace): number[] {
  const clamp = (n: number) => Math.min(U32, Math.max(0, Math.floor(n)));
  const bsize = QUOTA_BLOCK * Math.max(1, Math.ceil(space.totalBytes / QUOTA_BLOCK / U32));
  const blocks = Math.ceil(space.totalBytes / bsize);
  const used = Math.min(blocks, Math.ceil(space.usedBytes / bsize));
  const free = clamp(Math.min(blocks - used, Math.floor(space.freeBytes / bsize)));
  // No limit on the number of files: report them used out of a roomy total.
  const nodes = space.files ?? 0;
  const files = clamp(Math.max(1 << 24, nodes * 2));
  const ffree = clamp(files - nodes);
  return [bsize, bsize, clamp(blocks), free, free, files, ffree, ffree, FSID, 0, NAME_MAX];
}
