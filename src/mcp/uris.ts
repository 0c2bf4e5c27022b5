/**
 * Files as MCP resource URIs: `agent9:///memory/notes.txt` is the file `/memory/notes.txt` of the
 * session's view (three slashes, as `file:///`: the part after `agent9://` is the path). Each segment
 * is percent-encoded, so any name the namespace allows has exactly one URI.
 */
import { FsError } from '../fs/errors.js';
import { normalizePath } from '../fs/paths.js';

export const URI_PREFIX = 'agent9://';

/** The URI template clients fill in (RFC 6570 reserved expansion: the path keeps its slashes). */
export const URI_TEMPLATE = 'agent9:///{+path}';

export function uriOf(path: string): string {
  return (
    URI_PREFIX +
    normalizePath(path)
      .split('/')
      .map((s) => encodeURIComponent(s))
      .join('/')
  );
}

/** The namespace path a URI names; EINVAL for anything that is not an `agent9:` URI of a valid path. */
export function pathOfUri(uri: string): string {
  if (!uri.startsWith(URI_PREFIX)) throw new FsError('EINVAL', '/', `'${uri}' is not an agent9 URI (agent9:///path)`);
  const rest = uri.slice(URI_PREFIX.length).replace(/[?#].*$/, '');
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw new FsError('EINVAL', '/', `'${uri}': malformed percent-encoding`);
  }
  // agent9:///p is the form we hand out; agent9://p (no empty authority) names the same file.
  return normalizePath(decoded.startsWith('/') ? decoded : `/${decoded}`);
}
