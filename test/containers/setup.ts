/** An agent namespace with /containers mounted over the real engine, for in-process tests. */
import { afterAll, beforeAll } from 'vitest';
import { Namespace } from '../../src/fs/namespace.js';
import { callFile, readAll } from '../../src/fs/ops.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { BudgetLedger } from '../../src/runtime/budget-ledger.js';
import type { Storage } from '../../src/runtime/storage/index.js';
import { ContainerEngine, createContainersService, CONTAINERS_ADMIN_WRITE, type PolicyInput } from '../../src/services/containers/index.js';
import type { ContainerProvider } from '../../src/services/containers/providers/types.js';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { admin, cleanup, openStorage, text } from '../helpers.js';
import { removeLabelled, requireEngine } from './engine.js';

export const AGENT = 'alice';

export interface Rig {
  storage: Storage;
  ledger: BudgetLedger;
  engine: ContainerEngine;
  ns: Namespace;
  /** Writes a request to a call file and parses the JSON answer. */
  call(path: string, body: unknown): Promise<Record<string, unknown>>;
  /** Reads a file and parses it as JSON. */
  json(path: string): Promise<Record<string, unknown>>;
  read(path: string): Promise<string>;
}

export function makeRig(opts: { storage?: Storage; providers?: ContainerProvider[]; policy?: PolicyInput } = {}): Rig {
  const storage = opts.storage ?? openStorage();
  const ledger = new BudgetLedger(storage);
  const engine = new ContainerEngine({
    storage,
    ledger,
    ...(opts.providers ? { providers: opts.providers } : {}),
    ...(opts.policy ? { policy: opts.policy } : {}),
  });
  const ns = new Namespace({ scope: AGENT, events: storage.events, name: AGENT });
  mountWithAccess(ns, '/containers', createContainersService({ engine, agentId: AGENT }), ReadWrite, { adminWrite: CONTAINERS_ADMIN_WRITE });
  const read = async (path: string) => text(await readAll(ns, path, admin));
  return {
    storage,
    ledger,
    engine,
    ns,
    read,
    json: async (path) => JSON.parse(await read(path)) as Record<string, unknown>,
    call: async (path, body) => {
      const out = await callFile(ns, path, typeof body === 'string' ? body : JSON.stringify(body), admin);
      return JSON.parse(text(out)) as Record<string, unknown>;
    },
  };
}

/**
 * For a test file on the real engine: before its tests, the engine (or a failure saying how to start
 * one) and a rig over it, handed to `use`; after them, the rig closed and every container it made removed.
 */
export function onEngineRig(use: (provider: DockerProvider, rig: Rig) => void): void {
  let provider: DockerProvider | undefined;
  let rig: Rig | undefined;
  beforeAll(async () => {
    provider = await requireEngine();
    rig = makeRig();
    use(provider, rig);
  });
  afterAll(async () => {
    await rig?.engine.close();
    if (provider && rig) await removeLabelled(provider, { 'agent9.instance': rig.engine.instanceId });
    cleanup();
  });
}

/** Parses JSON lines of an output stream. */
export function lines(s: string): Record<string, unknown>[] {
  return s
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
