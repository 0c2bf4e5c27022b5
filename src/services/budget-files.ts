/**
 * /budget: an agent's budget as one file. Reading shows every window (limit, reserved, spent,
 * remaining) of the agent's own level and of each scope level it has a limit or a charge at; writing
 * (admin) replaces the limits: the agent's `tick` and `day`, and `scopes` (`org:<id>`, `repo:<id>`,
 * `issue:<id>`). A window is a number of micro-USD, null (unlimited), or what reading gave (`{limit,...}`:
 * only `limit` counts), so `cat budget`, an edit and a write back work. Scopes left out of a write lose
 * their limits. Services' own caps (`service:compute`) are set by their policies, not here.
 */
import { z } from 'zod';
import { FsError } from '../fs/errors.js';
import { SyntheticFs, jsonView, parseJson } from '../fs/synthetic.js';
import type { FileService } from '../fs/types.js';
import { AGENT_LEVEL, parseLevel, type BudgetLedger, type BudgetUsage, type Limits } from '../runtime/budget-ledger.js';
import { describeIssues } from './kit/validation.js';

const money = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const windowSchema = z.union([money, z.null(), z.object({ limit: z.union([money, z.null()]) }).passthrough()]);
const levelSchema = z.object({ tick: windowSchema.optional(), day: windowSchema.optional() }).passthrough();
const budgetSchema = z
  .object({
    tick: windowSchema.optional(),
    day: windowSchema.optional(),
    scopes: z.record(z.string(), z.union([levelSchema, z.null()])).optional(),
  })
  .passthrough();

type WindowInput = z.infer<typeof windowSchema>;

function limitOf(w: WindowInput | undefined): number | null {
  if (w === undefined || w === null) return null;
  return typeof w === 'number' ? w : w.limit;
}

function isServiceLevel(level: string): boolean {
  return level.startsWith('service:');
}

/** What /budget reads as. */
export function budgetDocument(ledger: BudgetLedger, agentId: string): { unit: string; tick: BudgetUsage['tick']; day: BudgetUsage['day']; scopes: Record<string, BudgetUsage> } {
  const all = ledger.usageAll(agentId);
  const scopes = Object.fromEntries(Object.entries(all.scopes).filter(([level]) => !isServiceLevel(level)));
  return { unit: 'micro-USD', tick: all.agent.tick, day: all.agent.day, scopes };
}

/** Replaces an agent's limits from a /budget document (EINVAL names the bad field). */
export function writeBudget(ledger: BudgetLedger, agentId: string, value: unknown, path = '/'): void {
  const parsed = budgetSchema.safeParse(value);
  if (!parsed.success || typeof value !== 'object' || value === null || Array.isArray(value)) {
    const problem = parsed.success ? 'the budget must be a JSON object' : describeIssues(parsed.error);
    throw new FsError('EINVAL', path, `${problem} (windows are micro-USD integers or null)`);
  }
  const doc = parsed.data;
  const scopes = new Map<string, Limits>();
  for (const [level, limits] of Object.entries(doc.scopes ?? {})) {
    parseLevel(level, path);
    if (level === AGENT_LEVEL || isServiceLevel(level)) {
      throw new FsError('EINVAL', path, `scope '${level}' cannot be set here (scopes are org:<id>, repo:<id>, issue:<id>)`);
    }
    if (limits !== null) scopes.set(level, { tick: limitOf(limits.tick), day: limitOf(limits.day) });
  }
  ledger.storage.tx(() => {
    ledger.setLimits(agentId, { tick: limitOf(doc.tick), day: limitOf(doc.day) }, AGENT_LEVEL, path);
    for (const level of Object.keys(ledger.usageAll(agentId).scopes)) {
      if (!isServiceLevel(level) && !scopes.has(level)) ledger.clearLimits(agentId, level);
    }
    for (const [level, limits] of scopes) ledger.setLimits(agentId, limits, level, path);
  });
}

/** The /budget file of one agent (mount it admin-write). */
export function budgetService(ledger: BudgetLedger, agentId: string): FileService {
  return new SyntheticFs(
    jsonView(() => budgetDocument(ledger, agentId), {
      write: (data) => writeBudget(ledger, agentId, parseJson(data, '/'), '/'),
    }),
    'budget',
  );
}
