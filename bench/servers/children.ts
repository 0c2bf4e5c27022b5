/**
 * Starting the servers the HTTP benches measure, each in its own process:
 * - `startShipped()`: `agentctl serve` itself (the same code path users run: Agent9, the HTTP app,
 *   tokens, the agent views and their access levels) on a fresh AGENT9_HOME, with agent `bench`
 *   created over HTTP and an agent-scoped token minted through /runtime/tokens/new, so requests go
 *   through the token check, the agent's view and its memory tree (`/memory` at the token's root).
 * - `startChild(script)`: a forked bench child (the bare fastify baseline).
 * Each can report its RSS and CPU time, so a figure can say what a request costs the server.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export interface ServerChild {
  url: string;
  /** The bearer token requests carry ('' for the baselines, which check none). */
  token: string;
  /** The admin token ('' for the baselines): /runtime/status says how writes shared commits. */
  adminToken: string;
  /** The 100-byte file a GET reads and a PUT replaces (a URL path). */
  hundredPath: string;
  /** A file an SSE watch follows and a PUT changes. */
  watchedPath: string;
  rssMb(): Promise<number>;
  /** User + system CPU time of the server process so far, in microseconds. */
  cpuMicros(): Promise<number>;
  stop(): Promise<void>;
}

export const HUNDRED = 'x'.repeat(99) + '\n';

/** A CPU profile of the server when AGENT9_BENCH_CPU_PROF names a directory (node --cpu-prof). */
function profileArgs(): string[] {
  const dir = process.env['AGENT9_BENCH_CPU_PROF'];
  return dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : [];
}

export function startChild(script: string): Promise<ServerChild> {
  return new Promise((resolve, reject) => {
    const proc: ChildProcess = fork(join(here, script), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: profileArgs() });
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    const ask = <T>(cmd: string, pick: (m: Record<string, unknown>) => T): Promise<T> =>
      new Promise((res) => {
        proc.once('message', (m: Record<string, unknown>) => res(pick(m)));
        proc.send({ cmd });
      });
    proc.once('message', (msg: { url: string }) => {
      resolve({
        url: msg.url,
        token: '',
        adminToken: '',
        hundredPath: '/hundred',
        watchedPath: '/watched',
        rssMb: () => ask('rss', (m) => (m['rss'] as number) / 1024 / 1024),
        cpuMicros: () => ask('cpu', (m) => {
          const cpu = m['cpu'] as NodeJS.CpuUsage;
          return cpu.user + cpu.system;
        }),
        stop: () =>
          new Promise((res) => {
            proc.removeAllListeners('exit');
            proc.once('exit', () => res());
            proc.kill('SIGTERM');
          }),
      });
    });
  });
}

/** utime + stime of a process from /proc, in microseconds. */
function procCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which is in parentheses and may hold spaces).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks / CLOCK_TICKS) * 1e6;
}
/** USER_HZ: 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

function procRssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function call(url: string, method: string, token: string, body?: string): Promise<string> {
  const res = await fetch(url, { method, headers: { authorization: `Bearer ${token}` }, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: HTTP ${res.status} ${text}`);
  return text;
}

export async function startShipped(): Promise<ServerChild> {
  const home = mkdtempSync(join(tmpdir(), 'agent9-bench-shipped-'));
  const agentctl = join(here, '..', '..', 'src', 'cli', 'agentctl.js');
  const proc = spawn(process.execPath, [...profileArgs(), agentctl, 'serve', '--port', '0', '--log-level', 'warn'], {
    env: { ...process.env, AGENT9_HOME: home },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let err = '';
    const onData = (chunk: Buffer) => {
      err += chunk.toString('utf8');
      const m = /agent9 serving (\S+)/.exec(err);
      if (m) {
        proc.stderr!.off('data', onData);
        proc.stderr!.pipe(process.stderr);
        resolve(m[1]!);
      }
    };
    proc.stderr!.on('data', onData);
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`agentctl serve exited with ${code}: ${err}`)));
  });
  const admin = readFileSync(join(home, 'admin.token'), 'utf8').trim();
  await call(`${url}/agents/new`, 'POST', admin, JSON.stringify({ name: 'bench', program: 'echo' }));
  const minted = JSON.parse(await call(`${url}/runtime/tokens/new`, 'POST', admin, JSON.stringify({ name: 'bench', agent: 'bench' }))) as { token: string };
  await call(`${url}/memory/hundred`, 'PUT', minted.token, HUNDRED);
  await call(`${url}/memory/watched`, 'PUT', minted.token, '0');
  const pid = proc.pid!;
  return {
    url,
    token: minted.token,
    adminToken: admin,
    hundredPath: '/memory/hundred',
    watchedPath: '/memory/watched',
    rssMb: () => Promise.resolve(procRssMb(pid)),
    cpuMicros: () => Promise.resolve(procCpuMicros(pid)),
    stop: () =>
      new Promise((res) => {
        proc.removeAllListeners('exit');
        proc.once('exit', () => {
          rmSync(home, { recursive: true, force: true });
          res();
        });
        proc.kill('SIGTERM');
      }),
  };
}
