/** A call handle answers every reader, also readers that arrive while the call is still running. */
import { describe, expect, it } from 'vitest';
import { SyntheticFs, dir, call } from '../../src/fs/synthetic.js';
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
    const fs = new SyntheticFs(
      dir({
        bad: call(async () => {
          await new Promise((r) => setTimeout(r, 20));
          throw new Error('provider down');
        }),
      }),
    );
    const h = await fs.open('/bad', { read: true, write: true }, admin);
    await h.write(bytes('q'), 0);
    const results = await Promise.allSettled([h.read(10, 0), h.read(10, 0)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await h.close();
  });
});
