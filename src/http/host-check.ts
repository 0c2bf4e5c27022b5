/**
 * Which addresses a server may listen on without `--allow-remote`: loopback only. Light (no fastify), so
 * `agentctl serve` refuses a remote address before it loads the server.
 */
import { isIP } from 'node:net';
import { FsError } from '../fs/errors.js';

/** True for 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

export function checkHost(host: string, allowRemote: boolean): void {
  if (!isLoopback(host) && !allowRemote) {
    throw new FsError(
      'EPERM',
      '/',
      `refusing to listen on ${host}, which other machines can reach; pass --allow-remote to do it anyway (every request still needs a token)`,
    );
  }
}
