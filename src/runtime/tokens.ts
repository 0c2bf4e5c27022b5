/**
 * Bearer tokens: stored hashed (SHA-256 of a 192-bit random secret; the secret is shown once, at
 * creation), optionally scoped to one agent, to path prefixes and to reading, optionally expiring.
 * A token looks like `a9_<id>_<secret>`: the id finds the row, the secret is compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsError } from '../fs/errors.js';
import { normalizePath } from '../fs/paths.js';
import type { Migration } from './storage/db.js';
import type { Storage } from './storage/index.js';

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
  /** Lifetime in milliseconds; absent means it never expires. */
  ttlMs?: number;
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
  private readonly byId;
  private readonly touch;

  constructor(
    private readonly storage: Storage,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.byId = storage.db.prepare('SELECT * FROM tokens WHERE id = ?');
    this.touch = storage.db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?');
  }

  create(spec: NewToken = {}): { token: string; info: TokenInfo } {
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(24).toString('hex');
    const paths = (spec.paths ?? []).map((p) => normalizePath(p));
    const now = this.now();
    if (spec.ttlMs !== undefined && !(spec.ttlMs > 0)) throw new FsError('EINVAL', '/runtime/tokens/new', 'ttl must be positive');
    const row: Row = {
      id,
      name: spec.name ?? (spec.agent ? `agent ${spec.agent}` : 'token'),
      hash: hashSecret(secret).toString('hex'),
      agent: spec.agent ?? null,
      paths: JSON.stringify(paths),
      read_only: spec.readOnly ? 1 : 0,
      created_at: now,
      expires_at: spec.ttlMs === undefined ? null : now + spec.ttlMs,
      last_used_at: null,
    };
    this.storage.db
      .prepare(
        `INSERT INTO tokens (id, name, hash, agent, paths, read_only, created_at, expires_at, last_used_at)
         VALUES (@id, @name, @hash, @agent, @paths, @read_only, @created_at, @expires_at, @last_used_at)`,
      )
      .run(row);
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
    if (info.expiresAt !== undefined && now >= info.expiresAt) {
      throw new FsError('EAUTH', '/', `token ${info.id} expired at ${new Date(info.expiresAt).toISOString()}`);
    }
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
    for (const [text, v] of this.verified) if (v.info.id === id) this.verified.delete(text);
    return removed;
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

/** `1h`, `30m`, `7d`, `90s`, `500ms` or a number of seconds, as milliseconds. */
export function parseDuration(text: string | number, where = 'ttl'): number {
  if (typeof text === 'number') {
    if (!(text > 0) || !Number.isFinite(text)) throw new FsError('EINVAL', where, `bad duration ${text}`);
    return text * 1000;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/i.exec(text);
  if (!m) throw new FsError('EINVAL', where, `bad duration '${text}' (use e.g. 90s, 30m, 1h, 7d)`);
  const n = Number(m[1]);
  const unit = (m[2] ?? 's').toLowerCase();
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[unit]!;
  const ms = n * factor;
  if (!(ms > 0)) throw new FsError('EINVAL', where, `duration must be positive: '${text}'`);
  return ms;
}
