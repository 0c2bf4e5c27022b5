/**
 * The version of agent9 this process runs: `version` of the package.json at the root of the package
 * (two levels above this module, in src/runtime as in dist/runtime), read once.
 */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function agent9Version(): string {
  if (cached === undefined) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  }
  return cached;
}
