/**
 * ARCHITECTURE.md stays true: every source file it names exists, and every top-level path of the global
 * view and of an agent's view (with the standard capabilities) has a row in its path table.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Agent9 } from '../../src/server/agent9.js';
import { admin, cleanup, tempDir } from '../helpers.js';
import { ROOT } from '../cli/helpers.js';

const doc = readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8');

/** The paths in the first column of the table under "Which file serves each path". */
function tablePaths(): Set<string> {
  const section = doc.slice(doc.indexOf('## Which file serves each path'));
  const paths = new Set<string>();
  for (const line of section.split('\n')) {
    const m = /^\| `([^`]+)`/.exec(line);
    if (m) paths.add(m[1]!.replace(/ \(.*\)$/, ''));
  }
  return paths;
}

afterAll(cleanup);

describe('ARCHITECTURE.md', () => {
  it('names only source files that exist', () => {
    const named = [...doc.matchAll(/`((?:src|test)\/[^`\s]*[^`\s/])`/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(30);
    const missing = named.filter((p) => !existsSync(join(ROOT, p)));
    expect(missing).toEqual([]);
  });

  it('has a row for every top-level path of the global view and of an agent view', async () => {
    const a9 = await Agent9.open({ home: tempDir(), scheduler: false });
    try {
      a9.runtime.agents.create({ name: 'a', program: 'echo' }, '/agents/new');
      const rows = tablePaths();
      const global = (await a9.namespace.readdir('/', admin)).map((e) => `/${e.name}`);
      const runtime = (await a9.namespace.readdir('/runtime', admin)).map((e) => `/runtime/${e.name}`);
      const agents = (await a9.namespace.readdir('/agents', admin)).filter((e) => e.name !== 'a').map((e) => `/agents/${e.name}`);
      const agent = (await a9.namespace.readdir('/agents/a', admin)).map((e) => `/${e.name}`);
      expect(agent).toEqual(expect.arrayContaining(['/status', '/inbox', '/budget', '/compute', '/containers']));
      const missing = [...global, ...runtime, ...agents, '/agents/<id>', ...agent].filter((p) => !rows.has(p));
      expect(missing).toEqual([]);
    } finally {
      await a9.close();
    }
  });
});
