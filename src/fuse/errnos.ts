/**
 * The errno numbers the FUSE adapter answers with directly (not from an FsError). Those of the error
 * table's codes come from the table (src/fs/errors.ts), so a number is written in one place; the rest
 * are kernel-only answers that no service raises and no other transport shows.
 */
import { ERROR_TABLE } from '../fs/errors.js';

export const EPERM = ERROR_TABLE.EPERM.errno;
export const ENOENT = ERROR_TABLE.ENOENT.errno;
export const EIO = ERROR_TABLE.EIO.errno;
export const EBADF = ERROR_TABLE.EBADF.errno;
export const EINVAL = ERROR_TABLE.EINVAL.errno;
export const ENOSYS = ERROR_TABLE.ENOSYS.errno;
export const ETIMEDOUT = ERROR_TABLE.ETIMEDOUT.errno;

/** An interrupted request (the caller's signal). */
export const EINTR = 4;
/** A result too large for the caller's buffer (getxattr, listxattr). */
export const ERANGE = 34;
/** No such extended attribute. */
export const ENODATA = 61;
/** An operation the file system does not offer (fallocate's hole punching). */
export const EOPNOTSUPP = 95;
