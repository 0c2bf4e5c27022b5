/**
 * The fields every capability's `new` takes the same way: what it may cost, whom the cost is booked to,
 * and the idempotency key. Spread `submitFields` into a request schema.
 */
import { z } from 'zod';

/** An id in a request (a provider, a budget scope): safe in paths, labels and budget levels. */
export const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;

export const submitFields = {
  /** The most the request may cost, micro-USD (it is what is reserved). */
  max_cost: z.number().int().nonnegative().optional(),
  /** The same in dollars (one of the two). */
  max_cost_usd: z.number().nonnegative().optional(),
  /** Budget levels besides the agent's that the cost is reserved at and booked to. */
  budget_scope: z
    .strictObject({
      org: z.string().regex(REQUEST_ID).nullable().optional(),
      repo: z.string().regex(REQUEST_ID).nullable().optional(),
      issue: z.string().regex(REQUEST_ID).nullable().optional(),
    })
    .optional(),
  idempotency_key: z.string().min(1).max(256).optional(),
};

/** A request's `provider` (a provider id). */
export const providerField = z.string().regex(REQUEST_ID).optional();
