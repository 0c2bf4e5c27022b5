/** 20 shells reading and writing at once through one mount: nothing lost, nothing mixed up. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { mountFixture, ok, q, sh, until, type MountedFixture } from './helpers.js';

let m: MountedFixture;

beforeAll(async () => {
  m = await mountFixture();
});

afterAll(async () => {
  await m?.close();
  cleanup();
});

describe('20 shells at once', () => {
  it('each appends to its own file, sends messages, lists, reads views and the others’ files', async () => {
    const D = q(m.dir);
    const SHELLS = 20;
    const ROUNDS = 10;
    await ok(`mkdir ${D}/data/many`);
    const shells = Array.from({ length: SHELLS }, (_, i) =>
      sh(
        `set -e
         for r in $(seq 1 ${ROUNDS}); do
           echo "shell ${i} round $r" >> ${D}/data/many/s${i}.txt
           echo "from ${i} round $r" | cat > ${D}/svc/box
           ls ${D}/data/many > /dev/null
           cat ${D}/svc/count > /dev/null
           cat ${D}/data/many/s$(( (${i} + r) % ${SHELLS} )).txt > /dev/null 2>&1 || true
           exec 3<> ${D}/svc/echo; echo "q${i}.$r" >&3; answer=$(cat <&3); exec 3>&-
           [ "$answer" = "echo:q${i}.$r" ] || { echo "bad answer $answer" >&2; exit 1; }
         done`,
        { timeoutMs: 60_000 },
      ),
    );
    const results = await Promise.all(shells);
    for (const r of results) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    for (let i = 0; i < SHELLS; i++) {
      const want = Array.from({ length: ROUNDS }, (_, r) => `shell ${i} round ${r + 1}\n`).join('');
      expect(await ok(`cat ${D}/data/many/s${i}.txt`)).toBe(want);
    }
    const box = JSON.parse(await ok(`cat ${D}/svc/box`)) as string[];
    expect(box).toHaveLength(SHELLS * ROUNDS);
    for (let i = 0; i < SHELLS; i++) {
      // Each shell's messages arrive whole and in its own order.
      const mine = box.filter((line) => line.startsWith(`from ${i} `));
      expect(mine).toEqual(Array.from({ length: ROUNDS }, (_, r) => `from ${i} round ${r + 1}\n`));
    }
    await until(() => m.mount.adapter.openHandles === 0, 5000, 'all handles released');
  });
});
