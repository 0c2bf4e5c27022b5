/**
 * The one idempotent-submit path (CONTRACT section 17). What an idempotency key stands for is the
 * request *as written*: the canonical JSON (keys sorted) of the raw body, without the key itself and
 * without fields that only shape the answer (`wait`). Never the parsed request: that has the policy's
 * defaults filled in, so a default changed since would make a byte-identical retry look different.
 *
 * The journal comes first: a repeated key answers with its first request's record before the request
 * is checked against the policy, the budget or the providers, whatever changed since. The first
 * request's work and its journal entry commit in one transaction (`commit` runs inside the caller's).
 */
import { createHash } from 'node:crypto';
import { FsError } from '../../fs/errors.js';
import type { IdempotencyJournal } from '../../runtime/idempotency-journal.js';

/** JSON with object keys sorted, so the same request always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The hash of a raw request without the fields in `ignore`. */
export function requestHash(raw: Record<string, unknown>, ignore: readonly string[]): string {
  const rest = Object.fromEntries(Object.entries(raw).filter(([k]) => !ignore.includes(k)));
  return createHash('sha256').update(canonicalJson(rest)).digest('hex').slice(0, 32);
}

/** One submit: its key (when it has one), where the journal keeps it, and what the key stands for. */
export interface Submission {
  key: string | undefined;
  journalKey: string | undefined;
  hash: string;
}

export interface IdempotentSubmitOptions {
  journal: IdempotencyJournal;
  /** The journal's key scope: `<agent>:<service>:<key>`. */
  service: string;
  /** The id field of the journal's value (`job_id`, `session_id`) and what it names in messages (`job`). */
  idField: string;
  noun: string;
  /** Raw fields that do not change what the request is (besides `idempotency_key`). */
  ignore?: readonly string[];
}

export class IdempotentSubmit {
  private readonly ignore: readonly string[];

  constructor(private readonly options: IdempotentSubmitOptions) {
    this.ignore = ['idempotency_key', ...(options.ignore ?? [])];
  }

  /** What a raw request stands for. A key that is not a non-empty string is left to the request's own validation. */
  begin(agentId: string, raw: Record<string, unknown>): Submission {
    const k = raw['idempotency_key'];
    const key = typeof k === 'string' && k.length > 0 ? k : undefined;
    return {
      key,
      journalKey: key === undefined ? undefined : `${agentId}:${this.options.service}:${key}`,
      hash: requestHash(raw, this.ignore),
    };
  }

  /** The id of the first request with this key, when there was one; EEXIST when it was another request. */
  earlier(s: Submission, path: string): string | undefined {
    if (s.journalKey === undefined) return undefined;
    const entry = this.options.journal.get(s.journalKey);
    return entry === undefined ? undefined : this.check(entry, s, path);
  }

  /**
   * Runs `create` (the first request's work; it returns the new id) and records it under the key, in
   * the caller's transaction. When a request with the same key committed first, nothing is created and
   * that request's id is answered (`replayed`).
   */
  commit(s: Submission, path: string, create: () => string): { id: string; replayed: boolean } {
    if (s.journalKey === undefined) return { id: create(), replayed: false };
    const entry = this.options.journal.remember(s.journalKey, () => JSON.stringify({ [this.options.idField]: create(), hash: s.hash }));
    if (entry.created) return { id: (JSON.parse(entry.value) as Record<string, string>)[this.options.idField]!, replayed: false };
    return { id: this.check(entry.value, s, path), replayed: true };
  }

  private check(entry: string, s: Submission, path: string): string {
    const recorded = JSON.parse(entry) as Record<string, string>;
    const id = recorded[this.options.idField]!;
    if (recorded['hash'] !== s.hash) {
      throw new FsError('EEXIST', path, `idempotency key '${s.key}' was used for a different request (${this.options.noun} ${id})`);
    }
    return id;
  }

  /** Forgets the keys of a deleted agent (run inside its transaction). */
  forget(agentId: string): void {
    this.options.journal.deletePrefix(`${agentId}:${this.options.service}:`);
  }
}
