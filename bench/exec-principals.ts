/**
 * The measurement behind "one principal per agent on the mount" (ARCHITECTURE.md, CONTRACT section 15):
 * many exec agents on one mount of the global view, each request mapped to its agent from the caller's
 * process, against the alternative of one mount of its own view per agent.
 *
 *   node --import ./test/support/ts-loader.mjs bench/exec-principals.ts [AGENTS] [VIEW_MOUNTS]
 *
 * Prints one JSON line: for the shared mount, the time for AGENTS exec agents to each run one tick that
 * reads its status and tries (and fails) to write its budget through the mount, the server's threads and
 * RSS before and after, and the /proc reads made; the cost per request of a caller that is an agent
 * against one that is the operator (a child process stats a file 2,000 times); and for VIEW_MOUNTS
 * mounts of single agents' views, the threads and RSS each adds (what AGENTS of them would cost).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Agent9 } from '../src/server/agent9.js';
import { agentRootEnv, CallerPrincipals, mountServer, type FuseMount } from '../src/fuse/index.js';

const agents = Number(process.argv[2] ?? 1000);
const viewMounts = Number(process.argv[3] ?? 20);

function threadsAndRss(): { threads: number; rss_mib: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { threads: field('Threads'), rss_mib: Math.round(field('VmRSS') / 1024) };
}

function run(cmd: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', cmd], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd}: exit ${code}`))));
  });
}

const STAT_LOOP = `python3 -c 'import os,sys,time
p=sys.argv[1]; t=time.perf_counter()
for _ in range(2000): os.stat(p)
print((time.perf_counter()-t)/2000*1e6)' "$1"`;

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'agent9-principals-'));
  const dir = mkdtempSync(join(tmpdir(), 'agent9-principals-mnt-'));
  const a9 = await Agent9.open({ home });
  const mount = await mountServer(a9, dir, { attrTimeout: 0, entryTimeout: 0 });
  const env = agentRootEnv(mount);
  a9.setExecEnv(async (id) => env(id));
  const callers = (mount.adapter as unknown as { options: { callers: CallerPrincipals } }).options.callers;
  const before = threadsAndRss();
  const command = `cat "$AGENT_ROOT/status" > /dev/null && ! (echo '{"day": null}' > "$AGENT_ROOT/budget") 2>/dev/null`;
  const started = Date.now();
  for (let i = 0; i < agents; i++) a9.runtime.agents.create({ name: `x${i}`, program: { type: 'exec', command } }, '/agents/new');
  await a9.runtime.scheduler.idle();
  const elapsed = Date.now() - started;
  const failed = a9.runtime.store.listAgents().filter((r) => (a9.runtime.store.getAgent(r.id)?.ticks_failed ?? 0) > 0).length;
  const after = threadsAndRss();

  // One stat, from a process that is an agent's (it carries the mark) and from the operator's.
  const target = join(dir, 'agents', 'x0', 'status');
  const asAgent = Number(await run(STAT_LOOP.replace('"$1"', `'${target}'`), { ...process.env, ...a9.runtime.processes.env('x0') }));
  const asOperator = Number(await run(STAT_LOOP.replace('"$1"', `'${target}'`)));

  // The alternative: a mount of its own view per agent.
  const base = threadsAndRss();
  const views: FuseMount[] = [];
  const mountStart = Date.now();
  for (let i = 0; i < viewMounts; i++) views.push(await mountServer(a9, mkdtempSync(join(tmpdir(), 'agent9-view-')), { agent: `x${i}` }));
  const mountMs = Date.now() - mountStart;
  const withViews = threadsAndRss();
  for (const v of views) {
    await v.unmount();
    await rmdir(v.dir).catch(() => undefined);
  }
  await mount.unmount();
  await a9.close();
  rmSync(home, { recursive: true, force: true });
  await rmdir(dir).catch(() => undefined);
  const perMount = { threads: (withViews.threads - base.threads) / viewMounts, rss_mib: (withViews.rss_mib - base.rss_mib) / viewMounts, mount_ms: mountMs / viewMounts };
  console.log(
    JSON.stringify({
      shared_mount: { agents, ticks_ms: elapsed, failed_ticks: failed, before, after, proc_reads: callers.reads },
      stat_us: { as_agent: Math.round(asAgent * 10) / 10, as_operator: Math.round(asOperator * 10) / 10 },
      view_mounts: { measured: viewMounts, per_mount: perMount, for_all_agents: { threads: Math.round(perMount.threads * agents), rss_mib: Math.round(perMount.rss_mib * agents) } },
    }),
  );
}

await main();
