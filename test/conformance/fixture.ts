/**
 * The namespace every transport's conformance run serves: one of each file kind, data trees behind
 * each access level. Transports (in-process, HTTP, FUSE, CLI) must all give it the same meaning.
 */
import { Namespace } from '../../src/fs/namespace.js';
import { SyntheticFs, dir, message, call, jsonView, stream, parseJson } from '../../src/fs/synthetic.js';
import { FsError } from '../../src/fs/errors.js';
import { utf8 } from '../../src/fs/bytes.js';
import { mountWithAccess, ReadOnly, ReadWrite, Disabled, Budgeted } from '../../src/mounts/access.js';
import type { Storage } from '../../src/runtime/storage/index.js';

export const FIXTURE_SCOPE = 'fixture';

export function buildFixture(storage: Storage): Namespace {
  const ns = new Namespace({ scope: FIXTURE_SCOPE, events: storage.events, name: 'fixture' });
  const tree = (name: string, prefix: string) => storage.dataTree(`fixture:${name}`, { scope: FIXTURE_SCOPE, prefix });
  mountWithAccess(ns, '/data', tree('data', '/data'), ReadWrite);
  mountWithAccess(ns, '/ro', tree('ro', '/ro'), ReadOnly);
  mountWithAccess(ns, '/off', tree('off', '/off'), Disabled);
  let budget = 3;
  mountWithAccess(
    ns,
    '/paid',
    tree('paid', '/paid'),
    Budgeted({
      charge(amount, path) {
        if (amount > budget) throw new FsError('EDQUOT', path, `budget exhausted (${budget} left, ${amount} needed)`);
        budget -= amount;
      },
    }),
  );

  const chan = storage.events.channel(FIXTURE_SCOPE, '/svc');
  const box: string[] = [];
  let policy: unknown = { limit: 1 };
  const svc = new SyntheticFs(
    dir({
      box: message(
        (data) => {
          box.push(utf8(data));
          chan.emit('/box', 'modified', { version: box.length });
        },
        { read: () => JSON.stringify(box) + '\n', maxBytes: 1024, version: () => box.length },
      ),
      echo: call((req) => {
        const text = utf8(req);
        if (text.startsWith('{')) parseJson(text, '/echo');
        return 'echo:' + text;
      }),
      count: jsonView(() => ({ messages: box.length })),
      feed: stream((_cx, signal) => chan.subscribe('/feed', undefined, signal, { endsWithStream: true })),
      'feed-ctl': message((data) => {
        for (const line of utf8(data).split('\n').filter(Boolean)) {
          if (line === 'end') chan.emit('/feed', 'end');
          else chan.emit('/feed', 'data', { data: line });
        }
      }),
      policy: jsonView(() => policy, {
        write: (data) => {
          policy = parseJson(data, '/policy');
        },
      }),
    }),
    'fixture-svc',
  );
  mountWithAccess(ns, '/svc', svc, ReadWrite, { adminWrite: ['/policy'] });
  return ns;
}
