/**
 * agentctl as a subprocess: the compiled dist/cli/agentctl.js, rebuilt first when any source file is
 * newer (one build at a time across test processes).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { cleanup, tempDir } from '../helpers.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const AGENTCTL = join(ROOT, 'dist', 'cli', 'agentctl.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function upToDate(): boolean {
  return existsSync(AGENTCTL) && statSync(AGENTCTL).mtimeMs >= newestMtime(join(ROOT, 'src'));
}

export async function ensureBuilt(): Promise<void> {
  const lock = join(ROOT, 'dist', '.build-lock');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  const deadline = Date.now() + 180_000;
  while (!upToDate()) {
    try {
      mkdirSync(lock);
    } catch {
      if (Date.now() > deadline) throw new Error('waited too long for another test process to build agentctl');
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    try {
      if (!upToDate()) execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' });
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  input?: string | Uint8Array;
  timeoutMs?: number;
}

/** Runs agentctl with a clean environment (only what is given, plus PATH and HOME). */
export function agentctl(args: string[], options: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', NO_COLOR: '1' };
    for (const [k, v] of Object.entries(options.env ?? {})) if (v !== undefined) env[k] = v;
    const child = spawn(process.execPath, [AGENTCTL, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

export interface ServeProcess {
  home: string;
  url: string;
  token: string;
  pid: number;
  stderr(): string;
  stdout(): string;
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** `agentctl serve` in a child process; resolves once it has written server.json. */
export async function startServe(home: string, args: string[] = [], env: Record<string, string> = {}): Promise<ServeProcess> {
  const { readFileSync } = await import('node:fs');
  const child = spawn(process.execPath, [AGENTCTL, 'serve', '--port', '0', '--log-level', 'warn', ...args], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', AGENT9_HOME: home, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const info = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string; pid: number };
      if (info.pid === child.pid && err.includes('agent9 serving')) {
        return {
          home,
          url: info.url,
          token: readFileSync(join(home, 'admin.token'), 'utf8').trim(),
          pid: child.pid,
          stderr: () => err,
          stdout: () => out,
          stop: (signal: NodeJS.Signals = 'SIGTERM') => {
            child.kill(signal);
            return exited;
          },
        };
      }
    } catch {
      /* not yet */
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`agentctl serve did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** agentctl in the background (watch -f, logs -f): its output so far, and a way to stop it. */
export function agentctlBackground(args: string[], env: Record<string, string>): { output(): string; stop(signal?: NodeJS.Signals): Promise<Run> } {
  const child = spawn(process.execPath, [AGENTCTL, ...args], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr })));
  return {
    output: () => stdout,
    stop: (signal: NodeJS.Signals = 'SIGINT') => {
      child.kill(signal);
      return done;
    },
  };
}

/**
 * `agentctl serve ARGS` on a fresh data directory for the tests of one file: built and started before
 * them, killed after them. `run` is agentctl against it (its data directory finds the URL and token).
 */
export function servedForTests(prefix: string, args: string[] = []) {
  const suite = {
    server: undefined as unknown as ServeProcess,
    env: {} as Record<string, string>,
    run: (argv: string[], options: RunOptions = {}) => agentctl(argv, { ...options, env: { ...suite.env, ...options.env } }),
  };
  beforeAll(async () => {
    await ensureBuilt();
    const home = tempDir(prefix);
    suite.server = await startServe(home, args);
    suite.env = { AGENT9_HOME: home };
  }, 240_000);
  afterAll(async () => {
    await suite.server?.stop('SIGKILL');
    cleanup();
  });
  return suite;
}
