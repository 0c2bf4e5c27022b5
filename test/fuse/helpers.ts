/**
 * FUSE test support. Everything that touches a mount runs in a child process (a real shell and
 * coreutils), never synchronously in the test process, which serves the mount itself.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ERROR_TABLE, type ErrorCode } from '../../src/fs/errors.js';
import type { Namespace } from '../../src/fs/namespace.js';
import type { FileService } from '../../src/fs/types.js';
import { mountNamespace, type FuseMount, type MountNamespaceOptions } from '../../src/fuse/index.js';
import type { Storage } from '../../src/runtime/storage/index.js';
import { buildFixtureWithGoals } from '../conformance/fixture-goals.js';
import { openStorage } from '../helpers.js';

export const PYTHON = '/usr/bin/python3';

export interface ShResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ShOptions {
  cwd?: string;
  input?: string | Uint8Array;
  /** Kills the whole process group after this long (default 15 s) and reports timedOut. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs a bash script in its own process group; never throws for a failing command. */
export function sh(script: string, opts: ShOptions = {}): Promise<ShResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, opts.timeoutMs ?? 15_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), timedOut });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Like sh, but throws unless the script exits 0; returns stdout. */
export async function ok(script: string, opts: ShOptions = {}): Promise<string> {
  const r = await sh(script, opts);
  if (r.code !== 0) throw new Error(`script failed (${r.code ?? r.signal}${r.timedOut ? ', timed out' : ''}): ${script}\n${r.stderr}`);
  return r.stdout;
}

/** Single-quotes a string for bash. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** glibc's strerror text for each errno agent9 uses: how a shell reports an error. */
const STRERROR: Record<number, string> = {
  1: 'Operation not permitted',
  2: 'No such file or directory',
  4: 'Interrupted system call',
  5: 'Input/output error',
  9: 'Bad file descriptor',
  11: 'Resource temporarily unavailable',
  13: 'Permission denied',
  16: 'Device or resource busy',
  17: 'File exists',
  18: 'Invalid cross-device link',
  20: 'Not a directory',
  21: 'Is a directory',
  22: 'Invalid argument',
  27: 'File too large',
  29: 'Illegal seek',
  36: 'File name too long',
  38: 'Function not implemented',
  39: 'Directory not empty',
  110: 'Connection timed out',
  116: 'Stale file handle',
  121: 'Remote I/O error',
  122: 'Disk quota exceeded',
};

/** The agent9 code for an errno number (the first code in the table with that errno). */
export function codeOfErrno(errno: number): string {
  for (const [code, m] of Object.entries(ERROR_TABLE)) if (m.errno === errno) return code;
  return `errno ${errno}`;
}

/** The error code a shell command reported on stderr (`cat: x: No such file or directory`). */
export function codeOfStderr(stderr: string): string | undefined {
  let best: { at: number; errno: number } | undefined;
  for (const [errno, text] of Object.entries(STRERROR)) {
    const at = stderr.lastIndexOf(text);
    if (at >= 0 && (!best || at > best.at)) best = { at, errno: Number(errno) };
  }
  return best ? codeOfErrno(best.errno) : undefined;
}

export function errnoOf(code: ErrorCode): number {
  return ERROR_TABLE[code].errno;
}

export interface MountedFixture {
  storage: Storage;
  ns: Namespace;
  dir: string;
  mount: FuseMount;
  close(): Promise<void>;
}

/** A fresh mount point in the temp directory (removed again by unmountAndRemove). */
export function mountPoint(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'agent9-mnt-'));
}

/** Mounts any service at a fresh directory; close() unmounts and removes the directory. */
export async function mountService(service: FileService, opts: MountNamespaceOptions = {}) {
  const dir = await mountPoint();
  let mount: FuseMount;
  try {
    mount = await mountNamespace(service, dir, opts);
  } catch (err) {
    await rmdir(dir).catch(() => undefined);
    throw err;
  }
  return {
    dir,
    mount,
    async close() {
      await mount.unmount();
      // Not recursive: if the unmount had failed this must not walk into a live mount.
      await rmdir(dir).catch(() => undefined);
    },
  };
}

/** The conformance fixture (with /goals), mounted in this process. */
export async function mountFixture(opts: MountNamespaceOptions = {}): Promise<MountedFixture> {
  const storage = openStorage();
  const ns = buildFixtureWithGoals(storage);
  const m = await mountService(ns, opts);
  return { storage, ns, ...m };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true (or throws after `ms`). */
export async function until(check: () => Promise<boolean> | boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface ServerProcess {
  readonly pid: number;
  readonly dir: string;
  /** Sends a command line to the fixture server (feed, write, exit). */
  send(line: string): void;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
  stderr(): string;
  /** Kills the server only (its FUSE helper survives and unmounts), or its whole process group. */
  kill(signal: NodeJS.Signals, group?: boolean): void;
}

/**
 * Starts test/fuse/fixture-server.ts serving the fixture at `dir` from `home` in its own process group,
 * and resolves once it has mounted.
 */
export function startFixtureServer(home: string, dir: string, args: string[] = []): Promise<ServerProcess> {
  const root = new URL('../../', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', './test/support/ts-loader.mjs', 'test/fuse/fixture-server.ts', home, dir, ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | NodeJS.Signals | null>((r) => child.on('exit', (code, signal) => r(signal ?? code)));
  const server: ServerProcess = {
    pid: child.pid!,
    dir,
    send: (line) => child.stdin.write(line + '\n'),
    exited,
    stderr: () => err,
    kill: (signal, group = false) => {
      try {
        if (group) process.kill(-child.pid!, signal);
        else child.kill(signal);
      } catch {
        /* gone */
      }
    },
  };
  child.stdin.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes('"ready":true')) {
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolve(server);
      }
    };
    child.stdout.on('data', onData);
    void exited.then((how) => reject(new Error(`fixture server exited (${how}) before mounting: ${err}`)));
  });
}

/** One read(2) of `path` opened O_NONBLOCK, by Python in a child: prints `read`, or `EAGAIN <errno>`. */
export const nonblockRead = (path: string) =>
  sh(`${PYTHON} -c ${q(`
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    os.read(fd, 100)
    print('read')
except BlockingIOError as e:
    print('EAGAIN', e.errno)
`)} ${q(path)}`);
