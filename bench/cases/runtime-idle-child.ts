/**
 * Child process of the idle-agents bench (run with --expose-gc):
 * - `create HOME N`: registers N echo agents through /agents/new and lets their init ticks finish;
 * - `measure HOME`: opens the server (scheduler running) on HOME, settles, and reports its RSS.
 * Prints one JSON line.
 */
import { Agent9 } from '../../src/server/agent9.js';
import { callFile } from '../../src/fs/ops.js';

const [mode, home, countText] = process.argv.slice(2);
const cx = { principal: { id: 'bench', admin: true } };
const gc = (globalThis as { gc?: () => void }).gc;

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 300));
    gc?.();
  }
}

const mb = (n: number) => n / 1024 / 1024;

if (mode === 'create') {
  const n = Number(countText);
  const t0 = Date.now();
  const a9 = await Agent9.open({ home: home!, scheduler: { concurrency: 8 } });
  for (let i = 0; i < n; i++) {
    await callFile(a9.namespace, '/agents/new', JSON.stringify({ name: `idle-${i}`, program: 'echo' }), cx);
  }
  await a9.runtime.scheduler.idle();
  await a9.runtime.engine.locks.idle();
  const rss = process.memoryUsage().rss;
  await a9.close();
  process.stdout.write(JSON.stringify({ ms: Date.now() - t0, rss_mb: mb(rss) }) + '\n');
} else if (mode === 'measure') {
  const a9 = await Agent9.open({ home: home! });
  await settle();
  const agents = a9.runtime.agents.count;
  const mem = process.memoryUsage();
  await a9.close();
  process.stdout.write(JSON.stringify({ agents, rss_mb: mb(mem.rss), heap_mb: mb(mem.heapUsed) }) + '\n');
} else {
  process.stderr.write('usage: runtime-idle-child create HOME N | measure HOME\n');
  process.exit(2);
}
