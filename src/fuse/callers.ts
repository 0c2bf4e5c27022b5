/**
 * Who a FUSE request acts as, from the process behind it (the caller context every request carries).
 *
 * - A process of an exec program acts as its agent: its session (exec programs lead a session of their
 *   own, so every process they start shares it unless it calls setsid), else the mark its environment
 *   inherited (`AGENT9_PRINCIPAL`, through setsid and double forks, across a restart of the server),
 *   else the nearest ancestor that is one. A mark that is not this server's acts as nobody.
 * - Any other process of the server's own user (or root) is the operator.
 * - Other users (an `--allow-other` mount) get what config.json grants them
 *   (`"mount": {"users": {"<uid>": "operator" | "agent:<id>"}}`); by default nothing.
 *
 * Answers are kept for a second per pid (a pid is not handed out again that soon), so a burst of
 * requests from one process reads /proc once. The threat model is in CONTRACT.md section 15: this
 * guards against an honest program's mistakes, not against malice.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { FsError } from '../fs/errors.js';
import type { Caller, Principal } from '../fs/types.js';
import { PRINCIPAL_ENV, type ExecProcesses } from '../runtime/exec-processes.js';
import { configSection } from '../runtime/home-config.js';
import { AGENT_ID_RE, describeIssues } from '../runtime/spec.js';

/** What config.json grants a local user on an `--allow-other` mount. */
export type UserGrant = { operator: true } | { agent: string };

export interface CallerRules {
  /** The uid the server runs as: it and root are the operator (or the exec agents they run). */
  serverUid: number;
  /** The principal of the operator on this mount (the global view), or of the agent of an `--agent` mount. */
  owner: Principal;
  /** An `--agent ID` mount: everyone allowed here acts as that agent (owner), except other agents. */
  agentMount?: string;
  /** Exec programs' processes; absent: no process acts as an agent here (agentctl mount). */
  processes?: ExecProcesses;
  /** Whether an agent still exists (a mark of a deleted agent acts as nobody). */
  agentExists?(id: string): boolean;
  /** Grants of other local users (config.json `mount.users`). */
  users?: ReadonlyMap<number, UserGrant>;
}

const CACHE_MS = 1000;
const CACHE_MAX = 8192;
const MAX_ANCESTRY = 32;

/** An agent as a principal on the mount: its own access levels, never an admin. */
export function agentCaller(id: string): Principal {
  return { id: `agent:${id}`, admin: false, agentId: id };
}

interface ProcInfo {
  ppid: number;
  pgrp: number;
  session: number;
}

/** ppid, process group and session of a process (or thread) from /proc/<pid>/stat. */
export function readProcStat(pid: number): ProcInfo | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]) };
}

/** The value of `name` in a process's environment (as it was at exec), from /proc/<pid>/environ. */
export function readProcEnv(pid: number, name: string): string | undefined {
  let env: Buffer;
  try {
    env = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return undefined;
  }
  const key = Buffer.from(`${name}=`);
  let at = env.indexOf(key);
  while (at > 0 && env[at - 1] !== 0) at = env.indexOf(key, at + 1);
  if (at < 0) return undefined;
  const end = env.indexOf(0, at);
  return env.toString('utf8', at + key.length, end < 0 ? env.length : end);
}

/** Who each caller is; undefined: nobody (every request is EACCES). */
export class CallerPrincipals {
  private readonly cache = new Map<number, { who: Principal | null; until: number }>();
  private readonly agents = new Map<string, Principal>();
  /** /proc reads made (measurements). */
  reads = 0;

  constructor(private readonly rules: CallerRules) {}

  principalOf(caller: Caller): Principal | undefined {
    const { rules } = this;
    // A process outside the mount's pid namespace shows as pid 0 (the kernel's own requests that need a
    // principal come from a process): nobody we can tell, so nobody.
    if (caller.pid === 0) return undefined;
    if (caller.uid !== rules.serverUid && caller.uid !== 0) return this.granted(caller.uid);
    const now = Date.now();
    const hit = this.cache.get(caller.pid);
    if (hit && hit.until > now) return hit.who ?? undefined;
    const who = this.resolve(caller.pid, now);
    return who ?? undefined;
  }

  private granted(uid: number): Principal | undefined {
    const grant = this.rules.users?.get(uid);
    if (!grant) return undefined;
    if ('agent' in grant) {
      return this.agent(grant.agent) ?? undefined;
    }
    if (this.rules.agentMount !== undefined) return this.rules.owner;
    return { id: `user:${uid}`, admin: true };
  }

  private agent(id: string): Principal | null {
    if (this.rules.agentExists && !this.rules.agentExists(id)) return null;
    if (this.rules.agentMount !== undefined) return id === this.rules.agentMount ? this.rules.owner : null;
    let p = this.agents.get(id);
    if (!p) {
      p = agentCaller(id);
      if (this.agents.size > CACHE_MAX) this.agents.clear();
      this.agents.set(id, p);
    }
    return p;
  }

  /** The agent of process `pid`, `null` for nobody, undefined when it is not an agent's at all. */
  private agentOfProcess(pid: number, info: ProcInfo | undefined): Principal | null | undefined {
    const table = this.rules.processes;
    if (!table) return undefined;
    if (info) {
      const bySession = table.agentOfSession(info.session) ?? table.agentOfSession(info.pgrp);
      if (bySession !== undefined) return this.agent(bySession);
    }
    this.reads++;
    const mark = table.readMark(readProcEnv(pid, PRINCIPAL_ENV));
    if (!mark) return undefined;
    return 'agent' in mark ? this.agent(mark.agent) : null;
  }

  private resolve(pid: number, now: number): Principal | null {
    const walked: number[] = [];
    let who: Principal | null = this.rules.owner;
    let current = pid;
    for (let depth = 0; depth < MAX_ANCESTRY; depth++) {
      const hit = this.cache.get(current);
      if (hit && hit.until > now) {
        who = hit.who;
        break;
      }
      walked.push(current);
      this.reads++;
      const info = readProcStat(current);
      const agent = this.agentOfProcess(current, info);
      if (agent !== undefined) {
        who = agent;
        break;
      }
      // The server itself and init end the way up: what they start is the operator's.
      if (!info || info.ppid <= 1 || info.ppid === process.pid) break;
      current = info.ppid;
    }
    if (this.cache.size > CACHE_MAX) this.cache.clear();
    for (const p of walked) this.cache.set(p, { who, until: now + CACHE_MS });
    return who;
  }
}

const UserGrantSchema = z.string().transform((v, ctx): UserGrant => {
  if (v === 'operator') return { operator: true };
  const id = v.startsWith('agent:') ? v.slice('agent:'.length) : undefined;
  if (id !== undefined && AGENT_ID_RE.test(id)) return { agent: id };
  ctx.addIssue({ code: 'custom', message: `'${v}' is not "operator" or "agent:<id>"` });
  return z.NEVER;
});
const MountConfigSchema = z.strictObject({
  mount: z.strictObject({ users: z.record(z.string().regex(/^\d{1,10}$/, 'keys are uids (numbers)'), UserGrantSchema).optional() }),
});

/** The `mount` section of `<home>/config.json`: what other local users get; EINVAL naming the field when wrong. */
export function loadMountUsers(home: string): Map<number, UserGrant> {
  const { value, file } = configSection(home, 'mount');
  const users = new Map<number, UserGrant>();
  if (value === undefined) return users;
  const r = MountConfigSchema.safeParse({ mount: value });
  if (!r.success) throw new FsError('EINVAL', file, `bad mount section: ${describeIssues(r.error)}`);
  for (const [uid, grant] of Object.entries(r.data.mount.users ?? {})) users.set(Number(uid), grant);
  return users;
}
