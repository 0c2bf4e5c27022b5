/**
 * Following symbolic links inside one data tree, for the callers that follow them themselves (HTTP,
 * the CLI, the runtime; a FUSE mount's kernel follows links on its own). A link is followed while it
 * stays in the tree: a relative target is resolved from the link's directory, `..` never above the
 * tree's root; an absolute target leads outside it (on a mount it names a host path).
 */
import { FsError } from './errors.js';
import { segmentsOf } from './paths.js';
import type { NodeType } from './types.js';

/** As many links in a row as Linux follows (its MAXSYMLINKS). */
export const MAX_LINKS_FOLLOWED = 40;

interface LinkNode {
  type: NodeType;
  target?: string;
}

/**
 * Resolves `path` one name at a time: links among its directories always, the last name's with
 * `followLast`. The last name need not exist (a dangling link leads to the path it names); a missing or
 * non-directory name on the way is ENOENT / ENOTDIR naming `path`.
 */
export function resolveInTree(path: string, followLast: boolean, lookup: (path: string) => LinkNode | undefined): string {
  const done: string[] = [];
  const todo = segmentsOf(path);
  let links = 0;
  const here = () => '/' + done.join('/');
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === '' || name === '.') continue;
    if (name === '..') {
      if (done.length === 0) throw new FsError('EINVAL', path, 'the symbolic link leads outside the data tree');
      done.pop();
      continue;
    }
    const last = todo.length === 0;
    done.push(name);
    const node = lookup(here());
    if (!node) {
      if (last) break;
      throw new FsError('ENOENT', path, `no such file or directory (${here()})`);
    }
    if (node.type === 'symlink' && (!last || followLast)) {
      if (++links > MAX_LINKS_FOLLOWED) throw new FsError('ELOOP', path, `more than ${MAX_LINKS_FOLLOWED} symbolic links in a row`);
      const target = node.target ?? '';
      if (target.startsWith('/')) throw new FsError('EINVAL', path, `the symbolic link ${here()} leads outside the data tree (to ${target})`);
      done.pop();
      todo.unshift(...target.split('/'));
      continue;
    }
    if (!last && node.type !== 'dir') throw new FsError('ENOTDIR', path, `not a directory (${here()})`);
  }
  return here();
}
