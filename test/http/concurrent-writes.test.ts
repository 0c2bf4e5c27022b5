/**
 * Concurrent whole-file writes over HTTP (PUTs of many clients at once) go through the data files'
 * group commit, yet each is answered with its own outcome, once it is committed; a failing one changes
 * nothing and fails alone.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers.js';
import { serveAgent9, type Served } from './served.js';

afterAll(cleanup);

const status = async (s: Served) => (await s.ok<{ data_file_commits: { transactions: number; jobs: number } }>('/runtime/status')).data_file_commits;

describe('concurrent PUTs', () => {
  it('each gets its own answer: created, replaced, refused (ENOENT, ESTALE, EISDIR)', async () => {
    const s = await serveAgent9({ compute: false, containers: false });
    try {
      const token = await s.agentWithToken('w');
      const put = (path: string, body: string, headers: Record<string, string> = {}) => s.call(path, { method: 'PUT', body, token, headers });
      expect((await put('/memory/dir/', '')).status).toBe(201);
      expect((await put('/memory/old', 'old')).status).toBe(201);
      const before = await status(s);
      const n = 60;
      const answers = await Promise.all([
        ...Array.from({ length: n }, (_, i) => put(`/memory/f${i}`, `content ${i}`)),
        put('/memory/old', 'new'),
        put('/memory/missing/f', 'x'),
        put('/memory/old', 'stale', { 'if-match': '"999"' }),
        put('/memory/dir', 'x'),
      ]);
      const codes = answers.map((r) => r.status);
      // A new file is 201, a replaced one 204.
      expect(codes.slice(0, n).every((c) => c === 201)).toBe(true);
      expect(codes[n]).toBe(204);
      expect(codes.slice(n + 1, n + 3)).toEqual([404, 412]);
      expect(((await answers[n + 1]!.json()) as { error: unknown }).error).toMatchObject({ code: 'ENOENT', path: '/memory/missing/f' });
      expect(((await answers[n + 2]!.json()) as { error: unknown }).error).toMatchObject({ code: 'ESTALE', path: '/memory/old' });
      expect(((await answers[n + 3]!.json()) as { error: unknown }).error).toMatchObject({ code: 'EISDIR', path: '/memory/dir' });
      // Every successful write is there once its answer came; the refused ones left nothing.
      for (let i = 0; i < n; i += 7) expect(await (await s.call(`/memory/f${i}`, { token })).text()).toBe(`content ${i}`);
      expect(await (await s.call('/memory/old', { token })).text()).toBe('new');
      expect((await s.call('/memory/missing/f', { token })).status).toBe(404);
      // They went through the group commit (how many shared one depends on how the requests arrived:
      // test/fs/datafs.test.ts checks the sharing itself).
      const after = await status(s);
      expect(after.jobs - before.jobs).toBeGreaterThanOrEqual(n + 1);
    } finally {
      await s.close();
    }
  });
});
