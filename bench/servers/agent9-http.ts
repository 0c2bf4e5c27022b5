/**
 * Bench child: agent9's HTTP server over a namespace with one data tree at /data holding `hundred`
 * (100 bytes) and `watched`. Started with fork(); tells the parent {url, token}; answers {cmd:'rss'}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Namespace } from '../../src/fs/namespace.js';
import { writeAll } from '../../src/fs/ops.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { Storage } from '../../src/runtime/storage/index.js';
import { startServer } from '../../src/http/server.js';
import { createRegistry, registerStorageMetrics } from '../../src/runtime/prometheus-registry.js';
import { TokenStore } from '../../src/runtime/token-store.js';
import { serverMigrations } from '../../src/server/capabilities.js';

const HUNDRED = 'x'.repeat(99) + '\n';

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'agent9-bench-http-'));
  const storage = Storage.open(home, { migrations: serverMigrations() });
  const ns = new Namespace({ scope: 'bench', events: storage.events, name: 'bench' });
  mountWithAccess(ns, '/data', storage.dataTree('bench:data', { scope: 'bench', prefix: '/data' }), ReadWrite);
  const admin = { principal: { id: 'admin', admin: true } };
  await writeAll(ns, '/data/hundred', HUNDRED, admin);
  await writeAll(ns, '/data/watched', '0', admin);
  const registry = createRegistry();
  registerStorageMetrics(registry, storage);
  const server = await startServer({ home, storage, namespace: ns, tokens: new TokenStore(storage), registry, port: 0 });
  process.on('message', (msg: { cmd?: string }) => {
    if (msg.cmd === 'rss') process.send!({ rss: process.memoryUsage().rss });
    if (msg.cmd === 'cpu') process.send!({ cpu: process.cpuUsage() });
  });
  const stop = async () => {
    await server.close();
    storage.close();
    rmSync(home, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('disconnect', () => void stop());
  process.send!({ url: server.url, token: server.adminToken });
}

void main();
