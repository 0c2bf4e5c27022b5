import { afterAll, describe, expect, it } from 'vitest';
import { Namespace } from '../../src/fs/namespace.js';
import { SyntheticFs, dir, view, call, jsonView } from '../../src/fs/synthetic.js';
import { readAll, writeAll, callFile } from '../../src/fs/ops.js';
import { FsError } from '../../src/fs/errors.js';
import { mountWithAccess, ReadOnly, ReadWrite, SignOnly, Disabled, Budgeted } from '../../src/mounts/access.js';
import { admin, user, cleanup, expectCode, openStorage, text } from '../helpers.js';

afterAll(cleanup);

describe('access levels at the mount layer', () => {
  const setup = () => {
    const storage = openStorage();
    const ns = new Namespace({ scope: 'a', events: storage.events });
    const tree = (n: string) => storage.dataTree(n, { scope: 'a', prefix: '/' + n });
    return { storage, ns, tree };
  };

  it('ReadOnly: reads work, every write is EACCES, modes lose write bits', async () => {
    const { ns, tree } = setup();
    const data = tree('ro');
    await writeAll(data, '/f', 'x', admin);
    mountWithAccess(ns, '/ro', data, ReadOnly);
    expect(text(await readAll(ns, '/ro/f', admin))).toBe('x');
    expect((await ns.stat('/ro/f', admin)).mode & 0o222).toBe(0);
    await expectCode(writeAll(ns, '/ro/f', 'y', admin), 'EACCES', '/ro/f');
    await expectCode(ns.open('/ro/f', { write: true }, admin), 'EACCES');
    await expectCode(ns.mkdir('/ro/d', 0o755, admin), 'EACCES');
    await expectCode(ns.remove('/ro/f', admin), 'EACCES');
    await expectCode(ns.truncate('/ro/f', 0, admin), 'EACCES');
    await expectCode(ns.setattr('/ro/f', { mode: 0o600 }, admin), 'EACCES');
    expect(text(await readAll(ns, '/ro/f', admin))).toBe('x');
  });

  it('Disabled: everything is EACCES, also stat and list, and its events reach no watcher', async () => {
    const { ns, tree } = setup();
    mountWithAccess(ns, '/off', tree('off'), Disabled);
    await expectCode(ns.readdir('/off', admin), 'EACCES', '/off');
    await expectCode(ns.stat('/off/x', admin), 'EACCES');
    expect((await ns.stat('/off', admin)).mode).toBe(0);
    await expectCode(readAll(ns, '/off/x', admin), 'EACCES');
    await expectCode(writeAll(ns, '/off/x', 'x', admin), 'EACCES');
    expect((await ns.readdir('/', admin)).map((e) => e.name)).toContain('off');
    await expectCode(ns.watchMatcher('/off', admin), 'EACCES');
    const all = (await ns.watchMatcher('/', admin))!;
    const rec = (path: string) => ({ id: 1, scope: 'a', path, type: 'created' as const, time: 0 });
    expect(all.map(rec('/off/x'))).toBeUndefined();
    expect(all.map(rec('/other/x'))).toBe('/other/x');
  });

  it('SignOnly: only the identity files, and only call files take writes', async () => {
    const { ns } = setup();
    const identity = new SyntheticFs(
      dir({
        pubkey: view(() => 'abcd\n'),
        secret: view(() => 'never'),
        sign: call((req) => `sig(${text(req)})`),
      }),
      'identity',
    );
    mountWithAccess(ns, '/identity', identity, SignOnly);
    expect((await ns.readdir('/identity', admin)).map((e) => e.name).sort()).toEqual(['pubkey', 'sign']);
    expect(text(await readAll(ns, '/identity/pubkey', admin))).toBe('abcd\n');
    expect(text(await callFile(ns, '/identity/sign', 'm', admin))).toBe('sig(m)');
    await expectCode(readAll(ns, '/identity/secret', admin), 'EACCES', '/identity/secret');
    await expectCode(writeAll(ns, '/identity/pubkey', 'x', admin), 'EACCES');
    await expectCode(ns.remove('/identity/sign', admin), 'EACCES');
  });

  it('Budgeted: every write charges first; over budget is EDQUOT and nothing changes', async () => {
    const { ns, tree } = setup();
    let left = 2;
    const charged: string[] = [];
    mountWithAccess(
      ns,
      '/paid',
      tree('paid'),
      Budgeted({
        charge(amount, path) {
          if (amount > left) throw new FsError('EDQUOT', path, 'budget exceeded');
          left -= amount;
          charged.push(path);
        },
      }),
    );
    await writeAll(ns, '/paid/a', '1', admin);
    await ns.mkdir('/paid/d', 0o755, admin);
    await expectCode(writeAll(ns, '/paid/b', '2', admin), 'EDQUOT', '/paid/b');
    await expectCode(ns.stat('/paid/b', admin), 'ENOENT');
    expect(text(await readAll(ns, '/paid/a', admin))).toBe('1'); // reads are free
    expect(charged).toEqual(['/a', '/d']);
  });

  it('admin-only paths: admins may write, others get EACCES whatever the level', async () => {
    const { ns } = setup();
    let policy = { max: 1 };
    const svc = new SyntheticFs(
      dir({ policy: jsonView(() => policy, { write: (d) => void (policy = JSON.parse(text(d))) }) }),
      'compute',
    );
    mountWithAccess(ns, '/compute', svc, ReadWrite, { adminWrite: ['/policy'] });
    await writeAll(ns, '/compute/policy', '{"max":5}', admin);
    expect(policy).toEqual({ max: 5 });
    await expectCode(writeAll(ns, '/compute/policy', '{"max":9}', user), 'EACCES', '/compute/policy');
    expect(policy).toEqual({ max: 5 });
    expect((await ns.stat('/compute/policy', user)).mode & 0o222).toBe(0);
    expect((await ns.stat('/compute/policy', admin)).mode & 0o200).toBe(0o200);
  });
});
