/**
 * Bench child: `agentctl serve` in miniature: Agent9 (runtime, /compute with local-echo) on a fresh data
 * directory, agent `bench`, served over HTTP. Started with fork(); tells the parent {url, token}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent9 } from '../../src/server/agent9.js';
import { startServer } from '../../src/http/listener.js';

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'agent9-bench-compute-'));
  const a9 = await Agent9.open({ home, scheduler: false });
  a9.runtime.agents.create({ name: 'bench', program: 'echo' }, '/agents/new');
  const server = await startServer({ home, storage: a9.storage, namespace: a9.namespace, tokens: a9.tokens, registry: a9.registry, port: 0 });
  const stop = async () => {
    await server.close();
    await a9.close();
    rmSync(home, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('disconnect', () => void stop());
  process.send!({ url: server.url, token: server.adminToken });
}

void main();
