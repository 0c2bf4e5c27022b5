/**
 * The long-lived responses of the HTTP mapping (SSE watches, stream reads), each with the token that
 * opened it: all end when the server shuts down, and those of a token end when it is revoked (or its
 * agent deleted) and when it expires, so no response outlives the credential that opened it.
 */
import type { ServerResponse } from 'node:http';
import { FsError } from '../fs/errors.js';
import { expiredError, isRevoked, type Revocation } from '../runtime/token-store.js';

/** Ends a response; `reason` (EAUTH) when its token stopped being valid, none at shutdown. */
export type EndResponse = (reason?: FsError) => void;

/** The token a response was opened with. */
export interface Holder {
  id: string;
  agent?: string;
  expiresAt?: number;
}

interface Entry {
  token: Holder;
  end: EndResponse;
  timer?: ReturnType<typeof setTimeout>;
}

/** Node's timers wait at most this long (about 24.8 days); a later expiry waits again. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;
/** How long shutdown waits for ended responses to flush. */
const FLUSH_MS = 2000;

function revokedError(token: Holder, r: Revocation): FsError {
  const why = 'agent' in r ? `: its agent '${r.agent}' was deleted` : '';
  return new FsError('EAUTH', '/', `token ${token.id} was revoked${why}`);
}

export class LongLivedResponses {
  private readonly open = new Map<ServerResponse, Entry>();

  track(res: ServerResponse, token: Holder, end: EndResponse): void {
    const entry: Entry = { token, end };
    this.open.set(res, entry);
    res.once('close', () => {
      clearTimeout(entry.timer);
      this.open.delete(res);
    });
    if (token.expiresAt !== undefined) this.endAtExpiry(entry, token.expiresAt);
  }

  private endAtExpiry(entry: Entry, expiresAt: number): void {
    const left = expiresAt - Date.now();
    if (left <= 0) return entry.end(expiredError(entry.token));
    entry.timer = setTimeout(() => this.endAtExpiry(entry, expiresAt), Math.min(left, LONGEST_TIMER_MS));
    entry.timer.unref();
  }

  /** Ends the responses of the revoked tokens. */
  revoke(r: Revocation): void {
    for (const entry of [...this.open.values()]) if (isRevoked(entry.token, r)) entry.end(revokedError(entry.token, r));
  }

  /** Ends every response (the server is shutting down) and resolves once they have flushed (or after 2 s). */
  async endAll(): Promise<void> {
    const responses = [...this.open.keys()];
    for (const entry of [...this.open.values()]) entry.end();
    await Promise.race([
      Promise.all(responses.map((res) => (res.writableFinished || res.destroyed ? undefined : new Promise((r) => res.once('close', r))))),
      new Promise((r) => setTimeout(r, FLUSH_MS).unref()),
    ]);
  }
}
