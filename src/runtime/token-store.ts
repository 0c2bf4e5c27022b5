/**
 * Bearer tokens: stored hashed (SHA-256 of a 192-bit random secret; the secret is shown once, at
 * creation), optionally scoped to one agent, to path prefixes and to reading, optionally expiring.
 * A token looks like `a9_<id>_<secret>`: the id finds the row, the secret is compared in constant time.
 * New tokens keep the rules of token-rules.ts; an agent's tokens exist only while the agent does, and
 * every revocation is told to listeners (the HTTP layer ends what the revoked tokens opened).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsError } from '../fs/errors.js';
import { SERVER_SCOPE, type EventRecord } from '../fs/events.js';
import { normalizePath } from '../fs/paths.js';
import type { Grant } from '../fs/types.js';
import type { Migration } from './storage/db.js';
import type { Storage } from './storage/index.js';
import { checkWithin, DEFAULT_MAX_TTL_MS, formatDuration } from './token-rules.js';

export { agentRoot, parseDuration } from './token-rules.js';

export const tokenMigrations: Migration[] = [
  {
    version: 30,
    name: 'tokens',
    up: `CREATE TABLE tokens (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      hash TEXT NOT NULL,
      agent TEXT,
      paths TEXT NOT NULL DEFAULT '[]',
      read_only INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL,
      expires_at INTEGER,
      last_used_at INTEGER);`,
  },
  {
    version: 31,
    name: 'tokens die with their agent',
    // Rows of agents deleted before this rule would let their holders in as the next agent of the name.
    // The trigger revokes in the transaction that deletes the agent, whichever code deletes it.
    up: `DELETE FROM tokens WHERE agent IS NOT NULL AND agent NOT IN (SELECT id FROM agents);
      CREATE INDEX tokens_by_agent ON tokens (agent);
      CREATE TRIGGER tokens_die_with_their_agent AFTER DELETE ON agents
      BEGIN DELETE FROM tokens WHERE agent = OLD.id; END;`,
  },
];

export const ADMIN_TOKEN_FILE = 'admin.token';

export interface TokenScope {
  /** The agent whose local namespace the token sees at `/`. */
  agent?: string;
  /** Reachable path prefixes (in the token's own view); empty means everything. */
  paths: string[];
  readOnly: boolean;
}

export interface TokenInfo extends TokenScope {
  id: string;
  name: string;
  /** Unscoped read-write tokens are admin: they may write admin-only files and manage tokens. */
  admin: boolean;
  createdAt: number;
  expiresAt?: number;
  lastUsedAt?: number;
}

export interface NewToken {
  name?: string;
  agent?: string;
  paths?: string[];
  readOnly?: boolean;
  /** Lifetime in milliseconds; absent: that of the minting grant (never expires without one). */
  ttlMs?: number;
}

export interface CreateOptions {
  /** The grant of whoever mints it: the new token stays within it (EACCES otherwise). */
  within?: Grant;
  /** The path errors name. */
  where?: string;
}

export interface TokenStoreOptions {
  now?: () => number;
  /** The longest ttl a token may ask for (default 365 days). */
  maxTtlMs?: number;
}

/** A revocation: one token, or every token of an agent (deleted with it). */
export type Revocation = { token: string } | { agent: string };

export function isRevoked(token: { id: string; agent?: string }, r: Revocation): boolean {
  return 'token' in r ? token.id === r.token : token.agent === r.agent;
}

/** EAUTH for a token past its expiry. */
export function expiredError(info: { id: string; expiresAt?: number }, path = '/'): FsError {
  return new FsError('EAUTH', path, `token ${info.id} expired at ${new Date(info.expiresAt ?? 0).toISOString()}`);
}

interface Row {
  id: string;
  name: string;
  hash: string;
  agent: string | null;
  paths: string;
  read_only: number;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
}

const TOKEN_RE = /^a9_([0-9a-f]{12})_([0-9a-f]{48})$/;
/** last_used_at is written at most this often per token, so reads never cost a write each. */
const TOUCH_EVERY_MS = 60_000;

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

function toInfo(r: Row): TokenInfo {
  const paths = JSON.parse(r.paths) as string[];
  const info: TokenInfo = {
    id: r.id,
    name: r.name,
    paths,
    readOnly: r.read_only === 1,
    admin: r.agent === null && paths.length === 0 && r.read_only === 0,
    createdAt: r.created_at,
  };
  if (r.agent !== null) info.agent = r.agent;
  if (r.expires_at !== null) info.expiresAt = r.expires_at;
  if (r.last_used_at !== null) info.lastUsedAt = r.last_used_at;
  return info;
}

export class TokenStore {
  /** Verified tokens by their full text; dropped on revoke. Expiry is checked on every use. */
  private readonly verified = new Map<string, { info: TokenInfo; touchedAt: number }>();
  private readonly revocationListeners = new Set<(r: Revocation) => void>();
  private readonly byId;
  private readonly touch;
  private readonly insert;
  private readonly now: () => number;
  readonly maxTtlMs: number;
  /** Agent deletions (they revoke the agent's tokens: the rows go with a trigger, the cache here). */
  private readonly onEvent = (rec: EventRecord): void => {
    if (rec.type === 'deleted' && rec.scope === SERVER_SCOPE && rec.path.startsWith('/agents/') && rec.path.indexOf('/', 8) < 0) {
      this.forget({ agent: rec.path.slice(8) });
    }
  };

  constructor(
    private readonly storage: Storage,
    options: TokenStoreOptions = {},
  ) {
    this.now = options.now ?? (() => Date.now());
    this.maxTtlMs = options.maxTtlMs ?? DEFAULT_MAX_TTL_MS;
    this.byId = storage.db.prepare('SELECT * FROM tokens WHERE id = ?');
    this.touch = storage.db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?');
    // An agent token only for an agent that exists, checked in the statement that inserts it.
    this.insert = storage.db.prepare(
      `INSERT INTO tokens (id, name, hash, agent, paths, read_only, created_at, expires_at, last_used_at)
       SELECT @id, @name, @hash, @agent, @paths, @read_only, @created_at, @expires_at, @last_used_at
       WHERE @agent IS NULL OR EXISTS (SELECT 1 FROM agents WHERE id = @agent)`,
    );
    storage.events.addListener(this.onEvent);
  }

  /** Calls `listener` for every revocation (revoke, the deletion of an agent) until the returned function is called. */
  onRevoke(listener: (r: Revocation) => void): () => void {
    this.revocationListeners.add(listener);
    return () => this.revocationListeners.delete(listener);
  }

  /** Stops listening to agent deletions and drops every revocation listener. */
  close(): void {
    this.storage.events.removeListener(this.onEvent);
    this.revocationListeners.clear();
  }

  /**
   * A new token: EINVAL for a ttl that is not positive or longer than the bound, ENOENT for an agent that
   * does not exist, EACCES when it would exceed `within` (then it expires with `within` unless asked sooner).
   */
  create(spec: NewToken = {}, options: CreateOptions = {}): { token: string; info: TokenInfo } {
    const where = options.where ?? '/runtime/tokens/new';
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(24).toString('hex');
    const paths = (spec.paths ?? []).map((p) => normalizePath(p));
    const now = this.now();
    if (spec.ttlMs !== undefined && !(spec.ttlMs > 0)) throw new FsError('EINVAL', where, 'ttl must be positive');
    if (spec.ttlMs !== undefined && spec.ttlMs > this.maxTtlMs) {
      throw new FsError(
        'EINVAL',
        where,
        `ttl: ${formatDuration(spec.ttlMs)} is longer than a token may live, ${formatDuration(this.maxTtlMs)} (tokens.max_ttl in config.json)`,
      );
    }
    const within = options.within;
    const expiresAt = spec.ttlMs !== undefined ? now + spec.ttlMs : within?.expiresAt;
    if (within) {
      const wanted = { paths, readOnly: !!spec.readOnly, ...(spec.agent !== undefined ? { agent: spec.agent } : {}) };
      checkWithin(within, expiresAt === undefined ? wanted : { ...wanted, expiresAt }, where);
    }
    const row: Row = {
      id,
      name: spec.name ?? (spec.agent ? `agent ${spec.agent}` : 'token'),
      hash: hashSecret(secret).toString('hex'),
      agent: spec.agent ?? null,
      paths: JSON.stringify(paths),
      read_only: spec.readOnly ? 1 : 0,
      created_at: now,
      expires_at: expiresAt ?? null,
      last_used_at: null,
    };
    if (this.insert.run(row).changes === 0) throw new FsError('ENOENT', where, `agent: no agent '${spec.agent}' (a token of an agent needs the agent)`);
    return { token: `a9_${id}_${secret}`, info: toInfo(row) };
  }

  /** The token's scope, or EAUTH (401) when it is malformed, unknown, revoked or expired. */
  verify(token: string): TokenInfo {
    const now = this.now();
    const cached = this.verified.get(token);
    if (cached) {
      this.checkExpiry(cached.info, now);
      if (now - cached.touchedAt > TOUCH_EVERY_MS) {
        cached.touchedAt = now;
        this.touch.run(now, cached.info.id);
      }
      return cached.info;
    }
    const m = TOKEN_RE.exec(token);
    if (!m) throw new FsError('EAUTH', '/', 'malformed bearer token');
    const row = this.byId.get(m[1]) as Row | undefined;
    const given = hashSecret(m[2]!);
    if (!row || !timingSafeEqual(given, Buffer.from(row.hash, 'hex'))) {
      throw new FsError('EAUTH', '/', 'unknown or revoked token');
    }
    const info = toInfo(row);
    this.checkExpiry(info, now);
    this.touch.run(now, info.id);
    info.lastUsedAt = now;
    if (this.verified.size > 10_000) this.verified.clear();
    this.verified.set(token, { info, touchedAt: now });
    return info;
  }

  private checkExpiry(info: TokenInfo, now: number): void {
    if (info.expiresAt !== undefined && now >= info.expiresAt) throw expiredError(info);
  }

  get(id: string): TokenInfo | undefined {
    const row = this.byId.get(id) as Row | undefined;
    return row ? toInfo(row) : undefined;
  }

  list(): TokenInfo[] {
    return (this.storage.db.prepare('SELECT * FROM tokens ORDER BY created_at, id').all() as Row[]).map(toInfo);
  }

  /** Deletes expired tokens whose name starts with `prefix` (the servers' own exec tokens); returns how many. */
  purgeExpired(prefix: string): number {
    const now = this.now();
    let n = 0;
    for (const t of this.list()) {
      if (t.name.startsWith(prefix) && t.expiresAt !== undefined && now >= t.expiresAt && this.revoke(t.id)) n++;
    }
    return n;
  }

  /** Deletes the token: its hash is gone, so it can never authenticate again. */
  revoke(id: string): boolean {
    const removed = this.storage.db.prepare('DELETE FROM tokens WHERE id = ?').run(id).changes > 0;
    this.forget({ token: id });
    return removed;
  }

  /** Drops revoked tokens from the cache and tells the listeners (who end what those tokens opened). */
  private forget(r: Revocation): void {
    for (const [text, v] of this.verified) if (isRevoked(v.info, r)) this.verified.delete(text);
    for (const listener of this.revocationListeners) listener(r);
  }

  /**
   * The admin token of this machine, kept in `$AGENT9_HOME/admin.token` (mode 0600) so that agentctl
   * finds it without flags. A missing, revoked or expired one is replaced.
   */
  ensureAdminToken(home: string): { token: string; file: string; created: boolean } {
    const file = join(home, ADMIN_TOKEN_FILE);
    let existing: string | undefined;
    try {
      existing = readFileSync(file, 'utf8').trim();
    } catch {
      existing = undefined;
    }
    if (existing) {
      try {
        if (this.verify(existing).admin) {
          chmodSync(file, 0o600);
          return { token: existing, file, created: false };
        }
      } catch {
        /* replaced below */
      }
    }
    const { token } = this.create({ name: 'admin' });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, token + '\n', { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
    return { token, file, created: true };
  }
}
