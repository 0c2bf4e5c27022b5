/**
 * Extended attributes that show what FUSE's stat cannot: the version (the HTTP ETag, Plan 9's qid.vers)
 * and the file kind. `getfattr -n user.agent9.version FILE`, or os.getxattr in Python.
 */
import type { Stat } from '../fs/types.js';
import type { Reply } from './requests.js';
import { ERANGE } from './errnos.js';

export const XATTRS: Record<string, (st: Stat) => string> = {
  'user.agent9.version': (st) => String(st.version),
  'user.agent9.kind': (st) => st.kind,
};
export const XATTR_NAMES = Object.keys(XATTRS);

/** getxattr/listxattr: size 0 asks for the length; a buffer too small is ERANGE. */
export function answerBytes(reply: Reply, value: Buffer, size: number): void {
  if (size === 0) return reply.xattrSize(value.length);
  if (value.length > size) return reply.err(ERANGE);
  reply.buf(value);
}
