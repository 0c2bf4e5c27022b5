/**
 * Sessions and execs as durable SQLite rows: a restart shows what happened to every one of them, and a
 * finished one stays listed (with its result) until retention drops it. Each record is one JSON column
 * beside the columns that are queried.
 */
import { randomBytes } from 'node:crypto';
import type { Storage } from '../../runtime/storage/index.js';
import { SESSION_TERMINAL, type ExecRecord, type SessionRecord } from './types.js';

/** Session ids: 12 lowercase letters and digits (60 bits), safe in paths and container labels. */
export function newSessionId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(12);
  let id = '';
  for (const b of bytes) id += alphabet[b % 36];
  return id;
}

export class SessionStore {
  private readonly q;

  constructor(readonly storage: Storage) {
    const db = storage.db;
    this.q = {
      insert: db.prepare('INSERT INTO container_sessions (id, agent_id, status, created_at, finished_at, data) VALUES (?, ?, ?, ?, ?, ?)'),
      update: db.prepare('UPDATE container_sessions SET status = ?, finished_at = ?, data = ? WHERE id = ?'),
      get: db.prepare('SELECT data FROM container_sessions WHERE id = ?').pluck(),
      ids: db.prepare('SELECT id FROM container_sessions WHERE agent_id = ? ORDER BY created_at, id').pluck(),
      active: db.prepare("SELECT data FROM container_sessions WHERE status IN ('provisioning', 'running')").pluck(),
      activeCount: db.prepare("SELECT count(*) FROM container_sessions WHERE agent_id = ? AND status IN ('provisioning', 'running')").pluck(),
      counts: db.prepare('SELECT status, count(*) AS n FROM container_sessions WHERE agent_id = ? GROUP BY status'),
      expired: db.prepare('SELECT id FROM container_sessions WHERE finished_at IS NOT NULL AND finished_at < ?').pluck(),
      deleteSession: db.prepare('DELETE FROM container_sessions WHERE id = ?'),
      deleteExecs: db.prepare('DELETE FROM container_execs WHERE session_id = ?'),
      agentSessions: db.prepare('SELECT id FROM container_sessions WHERE agent_id = ?').pluck(),
      insertExec: db.prepare('INSERT INTO container_execs (session_id, id, seq, status, data) VALUES (?, ?, ?, ?, ?)'),
      updateExec: db.prepare('UPDATE container_execs SET status = ?, data = ? WHERE session_id = ? AND id = ?'),
      getExec: db.prepare('SELECT data FROM container_execs WHERE session_id = ? AND id = ?').pluck(),
      execIds: db.prepare('SELECT id FROM container_execs WHERE session_id = ? ORDER BY seq').pluck(),
      execs: db.prepare('SELECT data FROM container_execs WHERE session_id = ? ORDER BY seq').pluck(),
      activeExecs: db.prepare("SELECT data FROM container_execs WHERE session_id = ? AND status IN ('pending', 'running') ORDER BY seq").pluck(),
    };
  }

  insert(rec: SessionRecord): void {
    this.q.insert.run(rec.id, rec.agentId, rec.status, rec.createdAt, rec.finishedAt, JSON.stringify(rec));
  }

  get(id: string): SessionRecord | undefined {
    const data = this.q.get.get(id) as string | undefined;
    return data === undefined ? undefined : (JSON.parse(data) as SessionRecord);
  }

  /** Applies a change and bumps the version; returns the new record. */
  update(id: string, patch: Partial<SessionRecord>, now: number): SessionRecord {
    const current = this.get(id);
    if (!current) throw new Error(`no container session ${id}`);
    const next: SessionRecord = { ...current, ...patch, version: current.version + 1, updatedAt: now };
    this.q.update.run(next.status, next.finishedAt, JSON.stringify(next), id);
    return next;
  }

  ids(agentId: string): string[] {
    return this.q.ids.all(agentId) as string[];
  }

  /** Sessions of every agent not yet finished (recovery). */
  active(): SessionRecord[] {
    return (this.q.active.all() as string[]).map((d) => JSON.parse(d) as SessionRecord);
  }

  activeCount(agentId: string): number {
    return this.q.activeCount.get(agentId) as number;
  }

  counts(agentId: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.q.counts.all(agentId) as { status: string; n: number }[]) out[r.status] = r.n;
    return out;
  }

  insertExec(rec: ExecRecord): void {
    this.q.insertExec.run(rec.sessionId, rec.id, Number(rec.id), rec.status, JSON.stringify(rec));
  }

  getExec(sessionId: string, id: string): ExecRecord | undefined {
    const data = this.q.getExec.get(sessionId, id) as string | undefined;
    return data === undefined ? undefined : (JSON.parse(data) as ExecRecord);
  }

  updateExec(sessionId: string, id: string, patch: Partial<ExecRecord>, now: number): ExecRecord {
    const current = this.getExec(sessionId, id);
    if (!current) throw new Error(`no exec ${id} in container session ${sessionId}`);
    const next: ExecRecord = { ...current, ...patch, version: current.version + 1, updatedAt: now };
    this.q.updateExec.run(next.status, JSON.stringify(next), sessionId, id);
    return next;
  }

  execIds(sessionId: string): string[] {
    return this.q.execIds.all(sessionId) as string[];
  }

  execs(sessionId: string): ExecRecord[] {
    return (this.q.execs.all(sessionId) as string[]).map((d) => JSON.parse(d) as ExecRecord);
  }

  activeExecs(sessionId: string): ExecRecord[] {
    return (this.q.activeExecs.all(sessionId) as string[]).map((d) => JSON.parse(d) as ExecRecord);
  }

  /** Drops finished sessions (and their execs) that ended before `before`; returns their ids. */
  prune(before: number): string[] {
    const ids = this.q.expired.all(before) as string[];
    for (const id of ids) this.drop(id);
    return ids;
  }

  drop(id: string): void {
    this.q.deleteExecs.run(id);
    this.q.deleteSession.run(id);
  }

  agentSessionIds(agentId: string): string[] {
    return this.q.agentSessions.all(agentId) as string[];
  }

  static isTerminal(rec: SessionRecord): boolean {
    return SESSION_TERMINAL.has(rec.status);
  }
}
