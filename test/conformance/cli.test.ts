/**
 * The core conformance cases through agentctl: every operation is an `agentctl` subprocess against a
 * real server on loopback, as a user types it (cat, write and append from stdin, call, ls, stat, rm,
 * mkdir, watch). Errors come from what a user sees: the `agentctl: CODE: message` line on stderr, and
 * the exit status, which must be the code's own (CONTRACT section 14).
 */
import { spawn } from 'node:child_process';
import { afterAll } from 'vitest';
import { conformance } from './cases.js';
import { TransportError, type Entry, type Transport, type WatchedEvent } from './transport.js';
import { cleanup } from '../helpers.js';
import { startFixtureServer, type FixtureServer } from '../http/helpers.js';
import { ERROR_TABLE, type ErrorCode } from '../../src/fs/errors.js';

const AGENTCTL = new URL('../../bin/agentctl', import.meta.url).pathname;
const servers: FixtureServer[] = [];
const NO_OUTPUT_MS = 30_000;

afterAll(async () => {
  for (const s of servers) await s.close();
  cleanup();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function agentctl(s: FixtureServer, args: string[], opts: { input?: string; ms?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(AGENTCTL, args, {
      env: { ...process.env, AGENT9_URL: s.url, AGENT9_TOKEN: s.token, AGENT9_HOME: s.home, NO_COLOR: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    // A watch that saw fewer events than asked for is ended like Ctrl-C would end it, `ms` after its
    // last output: counted from the spawn, a loaded machine's slow start ate the whole window (the
    // watches here always have events to replay; one that prints nothing ends after NO_OUTPUT_MS).
    let timer: NodeJS.Timeout | undefined;
    const quiet = (ms: number) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => child.kill('SIGINT'), ms);
    };
    if (opts.ms) quiet(NO_OUTPUT_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (opts.ms) quiet(opts.ms);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs agentctl; a failure becomes the TransportError of its stderr code, checked against its exit status. */
async function ok(s: FixtureServer, args: string[], input?: string): Promise<string> {
  const r = await agentctl(s, args, input === undefined ? {} : { input });
  if (r.code === 0) return r.stdout;
  const m = /^agentctl: ([A-Z]+): (.*)$/m.exec(r.stderr);
  if (!m) throw new Error(`agentctl ${args.join(' ')} exited ${r.code} without an error line: ${r.stderr}`);
  const code = m[1] as ErrorCode;
  const expected = ERROR_TABLE[code]?.exit;
  if (expected !== r.code) throw new Error(`agentctl ${args.join(' ')}: ${code} exited ${r.code}, CONTRACT says ${expected}`);
  throw new TransportError(code, m[2]!);
}

function cliTransport(s: FixtureServer): Transport {
  return {
    name: 'cli',
    admin: true,
    read: (p) => ok(s, ['cat', p]),
    write: async (p, d) => void (await ok(s, ['write', p], d)),
    append: async (p, d) => void (await ok(s, ['append', p], d)),
    call: (p, d) => ok(s, ['call', p], d),
    list: async (p) => {
      const rows = JSON.parse(await ok(s, ['--json', 'ls', p])) as { name: string; type: 'file' | 'dir'; size: number }[];
      // `ls` of a file shows the file itself, as ls(1) does; the cases list directories only.
      const st = JSON.parse(await ok(s, ['--json', 'stat', p])) as { type: string };
      if (st.type !== 'dir') throw new TransportError('ENOTDIR', `${p}: not a directory`);
      return rows.map((r): Entry => ({ name: r.name, type: r.type, size: r.size }));
    },
    stat: async (p) => {
      const st = JSON.parse(await ok(s, ['--json', 'stat', p])) as { type: 'file' | 'dir'; size: number; version: number };
      return { type: st.type, size: st.size, version: st.version };
    },
    remove: async (p) => void (await ok(s, ['rm', p])),
    mkdir: async (p) => void (await ok(s, ['mkdir', p])),
    readStream: (p) => ok(s, ['cat', p]),
    watch: async (p, from, n, ms = 3000) => {
      const args = ['--json', 'watch', p, '-n', String(n), ...(from !== undefined ? ['--from', String(from)] : [])];
      const r = await agentctl(s, args, { ms });
      if (r.code !== 0 && r.code !== 130) throw new TransportError(/agentctl: ([A-Z]+):/.exec(r.stderr)?.[1] ?? 'EIO', r.stderr);
      return r.stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as WatchedEvent)
        .slice(0, n);
    },
  };
}

conformance('cli (agentctl subprocesses)', async () => {
  const s = await startFixtureServer();
  servers.push(s);
  const t = cliTransport(s);
  return { t, feed: (line) => t.write('/svc/feed-ctl', line) };
});
