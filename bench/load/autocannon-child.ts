/**
 * Bench child: the load generator. autocannon runs here, in its own process, so that neither the
 * servers measured nor the harness share its event loop. The parent sends one run at a time
 * ({url, method, headers, body, connections, duration}) and gets back {rps, non2xx, errors}.
 */
import autocannon from 'autocannon';

export interface LoadRun {
  url: string;
  method: string;
  headers: Record<string, string>;
  /** The request body, base64 (none for GET). */
  body?: string;
  connections: number;
  duration: number;
  /**
   * The body is a JSON-RPC request: each request sent gets an `id` of its own (a server matches answers
   * to requests by id, so one id for all of them would not do).
   */
  jsonRpcIds?: boolean;
}

export interface LoadResult {
  rps: number;
  requests: number;
  non2xx: number;
  errors: number;
}

/** A request body per request: the JSON-RPC template with a fresh id each time. */
function numberedBodies(template: string): { setupRequest: (req: Record<string, unknown>) => Record<string, unknown> }[] {
  const request = JSON.parse(Buffer.from(template, 'base64').toString('utf8')) as Record<string, unknown>;
  let id = 0;
  return [{ setupRequest: (req) => ({ ...req, body: JSON.stringify({ ...request, id: ++id }) }) }];
}

process.on('message', (run: LoadRun) => {
  void (async () => {
    const r = await autocannon({
      url: run.url,
      method: run.method,
      headers: run.headers,
      connections: run.connections,
      duration: run.duration,
      ...(run.body !== undefined && !run.jsonRpcIds ? { body: Buffer.from(run.body, 'base64') } : {}),
      ...(run.body !== undefined && run.jsonRpcIds ? { requests: numberedBodies(run.body) } : {}),
    });
    const result: LoadResult = { rps: r.requests.average, requests: r.requests.total, non2xx: r.non2xx, errors: r.errors };
    process.send!(result);
  })().catch((err: unknown) => process.send!({ error: String((err as Error).stack ?? err) }));
});
process.on('disconnect', () => process.exit(0));
