/**
 * Which processes act for which agent. An exec program runs in a session of its own (spawned detached:
 * setsid), so every process it starts shares that session unless it calls setsid itself; the table
 * below knows the live sessions. Every process of an exec program also carries a mark in its
 * environment, `AGENT9_PRINCIPAL=<agent>.<mac>`, inherited through forks, setsid and double forks (and
 * across a restart of the server); the mac (HMAC-SHA256 under a key derived from server.key) tells a
 * mark of this server from one of another server, or one typed by hand.
 *
 * A transport that knows the process behind a request (FUSE) asks `agentOf` with what it read from
 * /proc; the reading is the transport's business (src/fuse/callers.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { AGENT_ID_RE } from './spec.js';

export const PRINCIPAL_ENV = 'AGENT9_PRINCIPAL';

const MAC_HEX = 32;

/** What a mark says: an agent of this server, a mark that is not this server's, or none. */
export type MarkReading = { agent: string } | { foreign: true } | undefined;

export class ExecProcesses {
  /** Session (= process group) leader pid -> agent id, while the program runs. */
  private readonly sessions = new Map<number, string>();

  constructor(private readonly markKey: Uint8Array) {}

  private mac(agentId: string): string {
    return createHmac('sha256', this.markKey).update(`agent9 process of ${agentId}`).digest('hex').slice(0, MAC_HEX);
  }

  /** The environment variable every process of the agent's exec programs carries. */
  env(agentId: string): Record<string, string> {
    return { [PRINCIPAL_ENV]: `${agentId}.${this.mac(agentId)}` };
  }

  /** Reads a mark (the variable's value). */
  readMark(value: string | undefined): MarkReading {
    if (value === undefined) return undefined;
    const dot = value.lastIndexOf('.');
    const agent = value.slice(0, dot);
    const mac = value.slice(dot + 1);
    if (dot < 1 || !AGENT_ID_RE.test(agent) || mac.length !== MAC_HEX) return { foreign: true };
    const want = Buffer.from(this.mac(agent));
    return timingSafeEqual(want, Buffer.from(mac)) ? { agent } : { foreign: true };
  }

  /** An exec program's process started; `pid` leads its session and process group. */
  started(pid: number, agentId: string): void {
    this.sessions.set(pid, agentId);
  }

  /** Its process group was killed: processes that left it are known by their mark only. */
  ended(pid: number): void {
    this.sessions.delete(pid);
  }

  /** The agent whose program leads session (or process group) `id`. */
  agentOfSession(id: number): string | undefined {
    return this.sessions.get(id);
  }

  /** Sessions running now (status, measurements). */
  get running(): number {
    return this.sessions.size;
  }
}
