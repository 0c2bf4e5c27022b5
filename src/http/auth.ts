/**
 * Bearer authentication: a token becomes who is asking (the principal) and what it sees (its view).
 * An admin token sees the served namespace; an agent-scoped token sees that agent's local namespace
 * (`/agents/<id>` of the global view) at `/`; path prefixes and read-only narrow either.
 */
import { FsError } from '../fs/errors.js';
import type { Cx, FileService, Principal } from '../fs/types.js';
import { restrict, rootAt } from '../mounts/scope.js';
import { agentRoot, isRevoked, type Revocation, type TokenInfo, type TokenStore } from '../runtime/token-store.js';

export { agentRoot };

export interface Caller {
  cx: Cx;
  view: FileService;
  token: TokenInfo;
}

export interface Authenticator {
  /** The caller of a request from its Authorization header; EAUTH (401) when there is no valid token. */
  authenticate(authorization: string | undefined): Caller;
  /** Calls `listener` when tokens are revoked (so that what they opened ends); returns the unsubscribe. */
  onRevoke?(listener: (r: Revocation) => void): () => void;
}

export class TokenAuthenticator implements Authenticator {
  /** Views and principals by token id; cheap wrappers, built once per token. */
  private readonly callers = new Map<string, { view: FileService; cx: Cx; token: TokenInfo }>();

  constructor(
    private readonly tokens: TokenStore,
    private readonly service: FileService,
  ) {
    tokens.onRevoke((r) => {
      for (const [id, caller] of this.callers) if (isRevoked(caller.token, r)) this.callers.delete(id);
    });
  }

  onRevoke(listener: (r: Revocation) => void): () => void {
    return this.tokens.onRevoke(listener);
  }

  authenticate(authorization: string | undefined): Caller {
    if (!authorization) throw new FsError('EAUTH', '/', 'missing bearer token (Authorization: Bearer <token>)');
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (!m) throw new FsError('EAUTH', '/', 'the Authorization header must be "Bearer <token>"');
    const info = this.tokens.verify(m[1]!);
    const known = this.callers.get(info.id);
    if (known) return known;
    const caller = { ...this.build(info), token: info };
    if (this.callers.size > 10_000) this.callers.clear();
    this.callers.set(info.id, caller);
    return caller;
  }

  private build(info: TokenInfo): { view: FileService; cx: Cx } {
    const principal: Principal = { id: info.admin ? 'admin' : `token:${info.id}`, admin: info.admin, grant: info };
    let view = this.service;
    if (info.agent !== undefined) {
      principal.agentId = info.agent;
      view = rootAt(view, agentRoot(info.agent));
    }
    view = restrict(view, { prefixes: info.paths, readOnly: info.readOnly, by: 'token' });
    return { view, cx: { principal } };
  }
}
