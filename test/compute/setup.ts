/** A namespace with one agent's /compute mounted the way the agent view mounts it. */
import { Namespace } from '../../src/fs/namespace.js';
import { callFile, readAll, writeAll } from '../../src/fs/ops.js';
import { mountWithAccess, ReadWrite } from '../../src/mounts/access.js';
import { ComputeEngine, createComputeService, LocalEchoProvider, ProviderRegistry, type PolicyInput } from '../../src/services/compute/index.js';
import type { ComputeProvider, JobStatus } from '../../src/services/compute/types.js';
import type { Cx } from '../../src/fs/types.js';
import type { Storage } from '../../src/runtime/storage/index.js';
import { openStorage, text, user } from '../helpers.js';

export const AGENT = 'a';

export interface ComputeSetup {
  storage: Storage;
  engine: ComputeEngine;
  ns: Namespace;
}

const engines: ComputeEngine[] = [];

/** Closes every engine made by setupCompute (run in afterEach/afterAll before the storage cleanup). */
export async function closeEngines(): Promise<void> {
  while (engines.length) await engines.pop()!.close();
}

export function setupCompute(
  opts: { providers?: ComputeProvider[]; policy?: PolicyInput; dir?: string; storage?: Storage } = {},
): ComputeSetup {
  const storage = opts.storage ?? openStorage(opts.dir);
  const registry = new ProviderRegistry(opts.providers ?? [new LocalEchoProvider()]);
  const engine = new ComputeEngine({ storage, providers: registry, ...(opts.policy ? { policy: opts.policy } : {}) });
  engines.push(engine);
  return { storage, engine, ns: agentNamespace(storage, engine) };
}

export function agentNamespace(storage: Storage, engine: ComputeEngine, agentId = AGENT): Namespace {
  const ns = new Namespace({ scope: agentId, events: storage.events, name: `agent:${agentId}` });
  mountWithAccess(ns, '/compute', createComputeService({ engine, agentId }), ReadWrite, { adminWrite: ['/policy'] });
  return ns;
}

export interface Submitted {
  job_id: string;
  status: JobStatus;
  replayed?: true;
  paths: { status: string; result: string; stream: string; ctl: string };
}

export async function submit(ns: Namespace, request: unknown, cx: Cx = user): Promise<Submitted> {
  const body = typeof request === 'string' ? request : JSON.stringify(request);
  return JSON.parse(text(await callFile(ns, '/compute/new', body, cx))) as Submitted;
}

export async function readJson<T = Record<string, unknown>>(ns: Namespace, path: string, cx: Cx = user): Promise<T> {
  return JSON.parse(text(await readAll(ns, path, cx))) as T;
}

export async function writeJson(ns: Namespace, path: string, value: unknown, cx: Cx): Promise<void> {
  await writeAll(ns, path, JSON.stringify(value), cx);
}

/** Polls a job's status file until it is one of `want` (tests only; users watch or read the stream). */
export async function waitStatus(ns: Namespace, id: string, want: JobStatus[] = ['complete', 'failed', 'cancelled'], ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const st = await readJson<{ status: JobStatus } & Record<string, unknown>>(ns, `/compute/jobs/${id}/status`);
    if (want.includes(st.status)) return st;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${st.status} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reads a job's stream file to its end, as parsed chunks. */
export async function readStream(ns: Namespace, id: string, cx: Cx = user) {
  const lines = text(await readAll(ns, `/compute/jobs/${id}/stream`, cx)).split('\n').filter(Boolean);
  return lines.map((l) => JSON.parse(l) as { delta: { text: string }; finish_reason: string | null; usage: unknown; error?: { code: string; message: string } });
}
