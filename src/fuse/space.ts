/**
 * statfs(2) numbers from a FileService's FsSpace: a tree under a quota (an agent's memory) reports its
 * limit as the size and its use, so `df` and `stat -f` show them; a tree without one reports the disk.
 */
import { NO_LIMIT, type FsSpace } from '../fs/types.js';
import type { FuseStatfs } from './binding.js';

/** Blocks of this size: `df` and `stat -f` multiply by frsize, so bytes stay exact to 4 KiB. */
const QUOTA_BLOCK = 4096;
const U32 = 0xffffffff;

/** Whether a space is a limit of its own (not the "no limit" answer of a tree without a quota). */
export function hasLimit(space: FsSpace): boolean {
  return space.totalBytes < NO_LIMIT.totalBytes;
}

export function statfsOfSpace(space: FsSpace): Partial<FuseStatfs> {
  const clamp = (n: number) => Math.min(U32, Math.max(0, Math.floor(n)));
  // Keep the byte counts right when the block count needs scaling to fit 32 bits.
  const bsize = QUOTA_BLOCK * Math.max(1, Math.ceil(space.totalBytes / QUOTA_BLOCK / U32));
  const blocks = Math.ceil(space.totalBytes / bsize);
  // Used rounds up (a byte used takes a block), so that free never claims a byte that is not.
  const used = Math.min(blocks, Math.ceil(space.usedBytes / bsize));
  const free = clamp(Math.min(blocks - used, Math.floor(space.freeBytes / bsize)));
  const out: Partial<FuseStatfs> = { bsize, frsize: bsize, blocks: clamp(blocks), bfree: free, bavail: free };
  if (space.files !== undefined) {
    // No limit on the number of files: report them used out of a roomy total.
    const total = 1 << 24;
    out.files = clamp(Math.max(total, space.files));
    out.ffree = clamp(out.files - space.files);
    out.favail = out.ffree;
  }
  return out;
}
