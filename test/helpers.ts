import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cx } from '../src/fs/types.js';
import { Storage, type StorageOptions } from '../src/runtime/storage/index.js';
import { serverMigrations } from '../src/server/capabilities.js';

export const admin: Cx = { principal: { id: 'admin', admin: true } };
export const user: Cx = { principal: { id: 'user', admin: false } };

const cleanups: (() => void)[] = [];

export function tempDir(prefix = 'agent9-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A storage with every table a full server has (the runtime's and each standard capability's), plus `options.migrations`. */
export function openStorage(dir = tempDir(), options: StorageOptions = {}): Storage {
  const storage = Storage.open(dir, { ...options, migrations: [...serverMigrations(), ...(options.migrations ?? [])] });
  cleanups.push(() => storage.close());
  return storage;
}

export function cleanup(): void {
  while (cleanups.length) {
    try {
      cleanups.pop()!();
    } catch {
      /* already gone */
    }
  }
}

export const text = (b: Uint8Array): string => new TextDecoder().decode(b);
export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Collects events from an async iterable until `n` arrived or `ms` passed. */
export async function collect<T>(iter: AsyncIterable<T>, n: number, ms = 5000): Promise<T[]> {
  const out: T[] = [];
  const it = iter[Symbol.asyncIterator]();
  const deadline = Date.now() + ms;
  while (out.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const next = await Promise.race([
      it.next(),
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), left)),
    ]);
    if (next === 'timeout' || next.done) break;
    out.push(next.value);
  }
  void it.return?.(undefined);
  return out;
}

export async function expectCode(p: Promise<unknown>, code: string, pathPart?: string): Promise<Error & { code: string; path: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as Error & { code: string; path: string };
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
    if (pathPart !== undefined && !e.message.includes(pathPart)) {
      throw new Error(`expected message to name ${pathPart}: ${e.message}`);
    }
    return e;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}
