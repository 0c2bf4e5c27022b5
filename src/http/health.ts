/**
 * The probes a supervisor (systemd, Kubernetes, a dashboard) polls, without a token and without
 * touching the namespace (CONTRACT.md section 12):
 *   GET /healthz   the process answers HTTP: 200 {"status":"ok"}
 *   GET /readyz    it can serve: storage open and every migration applied, 200 {"status":"ready"};
 *                  else 503 {"status":"not ready","reason":...} (also while it shuts down)
 * HEAD of either gives the same status and headers. They say nothing about agents or paths: anyone
 * who can reach the port may ask.
 */
import type { FastifyReply } from 'fastify';
import { JSON_TYPE } from './content-type.js';
import { DOCS } from './route-docs.js';
import type { PublicRoute, Route } from './routes.js';

function probe(reply: FastifyReply, status: number, body: Record<string, unknown>): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').type(JSON_TYPE).send(JSON.stringify(body) + '\n');
}

const healthz: PublicRoute['handler'] = async ({ reply }) => probe(reply, 200, { status: 'ok' });

const readyz: PublicRoute['handler'] = async ({ reply, app }) => {
  const r = app.readiness();
  return r.ready ? probe(reply, 200, { status: 'ready' }) : probe(reply, 503, { status: 'not ready', reason: r.reason });
};

export const healthRoutes: readonly Route[] = (['GET', 'HEAD'] as const).flatMap((method) => [
  { method, url: '/healthz', op: 'health', public: true as const, handler: healthz, doc: DOCS.healthz },
  { method, url: '/readyz', op: 'health', public: true as const, handler: readyz, doc: DOCS.readyz },
]);
