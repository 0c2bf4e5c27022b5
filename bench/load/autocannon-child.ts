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
}

export interface LoadResult {
  rps: number;
  requests: number;
  non2xx: number;
  errors: number;
}

process.on('message', (run: LoadRun) => {
  void (async () => {
    const r = await autocannon({
      url: run.url,
      method: run.method,
      headers: run.headers,
      connections: run.connections,
      duration: run.duration,
      ...(run.body !== undefined ? { body: Buffer.from(run.body, 'base64') } : {}),
    });
    const result: LoadResult = { rps: r.requests.average, requests: r.requests.total, non2xx: r.non2xx, errors: r.errors };
    process.send!(result);
  })().catch((err: unknown) => process.send!({ error: String((err as Error).stack ?? err) }));
});
process.on('disconnect', () => process.exit(0));
