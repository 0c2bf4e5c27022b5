/** Shared set-up for runtime and service tests: a real Agent9 on a temp home, driven through its namespace. */
import { afterEach } from 'vitest';
import { Agent9, type Agent9Options } from '../../src/server/agent9.js';
import { readAll, writeAll, callFile } from '../../src/fs/ops.js';
import type { Cx, FileService, FsEvent } from '../../src/fs/types.js';
import type { Program, ProgramContext, ProgramResult } from '../../src/runtime/programs/index.js';
import { admin, cleanup, tempDir, text } from '../helpers.js';

const servers: Agent9[] = [];

afterEach(async () => {
  while (servers.length) await servers.pop()!.close();
  cleanup();
});

export async function openServer(options: Partial<Agent9Options> = {}): Promise<Agent9> {
  const a9 = await Agent9.open({ home: options.home ?? tempDir('agent9-rt-'), ...options });
  servers.push(a9);
  return a9;
}

/** Closes a server early (the afterEach hook skips servers already closed). */
export async function closeServer(a9: Agent9): Promise<void> {
  await a9.close();
}

/** File verbs over a namespace, as a user principal (admin unless given). */
export function files(ns: FileService, cx: Cx = admin) {
  return {
    read: async (p: string) => text(await readAll(ns, p, cx)),
    json: async <T = unknown>(p: string): Promise<T> => JSON.parse(text(await readAll(ns, p, cx))) as T,
    write: async (p: string, d: string | Uint8Array) => {
      await writeAll(ns, p, d, cx);
    },
    append: async (p: string, d: string | Uint8Array) => {
      await writeAll(ns, p, d, cx, { append: true });
    },
    call: async (p: string, d: string | Uint8Array) => text(await callFile(ns, p, d, cx)),
    list: async (p: string) => (await ns.readdir(p, cx)).map((e) => e.name),
    stat: (p: string) => ns.stat(p, cx),
    remove: (p: string, dir = false) => ns.remove!(p, cx, { dir }),
  };
}

export async function createAgent(a9: Agent9, spec: Record<string, unknown>): Promise<Record<string, unknown>> {
  return JSON.parse(await files(a9.namespace).call('/agents/new', JSON.stringify(spec))) as Record<string, unknown>;
}

/** Polls until `check` returns a value that is not undefined/false, or fails after `ms`. */
export async function waitFor<T>(check: () => T | Promise<T>, ms = 5000, what = 'condition'): Promise<Exclude<T, undefined | false>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v as Exclude<T, undefined | false>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A program written as a function (test programs: named as such, registered like built-ins). */
export function testProgram(name: string, run: (ctx: ProgramContext) => Promise<ProgramResult> | ProgramResult, live = false): Program {
  return { name, live, validate: () => ({ type: name }), run: async (ctx) => run(ctx) };
}

/** The trace of an agent (its retained trace events), from /logs/trajectory. */
export async function trace(a9: Agent9, id: string): Promise<Record<string, unknown>[]> {
  const t = await files(a9.namespace).read(`/agents/${id}/logs/trajectory`);
  return t
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Collects events of a watch until `n` arrived or `ms` passed. */
export async function watchN(ns: FileService, path: string, from: number | undefined, n: number, ms = 3000): Promise<FsEvent[]> {
  const ac = new AbortController();
  const out: FsEvent[] = [];
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    for await (const ev of ns.watch!(path, from, { ...admin, signal: ac.signal })) {
      out.push(ev);
      if (out.length >= n) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}
