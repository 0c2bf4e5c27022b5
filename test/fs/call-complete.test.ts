/** Call files that send the request from the write that completes it (CallNode.complete). */
import { describe, expect, it } from 'vitest';
import { SyntheticFs, call, completeJsonObject, dir } from '../../src/fs/synthetic.js';
import { FsError } from '../../src/fs/errors.js';
import { utf8 } from '../../src/fs/bytes.js';
import { bytes, expectCode, text, user } from '../helpers.js';

function service() {
  const seen: string[] = [];
  const fs = new SyntheticFs(
    dir({
      new: call(
        (req) => {
          const body = utf8(req);
          seen.push(body);
          if (body.includes('"refuse"')) throw new FsError('EDQUOT', '/new', 'budget exceeded');
          return `ok ${seen.length}\n`;
        },
        { complete: completeJsonObject },
      ),
    }),
  );
  return { fs, seen };
}

describe('CallNode.complete', () => {
  it('completeJsonObject: only a whole JSON object', () => {
    for (const yes of ['{}', '{"a":1}\n', ' {"a":{"b":[1,2]}} \r\n']) expect(completeJsonObject(bytes(yes)), yes).toBe(true);
    for (const no of ['', '{', '{"a":1', '{"a":"}"', '[1]', '"x"', '{"a":1}}', '{"a":1} x']) expect(completeJsonObject(bytes(no)), no).toBe(false);
  });

  it('the write that completes the request sends it; its failure fails that write; trailing whitespace is part of it', async () => {
    const { fs, seen } = service();
    const h = await fs.open('/new', { read: true, write: true }, user);
    await h.write(bytes('{"model":'), 0);
    expect(seen).toEqual([]);
    await h.write(bytes('"x"}'), 9);
    expect(seen).toEqual(['{"model":"x"}']);
    await h.write(bytes('\n'), 13);
    await expectCode(h.write(bytes('more'), 14), 'EBUSY');
    expect(text(await h.read(100, 0))).toBe('ok 1\n');
    await h.close();
    expect(seen).toHaveLength(1);

    const r = await fs.open('/new', { write: true }, user);
    await expectCode(r.write(bytes('{"refuse":true}\n'), 0), 'EDQUOT', 'budget exceeded');
    await r.close(); // the write reported it; close does not send it again
    expect(seen).toHaveLength(2);
  });

  it('a request that never becomes a whole object is still sent at close (and fails there as before)', async () => {
    const { fs, seen } = service();
    const h = await fs.open('/new', { write: true }, user);
    await h.write(bytes('not json'), 0);
    await h.close();
    expect(seen).toEqual(['not json']);
  });
});
