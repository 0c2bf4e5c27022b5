/**
 * The budget ledger: money in integer micro-USD (1 = $0.000001), reserved before work starts and
 * settled after. Every agent has a tick window (reset by the runtime at each tick start) and a rolling
 * 24 h day window, at its own level and at each scope level a request names (`org:<id>` ⊇ `repo:<id>` ⊇
 * `issue:<id>`, and a service's own caps at `service:<name>`, checked right after the agent's level). A reservation is checked against every level that has a limit, broad to narrow, and
 * recorded at every level, in one SQLite transaction: concurrent reservations can never overspend.
 *
 * Arithmetic (see CONTRACT.md, "Budgets"):
 * - usage(window) = reserved + spent within the window; remaining = max(0, limit − reserved − spent).
 * - reserve(a) fails with EDQUOT when a > remaining at any limited level (tick or day); nothing changes.
 * - reconcile(r, actual): r's amount leaves `reserved`, min(actual, amount) enters `spent`. A
 *   reservation is a hard cap: an actual above it is reported as an overrun (for the service to record
 *   as its provider's) but never charged, so settling moves at most what was reserved into `spent` and
 *   no level can end up with `spent > limit` (the limit bounded reserved + spent when it was reserved).
 * - release(r): r's amount leaves `reserved`; nothing is spent.
 * - A reservation counts in the tick it was made in and in the day window from the minute it was made:
 *   settling it later changes those same windows, never the current ones.
 * - The day window is rolling, kept in one-minute slots: it covers the current minute and the 1439
 *   before it.
 */
import { FsError } from '../fs/errors.js';
import type { BudgetHook } from '../fs/access-levels.js';
import type { Migration } from './storage/db.js';
import type { Storage } from './storage/index.js';

export const budgetMigrations: Migration[] = [
  {
    version: 40,
    name: 'budgets',
    up: `
      CREATE TABLE budget_limits (
        agent_id TEXT NOT NULL, level TEXT NOT NULL,
        tick_limit INTEGER, day_limit INTEGER,
        PRIMARY KEY (agent_id, level)) WITHOUT ROWID;
      CREATE TABLE budget_ticks (
        agent_id TEXT PRIMARY KEY, tick INTEGER NOT NULL, started_at INTEGER NOT NULL);
      CREATE TABLE budget_counters (
        agent_id TEXT NOT NULL, level TEXT NOT NULL, win TEXT NOT NULL, slot INTEGER NOT NULL,
        reserved INTEGER NOT NULL DEFAULT 0, spent INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent_id, level, win, slot)) WITHOUT ROWID;
      CREATE TABLE budget_reservations (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL, levels TEXT NOT NULL, amount INTEGER NOT NULL, reason TEXT NOT NULL,
        created_at INTEGER NOT NULL, tick INTEGER NOT NULL, minute INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'open', actual INTEGER, settled_at INTEGER);
      CREATE INDEX budget_reservations_open ON budget_reservations (agent_id) WHERE state = 'open';
      CREATE INDEX budget_reservations_settled ON budget_reservations (settled_at) WHERE state <> 'open';`,
  },
  {
    // A reservation is a hard cap: `actual` is what was charged (at most `amount`), `overrun` what the
    // work cost beyond it (reported, never charged).
    version: 47,
    name: 'budget reservation overruns',
    up: 'ALTER TABLE budget_reservations ADD COLUMN overrun INTEGER NOT NULL DEFAULT 0;',
  },
];

/**
 * Scopes a request may charge, broad to narrow. Null or missing = not scoped at that level. `service`
 * is set by a service for its own caps (`service:compute`), the others come from the request.
 */
export interface BudgetScope {
  service?: string | null | undefined;
  org?: string | null | undefined;
  repo?: string | null | undefined;
  issue?: string | null | undefined;
}

/** `''` is the agent's own level; the others are `service:<name>`, `org:<id>`, `repo:<id>`, `issue:<id>`. */
export type BudgetLevel = string;
export const AGENT_LEVEL: BudgetLevel = '';

export interface Limits {
  /** Micro-USD per tick; null = unlimited. */
  tick: number | null;
  /** Micro-USD per rolling 24 h; null = unlimited. */
  day: number | null;
}

export interface WindowUsage {
  /** Null when unlimited. */
  limit: number | null;
  reserved: number;
  spent: number;
  /** max(0, limit − reserved − spent); null when unlimited. */
  remaining: number | null;
}

export interface BudgetUsage {
  tick: WindowUsage;
  day: WindowUsage;
}

export interface Reservation {
  readonly id: number;
  readonly agentId: string;
  readonly amount: number;
  /** The levels it was recorded at, broad to narrow (the agent's own level first). */
  readonly levels: readonly BudgetLevel[];
  readonly reason: string;
  readonly createdAt: number;
  readonly tick: number;
}

export interface Settlement {
  state: 'reconciled' | 'released';
  /** Added to spent. */
  charged: number;
  /** Reserved but not spent. */
  refunded: number;
  /** How much the actual cost passed the reservation (not charged: a reservation is a hard cap). */
  overrun: number;
  /** False when the reservation had already been settled: nothing changed this time. */
  changed: boolean;
}

export interface BudgetLedgerOptions {
  now?: () => number;
  /** Limits of an agent (at its own level) that has none set; default unlimited. */
  defaultLimits?: Limits;
  /** Settled reservations are kept this long for inspection (default 25 h). */
  keepSettledMs?: number;
}

export const MINUTE_MS = 60_000;
export const DAY_MINUTES = 24 * 60;
const SCOPE_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;
const UNLIMITED: Limits = { tick: null, day: null };

/** The levels of a scope, broad to narrow, without the agent's own level. */
export function scopeLevels(scope: BudgetScope | undefined, path = '/'): BudgetLevel[] {
  if (!scope) return [];
  const levels: BudgetLevel[] = [];
  for (const kind of ['service', 'org', 'repo', 'issue'] as const) {
    const id = scope[kind];
    if (id === undefined || id === null) continue;
    if (typeof id !== 'string' || !SCOPE_ID.test(id)) {
      throw new FsError('EINVAL', path, `budget_scope.${kind} must be an id of letters, digits and ._:/@- (got ${JSON.stringify(id)})`);
    }
    levels.push(`${kind}:${id}`);
  }
  return levels;
}

/** Validates a level key given by a caller (`''`, `service:<name>`, `org:<id>`, `repo:<id>`, `issue:<id>`). */
export function parseLevel(level: string, path = '/'): BudgetLevel {
  if (level === AGENT_LEVEL) return level;
  const m = /^(service|org|repo|issue):(.*)$/.exec(level);
  if (!m || !SCOPE_ID.test(m[2]!)) {
    throw new FsError('EINVAL', path, `invalid budget scope '${level}' (want org:<id>, repo:<id>, issue:<id> or service:<name>)`);
  }
  return level;
}

function checkAmount(amount: unknown, what: string, path: string): number {
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0) {
    throw new FsError('EINVAL', path, `${what} must be a non-negative integer number of micro-USD (got ${String(amount)})`);
  }
  return amount;
}

function checkLimit(limit: unknown, what: string, path: string): number | null {
  return limit === null || limit === undefined ? null : checkAmount(limit, what, path);
}

/** Micro-USD as dollars for messages: 1500000 -> "$1.500000". */
export function formatUsd(micro: number): string {
  const sign = micro < 0 ? '-' : '';
  const abs = Math.abs(micro);
  return `${sign}$${Math.floor(abs / 1e6)}.${String(abs % 1e6).padStart(6, '0')}`;
}

function levelName(level: BudgetLevel): string {
  return level === AGENT_LEVEL ? 'agent' : level;
}

function windowUsage(limit: number | null, reserved: number, spent: number): WindowUsage {
  return {
    limit,
    reserved,
    spent,
    remaining: limit === null ? null : Math.max(0, limit - reserved - spent),
  };
}

interface ReservationRow {
  id: number;
  agent_id: string;
  levels: string;
  amount: number;
  reason: string;
  created_at: number;
  tick: number;
  minute: number;
  state: 'open' | 'reconciled' | 'released';
  actual: number | null;
  overrun: number;
}

export class BudgetLedger {
  private readonly now: () => number;
  private readonly defaultLimits: Limits;
  private readonly keepSettledMs: number;
  private readonly q;
  private readonly immediate: <T>(fn: () => T) => T;
  private settledSincePrune = 0;

  constructor(
    readonly storage: Storage,
    options: BudgetLedgerOptions = {},
  ) {
    this.now = options.now ?? (() => Date.now());
    this.defaultLimits = options.defaultLimits ?? UNLIMITED;
    this.keepSettledMs = options.keepSettledMs ?? 25 * 3600 * 1000;
    const db = storage.db;
    // IMMEDIATE takes the write lock at BEGIN: a second process cannot read the same remaining amount.
    // Nested inside an outer transaction (storage.tx), better-sqlite3 turns this into a savepoint.
    this.immediate = <T>(fn: () => T): T => storage.tx(fn, { immediate: true });
    this.q = {
      limits: db.prepare('SELECT tick_limit, day_limit FROM budget_limits WHERE agent_id = ? AND level = ?'),
      setLimits: db.prepare(`INSERT INTO budget_limits (agent_id, level, tick_limit, day_limit) VALUES (?, ?, ?, ?)
        ON CONFLICT (agent_id, level) DO UPDATE SET tick_limit = excluded.tick_limit, day_limit = excluded.day_limit`),
      dropLimits: db.prepare('DELETE FROM budget_limits WHERE agent_id = ? AND level = ?'),
      levelsOf: db.prepare('SELECT level FROM budget_limits WHERE agent_id = ? UNION SELECT DISTINCT level FROM budget_counters WHERE agent_id = ?').pluck(),
      tick: db.prepare('SELECT tick FROM budget_ticks WHERE agent_id = ?').pluck(),
      tickInfo: db.prepare('SELECT tick, started_at FROM budget_ticks WHERE agent_id = ?'),
      nextTick: db.prepare(`INSERT INTO budget_ticks (agent_id, tick, started_at) VALUES (?, 1, ?)
        ON CONFLICT (agent_id) DO UPDATE SET tick = tick + 1, started_at = excluded.started_at RETURNING tick`).pluck(),
      tickCounter: db.prepare(
        "SELECT reserved, spent FROM budget_counters WHERE agent_id = ? AND level = ? AND win = 'tick' AND slot = ?",
      ),
      dayCounter: db.prepare(`SELECT coalesce(sum(reserved), 0) AS reserved, coalesce(sum(spent), 0) AS spent
        FROM budget_counters WHERE agent_id = ? AND level = ? AND win = 'day' AND slot > ?`),
      bump: db.prepare(`INSERT INTO budget_counters (agent_id, level, win, slot, reserved, spent) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (agent_id, level, win, slot) DO UPDATE SET reserved = reserved + excluded.reserved, spent = spent + excluded.spent`),
      insertReservation: db.prepare(`INSERT INTO budget_reservations (agent_id, levels, amount, reason, created_at, tick, minute)
        VALUES (?, ?, ?, ?, ?, ?, ?)`),
      reservation: db.prepare('SELECT * FROM budget_reservations WHERE id = ?'),
      settle: db.prepare("UPDATE budget_reservations SET state = ?, actual = ?, overrun = ?, settled_at = ? WHERE id = ? AND state = 'open'"),
      open: db.prepare("SELECT * FROM budget_reservations WHERE agent_id = ? AND state = 'open' ORDER BY id"),
      allOpen: db.prepare("SELECT * FROM budget_reservations WHERE state = 'open' ORDER BY id"),
      pruneSettled: db.prepare("DELETE FROM budget_reservations WHERE state <> 'open' AND settled_at < ?"),
      forget: [
        db.prepare('DELETE FROM budget_limits WHERE agent_id = ?'),
        db.prepare('DELETE FROM budget_ticks WHERE agent_id = ?'),
        db.prepare('DELETE FROM budget_counters WHERE agent_id = ?'),
        db.prepare('DELETE FROM budget_reservations WHERE agent_id = ?'),
      ],
      pruneDay: db.prepare("DELETE FROM budget_counters WHERE win = 'day' AND slot <= ? AND reserved = 0"),
      pruneTicks: db.prepare(`DELETE FROM budget_counters WHERE win = 'tick' AND reserved = 0
        AND slot < coalesce((SELECT tick FROM budget_ticks t WHERE t.agent_id = budget_counters.agent_id), 0)`),
    };
  }

  private minute(at: number): number {
    return Math.floor(at / MINUTE_MS);
  }

  private currentTick(agentId: string): number {
    return (this.q.tick.get(agentId) as number | undefined) ?? 0;
  }

  /** The limits set at a level (the agent's defaults at its own level when none are set). */
  limits(agentId: string, level: BudgetLevel = AGENT_LEVEL): Limits {
    const row = this.q.limits.get(agentId, level) as { tick_limit: number | null; day_limit: number | null } | undefined;
    if (row) return { tick: row.tick_limit, day: row.day_limit };
    return level === AGENT_LEVEL ? { ...this.defaultLimits } : { ...UNLIMITED };
  }

  private limitsRow(agentId: string, level: BudgetLevel): Limits | undefined {
    if (level !== AGENT_LEVEL) {
      const row = this.q.limits.get(agentId, level) as { tick_limit: number | null; day_limit: number | null } | undefined;
      return row ? { tick: row.tick_limit, day: row.day_limit } : undefined;
    }
    return this.limits(agentId, level);
  }

  /**
   * Sets the limits at a level (`''` = the agent's own; a scope level only constrains requests that
   * name that scope). `null` = unlimited. Counters are kept: what was spent still counts.
   */
  setLimits(agentId: string, limits: Partial<Limits>, level: BudgetLevel = AGENT_LEVEL, path = '/budget'): Limits {
    parseLevel(level, path);
    const current = this.limits(agentId, level);
    const next: Limits = {
      tick: limits.tick === undefined ? current.tick : checkLimit(limits.tick, 'tick limit', path),
      day: limits.day === undefined ? current.day : checkLimit(limits.day, 'day limit', path),
    };
    this.q.setLimits.run(agentId, level, next.tick, next.day);
    return next;
  }

  /** Removes the limits at a scope level (it is no longer enforced) or resets the agent's to the defaults. */
  clearLimits(agentId: string, level: BudgetLevel = AGENT_LEVEL): void {
    this.q.dropLimits.run(agentId, level);
  }

  private windowTotals(agentId: string, level: BudgetLevel, tick: number, minute: number) {
    const t = (this.q.tickCounter.get(agentId, level, tick) as { reserved: number; spent: number } | undefined) ?? {
      reserved: 0,
      spent: 0,
    };
    const d = this.q.dayCounter.get(agentId, level, minute - DAY_MINUTES) as { reserved: number; spent: number };
    return { tick: t, day: d };
  }

  /** Usage at one level; a BudgetScope means its narrowest level. */
  usage(agentId: string, scope?: BudgetScope | BudgetLevel): BudgetUsage {
    const level = typeof scope === 'string' ? parseLevel(scope) : (scopeLevels(scope).at(-1) ?? AGENT_LEVEL);
    const now = this.now();
    const limits = this.limits(agentId, level);
    const totals = this.windowTotals(agentId, level, this.currentTick(agentId), this.minute(now));
    return {
      tick: windowUsage(limits.tick, totals.tick.reserved, totals.tick.spent),
      day: windowUsage(limits.day, totals.day.reserved, totals.day.spent),
    };
  }

  /** Usage at the agent's level and at every scope level it has a limit or a charge at. */
  usageAll(agentId: string): { agent: BudgetUsage; scopes: Record<string, BudgetUsage> } {
    const scopes: Record<string, BudgetUsage> = {};
    const levels = (this.q.levelsOf.all(agentId, agentId) as string[]).filter((l) => l !== AGENT_LEVEL).sort();
    for (const level of levels) scopes[level] = this.usage(agentId, level);
    return { agent: this.usage(agentId), scopes };
  }

  /** The tick the agent is in (0 before its first tick) and when it started. */
  tickInfo(agentId: string): { tick: number; startedAt: number | null } {
    const row = this.q.tickInfo.get(agentId) as { tick: number; started_at: number } | undefined;
    return row ? { tick: row.tick, startedAt: row.started_at } : { tick: 0, startedAt: null };
  }

  /** Starts a new tick window for the agent (the runtime calls it at each tick start). */
  resetTick(agentId: string): number {
    return this.q.nextTick.get(agentId, this.now()) as number;
  }

  /**
   * Reserves `amount` at the agent's level and at each level of `scope`, checking every level that has
   * a limit, broad to narrow. Throws EDQUOT naming the level and window that cannot pay.
   */
  reserve(agentId: string, amount: number, scope?: BudgetScope, reason = '', path = '/budget'): Reservation {
    checkAmount(amount, 'amount', path);
    const levels = [AGENT_LEVEL, ...scopeLevels(scope, path)];
    return this.immediate(() => {
      const now = this.now();
      const minute = this.minute(now);
      const tick = this.currentTick(agentId);
      for (const level of levels) {
        const limits = this.limitsRow(agentId, level);
        if (!limits || (limits.tick === null && limits.day === null)) continue;
        const totals = this.windowTotals(agentId, level, tick, minute);
        for (const win of ['tick', 'day'] as const) {
          const limit = limits[win];
          if (limit === null) continue;
          const used = totals[win].reserved + totals[win].spent;
          const remaining = Math.max(0, limit - used);
          if (amount > remaining) {
            throw new FsError(
              'EDQUOT',
              path,
              `budget exceeded: ${levelName(level)} ${win} window has ${remaining} micro-USD left of ${limit} ` +
                `(${formatUsd(remaining)} of ${formatUsd(limit)}), ${amount} needed`,
            );
          }
        }
      }
      const id = Number(
        this.q.insertReservation.run(agentId, JSON.stringify(levels), amount, reason, now, tick, minute).lastInsertRowid,
      );
      for (const level of levels) {
        this.q.bump.run(agentId, level, 'tick', tick, amount, 0);
        this.q.bump.run(agentId, level, 'day', minute, amount, 0);
      }
      return { id, agentId, amount, levels, reason, createdAt: now, tick };
    });
  }

  private settle(reservation: Reservation | number, state: 'reconciled' | 'released', actual: number): Settlement {
    const id = typeof reservation === 'number' ? reservation : reservation.id;
    return this.immediate(() => {
      const row = this.q.reservation.get(id) as ReservationRow | undefined;
      // Its agent was deleted (forget): there is nothing left to settle.
      if (!row) return { state, charged: 0, refunded: 0, overrun: 0, changed: false };
      if (row.state !== 'open') {
        // Settling twice (a cancel racing a completion, a retry after a crash) changes nothing.
        const charged = row.actual ?? 0;
        // (max: a reservation settled before charges were capped may have been charged past its amount)
        return { state: row.state, charged, refunded: Math.max(0, row.amount - charged), overrun: row.overrun, changed: false };
      }
      // The charge never passes the reservation: what leaves `reserved` bounds what enters `spent`.
      const spent = state === 'reconciled' ? Math.min(actual, row.amount) : 0;
      const overrun = state === 'reconciled' ? actual - spent : 0;
      this.q.settle.run(state, spent, overrun, this.now(), id);
      for (const level of JSON.parse(row.levels) as string[]) {
        this.q.bump.run(row.agent_id, level, 'tick', row.tick, -row.amount, spent);
        this.q.bump.run(row.agent_id, level, 'day', row.minute, -row.amount, spent);
      }
      if (++this.settledSincePrune >= 1000) {
        this.settledSincePrune = 0;
        this.prune();
      }
      return { state, charged: spent, refunded: row.amount - spent, overrun, changed: true };
    });
  }

  /** Settles a reservation at its actual cost, at most the reservation: the rest is refunded; an overrun is reported, not charged. */
  reconcile(reservation: Reservation | number, actual: number): Settlement {
    checkAmount(actual, 'actual cost', '/budget');
    return this.settle(reservation, 'reconciled', actual);
  }

  /** Gives a reservation back unspent (failure, cancel). */
  release(reservation: Reservation | number): Settlement {
    return this.settle(reservation, 'released', 0);
  }

  /** Reserve and reconcile at once: pays `amount` now or fails with EDQUOT. */
  charge(agentId: string, amount: number, scope?: BudgetScope, reason = '', path = '/budget'): Settlement {
    return this.immediate(() => this.reconcile(this.reserve(agentId, amount, scope, reason, path), amount));
  }

  /** A reservation by id (open or settled, while kept). */
  get(id: number): (Reservation & { state: 'open' | 'reconciled' | 'released'; actual: number | null; overrun: number }) | undefined {
    const row = this.q.reservation.get(id) as ReservationRow | undefined;
    return row ? toReservation(row) : undefined;
  }

  /** Open reservations, of one agent or all (for recovery after a restart). */
  openReservations(agentId?: string): Reservation[] {
    const rows = (agentId === undefined ? this.q.allOpen.all() : this.q.open.all(agentId)) as ReservationRow[];
    return rows.map(toReservation);
  }

  /** Drops everything the ledger holds for a deleted agent: limits, windows, reservations. */
  forget(agentId: string): void {
    this.immediate(() => {
      for (const stmt of this.q.forget) stmt.run(agentId);
    });
  }

  /** Drops counters and settled reservations no window can see any more. */
  prune(): void {
    const now = this.now();
    this.q.pruneSettled.run(now - this.keepSettledMs);
    this.q.pruneDay.run(this.minute(now) - DAY_MINUTES);
    this.q.pruneTicks.run();
  }
}

function toReservation(row: ReservationRow): Reservation & { state: ReservationRow['state']; actual: number | null; overrun: number } {
  return {
    id: row.id,
    agentId: row.agent_id,
    amount: row.amount,
    levels: JSON.parse(row.levels) as string[],
    reason: row.reason,
    createdAt: row.created_at,
    tick: row.tick,
    state: row.state,
    actual: row.actual,
    overrun: row.overrun,
  };
}

/** The BudgetHook of the Budgeted access level: each write charges the agent's budget (EDQUOT when over). */
export function budgetHook(ledger: BudgetLedger, agentId: string): BudgetHook {
  return {
    charge(amount, path) {
      ledger.charge(agentId, amount, undefined, `write ${path}`, path);
    },
  };
}
