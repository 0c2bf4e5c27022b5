/** readStat: stat and content in one step where a data file has them, the stat alone elsewhere. */
import { afterAll, describe, expect, it } from 'vitest';
import { Namespace } from '../../src/fs/namespace.js';
import { SyntheticFs, dir, jsonView } from '../../src/fs/synthetic.js';
import { readStat, writeAll } from '../../src/fs/ops.js';
import { mountWithAccess, Disabled, ReadOnly, ReadWrite } from '../../src/mounts/access.js';
import { rootAt } from '../../src/mounts/scope.js';
import { Agent9 } from '../../src/server/agent9.js';
import { admin, cleanup, expectCode, openStorage, tempDir, text } from '../helpers.js';

afterAll(cleanup);

function build() {
  const storage = openStorage();
  const ns = new Namespace({ scope: 's', events: storage.events });
  mountWithAccess(ns, '/data', storage.dataTree('d', { scope: 's', prefix: '/data' }), ReadWrite);
  mountWithAccess(ns, '/ro', storage.dataTree('r', { scope: 's', prefix: '/ro' }), ReadOnly);
  mountWithAccess(ns, '/off', storage.dataTree('o', { scope: 's', prefix: '/off' }), Disabled);
  mountWithAccess(ns, '/deep/svc', new SyntheticFs(dir({ v: jsonView(() => ({ a: 1 })) })), ReadWrite);
  return ns;
}

describe('readStat', () => {
  it('a data file: its stat and its bytes, from one snapshot', async () => {
    const ns = build();
    await writeAll(ns, '/data/f', 'hello', admin);
    await writeAll(ns, '/data/f', 'hello again', admin);
    const r = await readStat(ns, '/data/f', admin);
    expect(text(r.data!)).toBe('hello again');
    expect(r.stat).toMatchObject({ type: 'file', kind: 'data', size: 11, version: 2 });
  });

  it('directories, views and synthesised directories give the stat alone', async () => {
    const ns = build();
    expect((await readStat(ns, '/data', admin)).data).toBeUndefined();
    const view = await readStat(ns, '/deep/svc/v', admin);
    expect(view.stat.kind).toBe('view');
    expect(view.data).toBeUndefined();
    expect((await readStat(ns, '/deep', admin)).stat.type).toBe('dir');
    expect((await readStat(ns, '/', admin)).stat.type).toBe('dir');
  });

  it('errors and access levels are those of stat and read', async () => {
    const ns = build();
    await expectCode(readStat(ns, '/data/none', admin), 'ENOENT', '/data/none');
    await expectCode(readStat(ns, '/nothing', admin), 'ENOENT', '/nothing');
    await expectCode(readStat(ns, '/off/x', admin), 'EACCES', '/off/x');
    const ro = await readStat(ns, '/ro', admin);
    expect(ro.stat.mode & 0o222).toBe(0);
  });
});

describe('readStat through the server assembly', () => {
  it("an agent's memory file gives its bytes in one step, from the global view and from the agent's own root", async () => {
    const a9 = await Agent9.open({ home: tempDir(), scheduler: false, compute: false, containers: false });
    try {
      a9.runtime.agents.create({ name: 'a', program: 'echo' }, '/agents/new');
      await writeAll(a9.namespace, '/agents/a/memory/f', 'remembered', admin);
      const global = await readStat(a9.namespace, '/agents/a/memory/f', admin);
      expect(text(global.data!)).toBe('remembered');
      expect(global.stat).toMatchObject({ kind: 'data', size: 10 });
      const own = await readStat(rootAt(a9.namespace, '/agents/a'), '/memory/f', { principal: { id: 'agent', admin: false, agentId: 'a' } });
      expect(text(own.data!)).toBe('remembered');
      // The agent's directory and files that are not data give the stat alone.
      expect((await readStat(a9.namespace, '/agents/a', admin)).data).toBeUndefined();
      expect((await readStat(a9.namespace, '/agents/a/status', admin)).data).toBeUndefined();
      await expectCode(readStat(a9.namespace, '/agents/a/memory/none', admin), 'ENOENT', '/agents/a/memory/none');
      await expectCode(readStat(a9.namespace, '/agents/nobody/memory/f', admin), 'ENOENT', '/agents/nobody');
    } finally {
      await a9.close();
    }
  });
});
