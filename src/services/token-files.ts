/**
 * /runtime/tokens: token management as files, so every transport manages tokens the same way.
 *   new        call: {name?, agent?, paths?, read_only?, ttl?} -> the token (its secret is shown only here);
 *              the new token stays within the caller's own grant
 *   <id>       view: the token's metadata (never the secret); removing it revokes the token
 * Only admin principals reach any of it.
 */
import { z } from 'zod';
import { FsError } from '../fs/errors.js';
import { jsonText } from '../fs/bytes.js';
import { SyntheticFs, call, dir, jsonView, parseJson, type Node } from '../fs/synthetic.js';
import type { Cx, DirEntry, FileService, Handle, OpenFlags, Stat } from '../fs/types.js';
import { parseDuration, type TokenInfo, type TokenStore } from '../runtime/token-store.js';
import { validate } from './kit/validation.js';

const AGENT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const NewTokenRequest = z
  .object({
    name: z.string().min(1).max(200).optional(),
    agent: z.string().regex(AGENT_ID, 'agent ids are lowercase names').optional(),
    paths: z.array(z.string().startsWith('/', 'paths must be absolute')).max(64).optional(),
    read_only: z.boolean().optional(),
    ttl: z.union([z.string(), z.number()]).optional(),
  })
  .strict();

/** The JSON shape of a token's metadata (snake_case like the rest of the file surface). */
export function tokenJson(info: TokenInfo, now = Date.now()): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: info.id,
    name: info.name,
    admin: info.admin,
    agent: info.agent ?? null,
    paths: info.paths,
    read_only: info.readOnly,
    created_at: info.createdAt,
    expires_at: info.expiresAt ?? null,
    last_used_at: info.lastUsedAt ?? null,
    state: info.expiresAt !== undefined && now >= info.expiresAt ? 'expired' : 'active',
  };
  return out;
}

function tokenTree(store: TokenStore): Node {
  return dir(
    {
      new: call((req, cx) => {
        const text = new TextDecoder().decode(req).trim();
        const r = validate(NewTokenRequest, text === '' ? {} : parseJson(text, '/new'), '/new');
        const spec: Parameters<TokenStore['create']>[0] = {};
        if (r.name !== undefined) spec.name = r.name;
        if (r.agent !== undefined) spec.agent = r.agent;
        if (r.paths !== undefined) spec.paths = r.paths;
        if (r.read_only !== undefined) spec.readOnly = r.read_only;
        if (r.ttl !== undefined) spec.ttlMs = parseDuration(r.ttl, '/new');
        // What a token mints stays within it (a ttl-only admin token mints tokens that expire with it).
        const { token, info } = store.create(spec, { where: '/new', ...(cx.principal.grant ? { within: cx.principal.grant } : {}) });
        return jsonText({ ...tokenJson(info), token });
      }),
    },
    {
      dynamic: {
        list: () => store.list().map((t) => t.id),
        get: (name) => {
          const info = store.get(name);
          return info ? jsonView(() => tokenJson(store.get(name) ?? info)) : undefined;
        },
      },
    },
  );
}

/** The token files, refusing every non-admin principal. */
export class TokenService implements FileService {
  readonly serviceName = 'tokens';
  private readonly fs: SyntheticFs;

  constructor(private readonly store: TokenStore) {
    this.fs = new SyntheticFs(tokenTree(store), 'tokens');
  }

  private admin(path: string, cx: Cx): void {
    if (!cx.principal.admin) throw new FsError('EACCES', path, 'only an admin token may manage tokens');
  }

  async stat(path: string, cx: Cx): Promise<Stat> {
    this.admin(path, cx);
    return this.fs.stat(path, cx);
  }

  async readdir(path: string, cx: Cx): Promise<DirEntry[]> {
    this.admin(path, cx);
    return this.fs.readdir(path, cx);
  }

  async open(path: string, flags: OpenFlags, cx: Cx): Promise<Handle> {
    this.admin(path, cx);
    return this.fs.open(path, flags, cx);
  }

  async remove(path: string, cx: Cx): Promise<void> {
    this.admin(path, cx);
    const id = path.slice(1);
    if (id === 'new' || id === '' || id.includes('/')) throw new FsError('EPERM', path, 'not a token');
    if (!this.store.revoke(id)) throw new FsError('ENOENT', path, 'no such token');
  }
}
