/**
 * The server assembly: `/runtime` holds the same entries whichever transport serves it (a plain
 * Agent9.open, `agentctl serve`, `agentctl serve --mount DIR`), and deleting an agent has every
 * capability forget it, with a failure reported (log, metric, event), never swallowed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readAll } from '../../src/fs/ops.js';
import { Agent9 } from '../../src/server/agent9.js';
import type { CapabilityPlugin } from '../../src/server/capabilities.js';
import { admin, cleanup, collect, tempDir, text } from '../helpers.js';
import { agentctl, ensureBuilt, startServe } from '../cli/helpers.js';
import { mountedType } from '../../src/fuse/kernel-mount.js';
import { mountPoint, ok, q, sh } from '../fuse/helpers.js';

const RUNTIME_ENTRIES = ['metrics', 'nostr', 'status', 'tokens'];

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) if ((await mountedType(d))?.startsWith('fuse')) await sh(`fusermount -u -z ${q(d)}`);
  cleanup();
});

async function listedOverHttp(home: string): Promise<string[]> {
  const ls = await agentctl(['ls', '-1', '/runtime'], { env: { AGENT9_HOME: home } });
  expect(ls.code, ls.stderr).toBe(0);
  // `ls -1` marks directories with a slash.
  return ls.stdout.split('\n').filter(Boolean).map((n) => n.replace(/\/$/, '')).sort();
}

describe('/runtime, whoever serves it', () => {
  it('a plain Agent9.open has /runtime/{metrics,nostr,status,tokens}, and they work', async () => {
    const a9 = await Agent9.open({ home: tempDir(), scheduler: false, compute: false, containers: false });
    try {
      const names = (await a9.namespace.readdir('/runtime', admin)).map((e) => e.name).sort();
      expect(names).toEqual(RUNTIME_ENTRIES);
      expect(text(await readAll(a9.namespace, '/runtime/metrics', admin))).toContain('agent9_agents');
      expect((await a9.namespace.readdir('/runtime/tokens', admin)).map((e) => e.name)).toContain('new');
    } finally {
      await a9.close();
    }
  });

  it('agentctl serve lists the same entries over HTTP, and with --mount the mount lists them too', async () => {
    await ensureBuilt();
    const plain = await startServe(tempDir());
    try {
      expect(await listedOverHttp(plain.home)).toEqual(RUNTIME_ENTRIES);
    } finally {
      expect(await plain.stop('SIGTERM')).toBe(0);
    }

    const d = await mountPoint();
    dirs.push(d);
    const mounted = await startServe(tempDir(), ['--mount', d]);
    try {
      expect(mounted.stderr()).toContain(`mounted at ${d}`);
      expect((await ok(`ls ${q(d)}/runtime`)).split('\n').filter(Boolean).sort()).toEqual(RUNTIME_ENTRIES);
      expect(await listedOverHttp(mounted.home)).toEqual(RUNTIME_ENTRIES);
      expect(await ok(`cat ${q(d)}/runtime/metrics`)).toContain('agent9_http_requests_total');
    } finally {
      expect(await mounted.stop('SIGTERM')).toBe(0);
    }
  }, 120_000);
});

describe('deleting an agent', () => {
  it('calls every capability, and a failure to forget is logged, counted and told to watchers of /agents', async () => {
    const forgotten: string[] = [];
    const warnings: { fields: Record<string, unknown>; message: string }[] = [];
    const forgetful: CapabilityPlugin<null> = {
      name: 'forgetful',
      migrations: [],
      open: () => null,
      agentMounts: () => [],
      forgetAgent: async (_engine, id) => {
        forgotten.push(`forgetful:${id}`);
        throw new Error('the disk went away');
      },
      close: async () => undefined,
    };
    const careful: CapabilityPlugin<null> = { ...forgetful, name: 'careful', forgetAgent: async (_engine, id) => void forgotten.push(`careful:${id}`) };
    const a9 = await Agent9.open({
      home: tempDir(),
      scheduler: false,
      capabilities: [forgetful, careful],
      log: { warn: (fields, message) => warnings.push({ fields, message }) },
    });
    try {
      a9.runtime.agents.create({ name: 'gone', program: 'echo' }, '/agents/new');
      a9.budgets.setLimits('gone', { day: 1000 });
      expect(a9.budgets.limits('gone').day).toBe(1000);
      const watching = collect(a9.namespace.watch('/agents', undefined, admin), 3, 3000);
      await a9.namespace.remove('/agents/gone', admin, { dir: true });
      const events = await watching;
      // The failure's event comes after its log line and counter.
      const metrics = text(await readAll(a9.namespace, '/runtime/metrics', admin));
      expect(forgotten.sort()).toEqual(['careful:gone', 'forgetful:gone']);
      expect(warnings).toEqual([{ fields: { capability: 'forgetful', agent: 'gone', err: 'the disk went away' }, message: 'forgetful could not forget deleted agent gone' }]);
      expect(metrics).toMatch(/agent9_capability_failures_total\{capability="forgetful",work="forget"\} 1/);
      expect(events.filter((e) => e.type === 'data').map((e) => [e.path, e.data])).toEqual([
        ['/agents/gone', { type: 'forget_failed', capability: 'forgetful', error: 'the disk went away' }],
      ]);
      // The budget capability (always there) forgot the agent's limits.
      expect(a9.budgets.limits('gone').day).not.toBe(1000);
    } finally {
      await a9.close();
    }
  });
});
