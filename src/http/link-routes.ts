/**
 * Links and special nodes over HTTP (CONTRACT section 12): following symbolic links for GET, HEAD, PUT
 * and appends (within their data tree, through the caller's view, so every access check applies to the
 * path read), `?nofollow=1`, and making links and nodes with `PUT ?symlink=1`, `?link=/q`, `?mknod=`.
 */
import { FsError } from '../fs/errors.js';
import { normalizePath } from '../fs/paths.js';
import type { Cx, FileService, Stat } from '../fs/types.js';
import { statHeaders } from './file-headers.js';
import type { RouteContext } from './routes.js';

function missing(err: unknown): boolean {
  return err instanceof FsError && (err.code === 'ENOENT' || err.code === 'ENOTDIR');
}

/**
 * Runs `op` on `path`, and again on where the path leads when it names a symbolic link (`isLink`), ends
 * at one that is no directory (ELOOP from a write), or misses because a directory on the way is a link.
 * The view resolves the links (EINVAL for a link out of its tree, ELOOP after 40), so the second run is
 * checked by every layer of the view like the first.
 */
export async function following<T>(
  view: FileService,
  path: string,
  cx: Cx,
  op: (path: string) => Promise<T>,
  isLink: (result: T) => boolean = () => false,
): Promise<T> {
  let result: T;
  try {
    result = await op(path);
  } catch (err) {
    if (!view.realpath) throw err;
    const onLink = err instanceof FsError && err.code === 'ELOOP';
    if (!onLink && !missing(err)) throw err;
    // A path that misses on its way stays the miss it was; a link out of the tree or a loop says so.
    const real = await view.realpath(path, true, cx).catch((e: unknown) => {
      if (missing(e)) return path;
      throw e;
    });
    if (real === path) throw err;
    return op(real);
  }
  if (!isLink(result) || !view.realpath) return result;
  return op(await view.realpath(path, true, cx));
}

export const isLinkStat = (st: Stat): boolean => st.type === 'symlink';

/** `GET /p?nofollow=1` on a symbolic link: its target, as text. */
export async function sendLinkTarget({ reply, view, cx, target }: RouteContext, st: Stat) {
  if (!view.readlink) throw new FsError('EINVAL', target.path, 'not a symbolic link');
  const text = await view.readlink(target.path, cx);
  return statHeaders(reply, st).header('cache-control', 'no-cache').type('text/plain; charset=utf-8').send(text);
}

/**
 * `PUT /p?symlink=1`, `?link=/q`, `?mknod=fifo|socket`: makes the node and answers 201 with its stat;
 * false when the PUT is none of these. (A boolean, not the reply: a fastify reply is a thenable.)
 */
export async function makeNode(ctx: RouteContext, mode: number | undefined): Promise<boolean> {
  const { request, reply, view, cx, target, body } = ctx;
  const q = target.query;
  const path = target.path;
  let st: Stat;
  if (q.has('symlink')) {
    request.op = 'symlink';
    if (!view.symlink) throw new FsError('ENOSYS', path, 'symbolic links are not supported here');
    st = await view.symlink(path, Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'), cx);
  } else if (q.has('link')) {
    request.op = 'link';
    if (body.length > 0) throw new FsError('EINVAL', path, 'PUT ?link= takes no body');
    let from: string;
    try {
      from = normalizePath(q.get('link') ?? '');
    } catch (err) {
      throw err instanceof FsError ? new FsError(err.code, path, `?link=: ${err.detail}`) : err;
    }
    if (!view.link) throw new FsError('ENOSYS', path, 'hard links are not supported here');
    st = await view.link(from, path, cx);
  } else if (q.has('mknod')) {
    request.op = 'mknod';
    if (body.length > 0) throw new FsError('EINVAL', path, 'PUT ?mknod= takes no body');
    const kind = q.get('mknod');
    if (kind === 'char' || kind === 'block') throw new FsError('EPERM', path, 'device nodes are not allowed');
    if (kind !== 'fifo' && kind !== 'socket') throw new FsError('EINVAL', path, `?mknod= is fifo or socket, not '${kind ?? ''}'`);
    if (!view.mknod) throw new FsError('ENOSYS', path, 'special nodes are not supported here');
    st = await view.mknod(path, kind, mode ?? 0o644, cx);
  } else {
    return false;
  }
  statHeaders(reply.code(201), st).send();
  return true;
}
