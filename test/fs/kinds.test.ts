import { afterAll, describe, expect, it } from 'vitest';
import { SyntheticFs, dir, view, message, call, stream } from '../../src/fs/synthetic.js';
import { utf8 } from '../../src/fs/bytes.js';
import { FsError } from '../../src/fs/errors.js';
import { admin, bytes, cleanup, expectCode, openStorage, text } from '../helpers.js';

afterAll(cleanup);

describe('file kinds', () => {
  it('a message file commits exactly once, on close, with everything written on the handle', async () => {
    const sent: string[] = [];
    const fs = new SyntheticFs(dir({ inbox: message((d) => void sent.push(utf8(d))) }));
    const h = await fs.open('/inbox', { write: true, truncate: true }, admin);
    await h.write(bytes('hel'), 0);
    await h.write(bytes('lo'), 3);
    expect(sent).toEqual([]);
    await h.close();
    expect(sent).toEqual(['hello']);
    await h.close();
    expect(sent).toEqual(['hello']);
    // An open without a write sends nothing.
    await (await fs.open('/inbox', { write: true }, admin)).close();
    expect(sent).toEqual(['hello']);
    // Flush (close of a duplicated descriptor) commits what was written so far, close does not resend it.
    const h2 = await fs.open('/inbox', { write: true, append: true }, admin);
    await h2.write(bytes('a'), 0);
    await h2.flush();
    await h2.close();
    expect(sent).toEqual(['hello', 'a']);
  });

  it('a message over its cap fails with EFBIG and sends nothing; a failed commit reports its error', async () => {
    const sent: string[] = [];
    const fs = new SyntheticFs(
      dir({
        small: message((d) => void sent.push(utf8(d)), { maxBytes: 4 }),
        full: message(() => {
          throw new FsError('EAGAIN', '/full', 'queue full');
        }),
      }),
    );
    const h = await fs.open('/small', { write: true }, admin);
    await h.write(bytes('abc'), 0);
    await expectCode(h.write(bytes('de'), 3), 'EFBIG', '/small');
    await h.close();
    expect(sent).toEqual(['abc']);
    const f = await fs.open('/full', { write: true }, admin);
    await f.write(bytes('x'), 0);
    await expectCode(f.close(), 'EAGAIN', '/full');
  });

  it('a call file answers on the same handle; the first read commits; errors repeat', async () => {
    let calls = 0;
    const fs = new SyntheticFs(
      dir({
        upper: call((req) => {
          calls++;
          const t = utf8(req);
          if (t === 'bad') throw new FsError('EINVAL', '/upper', 'bad request');
          return t.toUpperCase();
        }),
      }),
    );
    const h = await fs.open('/upper', { read: true, write: true }, admin);
    await h.write(bytes('ping'), 0);
    expect(text(await h.read(100, 0))).toBe('PING');
    expect(text(await h.read(100, 0))).toBe('PING');
    expect(text(await h.read(2, 2))).toBe('NG');
    await expectCode(h.write(bytes('again'), 4), 'EBUSY');
    await h.close();
    expect(calls).toBe(1);
    // Another handle is another call.
    const h2 = await fs.open('/upper', { read: true, write: true }, admin);
    await h2.write(bytes('bad'), 0);
    // The shell's `echo req >&3` closes a duplicate descriptor: the request is sent at that flush.
    await expectCode(h2.flush(), 'EINVAL', '/upper');
    await expectCode(h2.read(10, 0), 'EINVAL');
    await expectCode(h2.read(10, 0), 'EINVAL');
    await h2.close(); // the error was already delivered
    expect(calls).toBe(2);
  });

  it('a view is a snapshot per open handle', async () => {
    let n = 0;
    const fs = new SyntheticFs(dir({ counter: view(() => `${++n}\n`) }));
    const a = await fs.open('/counter', { read: true }, admin);
    const b = await fs.open('/counter', { read: true }, admin);
    expect(text(await a.read(10, 0))).toBe('1\n');
    expect(text(await b.read(10, 0))).toBe('2\n');
    expect(text(await a.read(10, 0))).toBe('1\n');
    await expectCode(fs.open('/counter', { write: true }, admin), 'EACCES', '/counter');
    expect((await fs.stat('/counter', admin)).size).toBe(2);
  });

  it('a stream delivers data as it arrives and ends with end; a closed reader is freed', async () => {
    const storage = openStorage();
    const chan = storage.events.channel('s', '/svc');
    const fs = new SyntheticFs(
      dir({ feed: stream((_cx, signal) => chan.subscribe('/feed', undefined, signal, { endsWithStream: true })) }),
    );
    const h = await fs.open('/feed', { read: true }, admin);
    chan.emit('/feed', 'data', { data: 'one' }); // after open, before the first read: not lost
    expect(text(await h.read(100, 0))).toBe('one\n');
    const pending = h.read(100, 0);
    setTimeout(() => chan.emit('/feed', 'data', { data: { n: 2 } }), 20);
    expect(text(await pending)).toBe('{"n":2}\n');
    chan.emit('/feed', 'end');
    expect((await h.read(100, 0)).length).toBe(0);
    await h.close();
    // A reader blocked in read is released by close (Ctrl-C on a blocked cat).
    const h2 = await fs.open('/feed', { read: true }, admin);
    const blocked = h2.read(100, 0);
    const before = storage.events.subscriberCount;
    await h2.close();
    expect((await blocked).length).toBe(0);
    expect(storage.events.subscriberCount).toBe(before - 1);
  });
});

describe('bytes handed in are copied', () => {
  it('a message written from a Buffer the writer reuses keeps what was written', async () => {
    const got: string[] = [];
    const fs = new SyntheticFs(dir({ box: message((d) => void got.push(new TextDecoder().decode(d))) }));
    const h = await fs.open('/box', { write: true }, admin);
    const reused = Buffer.from('first ');
    await h.write(reused, 0);
    reused.write('XXXXXX');
    await h.write(Buffer.from('second'), 6);
    await h.close();
    expect(got).toEqual(['first second']);
  });
});
