/**
 * The version of agent9 this process runs: `version` of agent9's package.json, found by walking up from
 * this module (src/runtime and dist/runtime are two levels below it, dist-bench/src/runtime three), read once.
 */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function agent9Version(): string {
  if (cached === undefined) {
    cached = 'unknown';
    for (let dir = new URL('../', import.meta.url); dir.pathname !== '/'; dir = new URL('../', dir)) {
      try {
        const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: unknown; version?: unknown };
        if (pkg.name !== 'agent9') continue;
        if (typeof pkg.version === 'string') cached = pkg.version;
        break;
      } catch {
        /* no package.json here: one level up */
      }
    }
  }
  return cached;
}
