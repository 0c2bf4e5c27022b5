/**
 * What a write answers over HTTP (CONTRACT.md section 12). A write whose file reports what it did (a
 * receipt: the envelope an inbox queued, the ticks a ctl ran) answers it as JSON, 201 when something
 * new was stored (an envelope) and 200 otherwise; a write that created a data file answers 201; any
 * other write 204. Every write route answers through here, so every way into an inbox (POST, PUT,
 * `?append=1`, `/agents/<id>/send`) answers the same `{envelope_id, status}`.
 */
import type { FastifyReply } from 'fastify';
import type { Cx, Receipt, Stat } from '../fs/types.js';
import { JSON_TYPE } from './content-type.js';
import { statHeaders } from './file-headers.js';

/** A write's Cx for one request, and what the write's file handed back (its last receipt). */
export function receiving(cx: Cx): { cx: Cx; receipt: () => Receipt | undefined } {
  let got: Receipt | undefined;
  return { cx: { ...cx, receipt: (r) => (got = r) }, receipt: () => got };
}

/** A data file at version 1 after a write was made by it (every change of an existing one bumps the version). */
function created(st: Stat | undefined): boolean {
  return st !== undefined && st.type === 'file' && st.kind === 'data' && st.version === 1;
}

/** Sends the JSON of a receipt (or of a value taken from one) with the status it calls for. */
export function sendReceipt(reply: FastifyReply, value: unknown, isNew = false): FastifyReply {
  return reply
    .code(isNew ? 201 : 200)
    .header('cache-control', 'no-store')
    .type(JSON_TYPE)
    .send(JSON.stringify(value) + '\n');
}

/** The answer to a finished write: its receipt, 201 for a created data file, else 204; the stat as headers. */
export function answerWrite(reply: FastifyReply, st: Stat | undefined, receipt: Receipt | undefined): FastifyReply {
  if (st) statHeaders(reply, st);
  if (receipt) return sendReceipt(reply, receipt.value, !!receipt.created);
  return reply.code(created(st) ? 201 : 204).send();
}
