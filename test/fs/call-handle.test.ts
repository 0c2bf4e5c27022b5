/** A call handle answers every reader, also readers that arrive while the call is still running. */
import { describe, expect, it } from 'vitest';
import { SyntheticFs, dir, call, message } from '../../src/fs/synthetic.js';
import { FsError } from '../../src/fs/errors.js';
import { admin, bytes, text } from '../helpers.js';

describe('call handles', () => {
  it('concurrent reads during a slow call all get the answer, and the call runs once', async () => {
    let calls = 0;
    const fs = new SyntheticFs(
      dir({
        slow: call(async (req) => {
          calls++;
          await new Promise((r) => setTimeout(r, 50));
          return 'answer:' + text(req);
        }),
      }),
    );
    const h = await fs.open('/slow', { read: true, write: true }, admin);
    await h.write(bytes('q'), 0);
    const [a, b, c] = await Promise.all([h.read(100, 0), h.read(100, 0), h.read(3, 6)]);
    expect([text(a), text(b), text(c)]).toEqual(['answer:q', 'answer:q', ':q']);
    expect(calls).toBe(1);
    await h.close();
  });

  it('a failed call gives the same error to every concurrent reader', async () => {
    let calls = 0;
    const fs = new SyntheticFs(
      dir({
        bad: call(async () => {
          calls++;
          await new Promise((r) => setTimeout(r, 20));
          // A fresh message per run: readers that saw different runs would see different errors.
          throw new Error(`provider down (run ${calls})`);
        }),
      }),
    );
    const h = await fs.open('/bad', { read: true, write: true }, admin);
    await h.write(bytes('q'), 0);
    const results = await Promise.allSettled([h.read(10, 0), h.read(10, 0), h.read(10, 0)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    const errors = results.map((r) => (r as PromiseRejectedResult).reason as Error);
    expect(calls).toBe(1);
    expect(new Set(errors.map((e) => e.message)).size).toBe(1);
    expect(errors[0]!.message).toContain('provider down (run 1)');
    // A later read of the same handle gives the same error again, without calling again.
    await expect(h.read(10, 0)).rejects.toThrow('provider down (run 1)');
    expect(calls).toBe(1);
    await h.close();
  });
});

describe('message admission', () => {
  it('admit refuses an open for writing early; reads and whole writes are not affected', async () => {
    let full = false;
    const sent: string[] = [];
    const fs = new SyntheticFs(
      dir({
        box: message((data) => void sent.push(text(data)), {
          read: () => JSON.stringify(sent),
          admit: () => {
            if (full) throw new FsError('EAGAIN', '/box', 'queue full');
          },
        }),
      }),
    );
    const h = await fs.open('/box', { write: true }, admin);
    await h.write(bytes('one'), 0);
    await h.close();
    full = true;
    await expect(fs.open('/box', { write: true }, admin)).rejects.toMatchObject({ code: 'EAGAIN' });
    const r = await fs.open('/box', { read: true }, admin);
    expect(text(await r.read(100, 0))).toBe('["one"]');
    await r.close();
    expect(sent).toEqual(['one']);
  });
});
