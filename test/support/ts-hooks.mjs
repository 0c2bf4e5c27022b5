/**
 * Module hooks for ts-loader.mjs: map `./x.js` to `./x.ts` and transpile TypeScript (no type check).
 *
 * Transpiled modules are cached on disk by the hash of their path and source, and TypeScript itself is
 * loaded only on a miss. A child server used to load the TypeScript compiler and transpile the whole
 * source tree at every start (about 5 s of CPU): on a loaded machine one start took 25 s, and the
 * crash tests, which start two servers each within their 30 s, timed out. With the cache a start
 * costs what the compiled JavaScript costs. Entries are written aside and renamed, so processes
 * starting at once never read half a file; a stale entry cannot be read, since its key is its source.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { URL, fileURLToPath } from 'node:url';

const TS_VERSION = JSON.parse(readFileSync(new URL('../../node_modules/typescript/package.json', import.meta.url), 'utf8')).version;
const OPTIONS = { module: 'ESNext', target: 'ES2022', inlineSourceMap: true };
const CACHE = join(tmpdir(), `agent9-ts-cache-${process.getuid?.() ?? 'any'}`);

let ts;
async function transpile(file, source) {
  ts ??= (await import('typescript')).default;
  return ts.transpileModule(source, {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, inlineSourceMap: true },
  }).outputText;
}

export async function resolve(specifier, context, next) {
  const local = specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('file:');
  if (local && specifier.endsWith('.js') && context.parentURL?.startsWith('file:')) {
    const url = new URL(specifier, context.parentURL);
    if (!existsSync(fileURLToPath(url))) {
      const tsUrl = new URL(url.href.slice(0, -3) + '.ts');
      if (existsSync(fileURLToPath(tsUrl))) return { url: tsUrl.href, shortCircuit: true, format: 'module' };
    }
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const file = fileURLToPath(url);
  const source = await readFile(file, 'utf8');
  const key = createHash('sha256').update(`${TS_VERSION}\0${JSON.stringify(OPTIONS)}\0${file}\0${source}`).digest('hex');
  const cached = join(CACHE, `${key}.js`);
  try {
    return { format: 'module', source: await readFile(cached, 'utf8'), shortCircuit: true };
  } catch {
    // not cached yet
  }
  const output = await transpile(file, source);
  try {
    await mkdir(CACHE, { recursive: true });
    const aside = `${cached}.${process.pid}.tmp`;
    await writeFile(aside, output);
    await rename(aside, cached);
  } catch {
    // A cache that cannot be written only costs time.
  }
  return { format: 'module', source: output, shortCircuit: true };
}
