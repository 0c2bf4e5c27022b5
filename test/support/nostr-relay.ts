/**
 * A real Nostr relay in a child process (test/support/nostr-relay-process.mjs) that a test can start,
 * SIGKILL and start again on the same port and SQLite file: what it acknowledged before the kill is
 * still served after the restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./nostr-relay-process.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface TestRelayOptions {
  /** Where the events are kept (default: a file in `dir`, which survives restarts). */
  dbFile?: string;
  /** Demand NIP-42 AUTH before any REQ or EVENT. */
  auth?: boolean;
  /** A hostile relay: stores and serves events without checking ids or signatures. */
  acceptForged?: boolean;
  port?: number;
}

export class TestRelay {
  private child: ChildProcess | undefined;
  private stderr = '';
  port = 0;

  private constructor(private readonly options: Required<Pick<TestRelayOptions, 'dbFile'>> & TestRelayOptions) {}

  /** Starts a relay storing its events under `dir`. */
  static async start(dir: string, options: TestRelayOptions = {}): Promise<TestRelay> {
    const relay = new TestRelay({ dbFile: join(dir, `relay-${process.pid}-${Math.random().toString(36).slice(2)}.db`), ...options });
    relay.port = options.port ?? 0;
    await relay.spawn();
    return relay;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private async spawn(): Promise<void> {
    const config = { port: this.port, db: this.options.dbFile, auth: !!this.options.auth, acceptForged: !!this.options.acceptForged };
    const child = spawn(process.execPath, [SCRIPT, JSON.stringify(config)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.stderr = '';
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code, signal) => reject(new Error(`relay exited (${code ?? signal}) before listening: ${this.stderr}`))),
    );
    const lines = createInterface({ input: child.stdout! });
    const ready = new Promise<number>((resolve) => lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port)));
    this.port = await Promise.race([ready, exited]);
    lines.close();
    exited.catch(() => undefined);
  }

  /** Kills the relay process (SIGKILL by default: no goodbye to its clients) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await gone;
  }

  /** Starts the relay again on the same port and database. */
  async restart(): Promise<void> {
    await this.kill();
    await this.spawn();
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
  }
}

/** Relays started by a test file, stopped by `stopRelays()` in afterEach. */
const started: TestRelay[] = [];

export async function startRelay(dir: string, options: TestRelayOptions = {}): Promise<TestRelay> {
  const relay = await TestRelay.start(dir, options);
  started.push(relay);
  return relay;
}

export async function stopRelays(): Promise<void> {
  while (started.length) await started.pop()!.kill();
}
