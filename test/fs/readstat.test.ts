/** readStat: stat and content in one step where a data file has them, the stat alone elsewhere. */
import { afterAll, describe, expect, it } from 'vitest';
import { Namespace } from '../../src/fs/namespace.js';
import { SyntheticFs, dir, jsonView } from '../../src/fs/synthetic.js';
import { readStat, writeAll } from '../../src/fs/ops.js';
import { mountWithAccess, Disabled, ReadOnly, ReadWrite } from '../../src/mounts/access.js';
import { admin, cleanup, expectCode, openStorage, text } from '../helpers.js';

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
