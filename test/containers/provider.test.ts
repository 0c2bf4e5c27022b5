/** The docker provider against the real engine: containers, limits, execs, signals. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerProvider, Demuxer, normalizeImage } from '../../src/services/containers/providers/docker.js';
import type { SessionSpec } from '../../src/services/containers/providers/types.js';
import { BUSYBOX, removeLabelled, requireEngine, testLabel } from './engine.js';

const labels = testLabel();
let provider: DockerProvider;

function spec(over: Partial<SessionSpec> = {}): SessionSpec {
  return {
    sessionId: 'test',
    image: BUSYBOX,
    env: { GREETING: 'hello' },
    workdir: '/workspace',
    memoryMb: 64,
    cpuCores: 0.5,
    pids: 64,
    diskMb: 16,
    network: false,
    networkMode: 'bridge',
    labels,
    ...over,
  };
}

async function runIn(containerId: string, cmd: string) {
  const r = await provider.run(containerId, ['/bin/sh', '-c', cmd]);
  return { code: r.exitCode, out: Buffer.from(r.stdout).toString(), err: Buffer.from(r.stderr).toString() };
}

beforeAll(async () => {
  provider = await requireEngine();
});

afterAll(async () => {
  if (provider) await removeLabelled(provider, labels);
});

describe('docker provider', () => {
  it('demultiplexes frames split at any byte', () => {
    const frame = (type: number, text: string) => {
      const body = Buffer.from(text);
      const head = Buffer.alloc(8);
      head[0] = type;
      head.writeUInt32BE(body.length, 4);
      return Buffer.concat([head, body]);
    };
    const all = Buffer.concat([frame(1, 'out1'), frame(2, 'err1'), frame(1, 'out2')]);
    for (let cut = 1; cut < all.length; cut++) {
      let out = '';
      let err = '';
      const d = new Demuxer({ stdout: (b) => (out += Buffer.from(b).toString()), stderr: (b) => (err += Buffer.from(b).toString()) });
      d.push(all.subarray(0, cut));
      d.push(all.subarray(cut));
      expect([out, err]).toEqual(['out1out2', 'err1']);
    }
  });

  it('normalizes image references', () => {
    expect(normalizeImage('busybox')).toBe('busybox:latest');
    expect(normalizeImage('agent9/busybox:latest')).toBe('agent9/busybox:latest');
    expect(normalizeImage('localhost:5000/x')).toBe('localhost:5000/x:latest');
    expect(normalizeImage('x@sha256:abc')).toBe('x@sha256:abc');
  });

  it('never sends the engine an id or image it would redirect (the client library crashed the process following one)', async () => {
    for (const bad of ['../x', 'a/../../b', '%2e%2e', '//x', 'x?y', 'x#y', '.', '']) {
      await expect(provider.inspect(bad)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(provider.remove(bad)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(provider.stop(bad, 0)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(provider.kill(bad)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(provider.exec(bad, { marker: 'm', argv: ['true'], env: {}, stdin: false }, { stdout: () => {}, stderr: () => {} })).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(provider.hasImage(bad)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining("field 'image'") });
      await expect(provider.createSession(spec({ image: bad }))).rejects.toMatchObject({ code: 'EINVAL' });
    }
    // The engine's own 404s still read as "not there".
    expect(await provider.inspect('a'.repeat(64))).toBeUndefined();
    expect(await provider.hasImage('no/such:image')).toBe(false);
  });

  it('reports health and images of the engine', async () => {
    const h = await provider.health();
    expect(h.status).toBe('available');
    expect(h.engine?.version).toBeTruthy();
    expect(await provider.images()).toContain(BUSYBOX);
  });

  it('reports an unreachable engine as unavailable with the reason', async () => {
    const bogus = new DockerProvider({ socketPath: '/nonexistent/docker.sock' });
    const h = await bogus.health();
    expect(h.status).toBe('unavailable');
    expect(h.reason).toContain('/nonexistent/docker.sock');
    await expect(bogus.createSession(spec())).rejects.toMatchObject({ code: 'EREMOTEIO' });
  });

  it('runs a session container with limits, no network, a read-only root and a writable workdir', async () => {
    const { containerId } = await provider.createSession(spec());
    try {
      expect((await provider.inspect(containerId))?.running).toBe(true);
      expect((await runIn(containerId, 'ls /sys/class/net')).out.trim()).toBe('lo');
      const ro = await runIn(containerId, 'touch /etc/x');
      expect(ro.code).not.toBe(0);
      expect(ro.err).toMatch(/Read-only/);
      expect((await runIn(containerId, 'echo ok > /workspace/f && cat f && pwd')).out).toBe('ok\n/workspace\n');
      expect((await runIn(containerId, 'echo $GREETING')).out).toBe('hello\n');
      const mem = await runIn(containerId, 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max');
      expect(Number(mem.out.trim())).toBe(64 * 1024 * 1024);
      const pids = await runIn(containerId, 'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max');
      expect(pids.out.trim()).toBe('64');
    } finally {
      await provider.remove(containerId);
    }
    expect(await provider.inspect(containerId)).toBeUndefined();
  });

  it('keeps stdout and stderr apart, passes stdin and reports the exit code', async () => {
    const { containerId } = await provider.createSession(spec());
    try {
      let out = '';
      let err = '';
      const ex = await provider.exec(
        containerId,
        { marker: 'm1', argv: ['/bin/sh', '-c', 'read line; echo "got $line"; echo oops >&2; exit 3'], env: {}, stdin: true },
        { stdout: (b) => (out += Buffer.from(b).toString()), stderr: (b) => (err += Buffer.from(b).toString()) },
      );
      await ex.writeStdin(new TextEncoder().encode('abc\n'));
      ex.closeStdin();
      expect(await ex.done).toEqual({ exitCode: 3 });
      expect(out).toBe('got abc\n');
      expect(err).toBe('oops\n');
    } finally {
      await provider.remove(containerId);
    }
  });

  it.each([
    ['from the host', () => provider],
    ['from inside the container', () => new DockerProvider({ hostCgroupRoot: null })],
  ])('kills the whole process tree of one exec and nothing else, %s', async (_how, make) => {
    const killer = make();
    const { containerId } = await provider.createSession(spec());
    try {
      const other = await provider.exec(containerId, { marker: 'keep', argv: ['sleep', '1000'], env: {}, stdin: false }, { stdout: () => {}, stderr: () => {} });
      const victim = await provider.exec(
        containerId,
        { marker: 'victim', argv: ['/bin/sh', '-c', 'sleep 1001 & (sleep 1002 &); while :; do :; done'], env: {}, stdin: false },
        { stdout: () => {}, stderr: () => {} },
      );
      await new Promise((r) => setTimeout(r, 300));
      const n = await killer.signalExec(containerId, 'victim', 'KILL');
      expect(n).toBeGreaterThanOrEqual(3);
      expect((await victim.done).exitCode).toBe(137);
      const ps = await runIn(containerId, 'ps -o args');
      expect(ps.out).toContain('sleep 1000');
      expect(ps.out).not.toContain('sleep 1001');
      expect(ps.out).not.toContain('sleep 1002');
      other.detach();
    } finally {
      await provider.remove(containerId);
    }
  });

  it('reports an out-of-memory kill as exit 137 and counts it in the cgroup', async () => {
    const { containerId } = await provider.createSession(spec({ memoryMb: 32 }));
    try {
      const before = await provider.usage(containerId);
      const r = await runIn(containerId, 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo ${#x}');
      expect(r.code).toBe(137);
      const after = await provider.usage(containerId);
      expect(after.oom_kills).toBeGreaterThan(before.oom_kills ?? 0);
      expect(after.peak_memory_bytes).toBeGreaterThan(16 * 1024 * 1024);
      expect(after.cpu_time_ms).toBeGreaterThan(0);
    } finally {
      await provider.remove(containerId);
    }
  });

  it('reads usage from the host cgroups and from inside the container alike', async () => {
    const { containerId } = await provider.createSession(spec({ memoryMb: 32 }));
    const inside = new DockerProvider({ hostCgroupRoot: null });
    try {
      await runIn(containerId, 'x=$(head -c 100000000 /dev/zero | tr "\\0" a)');
      const host = await provider.usage(containerId);
      const there = await inside.usage(containerId);
      expect(host.oom_kills).toBeGreaterThan(0);
      expect(there.oom_kills).toBe(host.oom_kills);
      expect(there.peak_memory_bytes).toBe(host.peak_memory_bytes);
      expect(there.cpu_time_ms! - host.cpu_time_ms!).toBeGreaterThanOrEqual(0);
      expect(there.cpu_time_ms! - host.cpu_time_ms!).toBeLessThan(1000);
    } finally {
      await provider.remove(containerId);
    }
  });

  it('finds its containers by label and stops them', async () => {
    const { containerId } = await provider.createSession(spec());
    const found = await provider.list(labels);
    expect(found.map((c) => c.containerId)).toContain(containerId);
    await provider.stop(containerId, 1);
    const state = await provider.inspect(containerId);
    expect(state?.running).toBe(false);
    await provider.remove(containerId);
    await provider.remove(containerId);
  });
});
