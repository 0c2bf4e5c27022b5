/**
 * Agent routes kept for compatibility (CONTRACT.md section 9): each is a file operation on the
 * caller's view, so tokens and access levels apply exactly as on the files themselves.
 *   GET /agents               the status of every agent (a JSON array)
 *   POST /agents              create one: the answer of /agents/new, 201
 *   POST /agents/<id>/tick    write `tick` to its ctl: 200 with the tick's report
 *   POST /agents/<id>/send    append the body to its inbox: 201 with `{envelope_id, status}`, as a POST to the inbox
 */
import type { FastifyRequest } from 'fastify';
import { FsError } from '../fs/errors.js';
import { readAll, writeAll } from '../fs/ops.js';
import { joinPath, validateName } from '../fs/paths.js';
import { JSON_TYPE } from './content-type.js';
import { httpError } from './error-replies.js';
import { answer } from './file-routes.js';
import { checkDeclaredJson } from './json-bodies.js';
import { DOCS } from './route-docs.js';
import type { Route, RouteContext } from './routes.js';
import { answerWrite, receiving, sendReceipt } from './write-answers.js';

const agentPath = (id: string, ...rest: string[]): string => {
  validateName(id, `/agents/${id}`);
  return joinPath('/agents', id, ...rest);
};

const agentParam = (request: FastifyRequest): string => (request.params as { id: string }).id;

async function listAgents({ reply, view, cx }: RouteContext) {
  const entries = (await view.readdir('/agents', cx)).filter((e) => e.stat.type === 'dir');
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  const agents = await Promise.all(
    entries.map(async (e) => {
      try {
        return JSON.parse(new TextDecoder().decode(await readAll(view, agentPath(e.name, 'status'), cx))) as unknown;
      } catch (err) {
        return { id: e.name, error: httpError(err, agentPath(e.name, 'status')).toJSON() };
      }
    }),
  );
  return reply.header('cache-control', 'no-cache').type(JSON_TYPE).send(JSON.stringify(agents) + '\n');
}

/** The ctl's receipt is `{agent, state, ticks}`; this route ran one tick and answers its report. */
async function tick({ reply, view, cx, target }: RouteContext) {
  const answering = receiving(cx);
  await writeAll(view, target.path, 'tick', answering.cx);
  const ticks = answering.receipt()?.value['ticks'];
  const report = Array.isArray(ticks) ? (ticks[0] as unknown) : undefined;
  if (report === undefined) throw new FsError('EIO', target.path, 'the tick ran but reported nothing');
  return sendReceipt(reply, report);
}

async function send(ctx: RouteContext) {
  const { reply, view, cx, target, body } = ctx;
  if (body.length === 0) throw new FsError('EINVAL', target.path, 'nothing to send: the body is empty');
  await checkDeclaredJson(ctx, target.path, 'message');
  const answering = receiving(cx);
  const st = await writeAll(view, target.path, body, answering.cx, { append: true });
  return answerWrite(reply, st, answering.receipt());
}

export const agentRoutes: readonly Route[] = [
  { method: 'GET', url: '/agents', op: 'agents', path: () => '/agents', handler: listAgents, doc: DOCS.listAgents },
  { method: 'POST', url: '/agents', op: 'call', path: () => '/agents/new', handler: (ctx) => answer(ctx, '/agents/new', 201), doc: DOCS.createAgent },
  { method: 'POST', url: '/agents/:id/tick', op: 'agents', path: (r) => agentPath(agentParam(r), 'ctl'), handler: tick, doc: DOCS.tick },
  { method: 'POST', url: '/agents/:id/send', op: 'agents', path: (r) => agentPath(agentParam(r), 'inbox'), handler: send, doc: DOCS.send },
];
