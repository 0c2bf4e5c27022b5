import { afterAll, describe, expect, it } from 'vitest';
import { Namespace } from '../../src/fs/namespace.js';
import { SyntheticFs, dir, view, jsonView } from '../../src/fs/synthetic.js';
import { readAll, writeAll } from '../../src/fs/ops.js';
import { admin, cleanup, expectCode, openStorage, text } from '../helpers.js';

afterAll(cleanup);

const leaf = (name: string) => new SyntheticFs(dir({ who: view(() => name) }), name);

describe('Namespace', () => {
  it('resolves the longest prefix on segment boundaries', async () => {
    const ns = new Namespace();
    ns.mount('/tools', leaf('tools'));
    ns.mount('/tools/core', leaf('core'));
    ns.mount('/goals', leaf('goals'));
    expect(ns.resolve('/tools/core/who')!.mount.path).toBe('/tools/core');
    expect(ns.resolve('/tools/core/who')!.rel).toBe('/who');
    expect(ns.resolve('/tools/user/custom')!.mount.path).toBe('/tools');
    expect(ns.resolve('/tools/user/custom')!.rel).toBe('/user/custom');
    expect(ns.resolve('/goals')!.rel).toBe('/');
    expect(ns.resolve('/goalsX')).toBeUndefined();
    expect(text(await readAll(ns, '/tools/core/who', admin))).toBe('core');
    expect(text(await readAll(ns, '/tools/who', admin))).toBe('tools');
    await expectCode(readAll(ns, '/goalsX/who', admin), 'ENOENT', '/goalsX/who');
  });

  it('has a working root mount that matches everything', async () => {
    const ns = new Namespace();
    ns.mount('/', leaf('root'));
    ns.mount('/sub', leaf('sub'));
    expect(text(await readAll(ns, '/who', admin))).toBe('root');
    expect(text(await readAll(ns, '/sub/who', admin))).toBe('sub');
    const names = (await ns.readdir('/', admin)).map((e) => e.name).sort();
    expect(names).toEqual(['mounts', 'sub', 'who']);
  });

  it('synthesises directories for mount points and their parents', async () => {
    const ns = new Namespace();
    ns.mount('/a/b/c', leaf('c'));
    ns.mount('/a/x', leaf('x'));
    expect((await ns.stat('/a', admin)).type).toBe('dir');
    expect((await ns.stat('/a/b', admin)).type).toBe('dir');
    expect((await ns.readdir('/', admin)).map((e) => e.name).sort()).toEqual(['a', 'mounts']);
    expect((await ns.readdir('/a', admin)).map((e) => e.name).sort()).toEqual(['b', 'x']);
    expect((await ns.readdir('/a/b', admin)).map((e) => e.name)).toEqual(['c']);
    await expectCode(ns.stat('/a/nope', admin), 'ENOENT', '/a/nope');
    await expectCode(ns.open('/a', { read: true }, admin), 'EISDIR', '/a');
    await expectCode(ns.mkdir('/a/b', 0o755, admin), 'EEXIST');
    await expectCode(ns.remove('/a/b/c', admin), 'EBUSY');
  });

  it('nests: a namespace mounted in a namespace, errors name the full path', async () => {
    const inner = new Namespace();
    inner.mount('/status', new SyntheticFs(jsonView(() => ({ ok: true })), 'status'));
    const outer = new Namespace();
    outer.mount('/agents/bob', inner);
    expect(JSON.parse(text(await readAll(outer, '/agents/bob/status', admin)))).toEqual({ ok: true });
    expect(text(await readAll(outer, '/agents/bob/mounts', admin))).toContain('/status status rw');
    const err = await expectCode(readAll(outer, '/agents/bob/nothing', admin), 'ENOENT');
    expect(err.path).toBe('/agents/bob/nothing');
    expect(err.message).toBe('/agents/bob/nothing: no such file or directory');
  });

  it('lists the mount table in /mounts', async () => {
    const ns = new Namespace();
    ns.mount('/b', leaf('bee'), { access: 'ro' });
    ns.mount('/a', leaf('ay'));
    expect(text(await readAll(ns, '/mounts', admin))).toBe('/a ay rw\n/b bee ro\n/mounts mounts ro\n');
  });

  it('refuses renames across mounts with EXDEV and bad paths with EINVAL', async () => {
    const storage = openStorage();
    const ns = new Namespace({ scope: 's', events: storage.events });
    ns.mount('/one', storage.dataTree('one', { scope: 's', prefix: '/one' }));
    ns.mount('/two', storage.dataTree('two', { scope: 's', prefix: '/two' }));
    await writeAll(ns, '/one/f', 'x', admin);
    await expectCode(ns.rename('/one/f', '/two/f', admin), 'EXDEV', '/one/f');
    await expectCode(readAll(ns, '/one/../two/f', admin), 'EINVAL', '/one/../two/f');
    await expectCode(readAll(ns, 'one/f', admin), 'EINVAL');
    await expectCode(readAll(ns, '/one/f\0x', admin), 'EINVAL');
  });
});
