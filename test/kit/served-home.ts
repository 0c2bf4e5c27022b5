/**
 * A data directory served by `agentctl serve` (a child process) with its config.json written by the
 * test, restarted on the same directory with another config.json: what an operator does to change the
 * server defaults. Requests go over HTTP on loopback with the admin token, as curl would send them.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, startServe, type ServeProcess } from '../cli/helpers.js';
import { tempDir } from '../helpers.js';

export class ServedHome {
  private server: ServeProcess | undefined;

  private constructor(
    readonly home: string,
    /** The config.json section the test rewrites (`compute`, `containers`). */
    private readonly section: string,
  ) {}

  /** A fresh data directory whose config.json section has this `policy`, served with the demo agent. */
  static async start(section: string, policy: Record<string, unknown>): Promise<ServedHome> {
    await ensureBuilt();
    const served = new ServedHome(tempDir(`agent9-${section}-defaults-`), section);
    await served.restart(policy);
    return served;
  }

  /** Stops the server, writes the section's new `policy` into config.json, and serves the directory again. */
  async restart(policy: Record<string, unknown>): Promise<void> {
    await this.stop();
    writeFileSync(join(this.home, 'config.json'), JSON.stringify({ [this.section]: { policy } }));
    this.server = await startServe(this.home, ['--demo']);
  }

  async stop(): Promise<void> {
    await this.server?.stop('SIGTERM');
    this.server = undefined;
  }

  req(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${this.server!.token}`);
    return fetch(this.server!.url + path, { ...init, headers });
  }

  /** The JSON of a successful answer (an error otherwise, with the status and body). */
  async json(path: string, init?: RequestInit): Promise<Record<string, unknown>> {
    const res = await this.req(path, init);
    const body = await res.text();
    if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: ${res.status} ${body}`);
    return JSON.parse(body) as Record<string, unknown>;
  }
}
