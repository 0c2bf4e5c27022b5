/**
 * run_in_container on the real engine: an MCP client (the SDK's, over streamable HTTP) runs a command in
 * a fresh container of the demo agent and gets its exit code, stdout and stderr apart; a refused request
 * is an error result with its code, nothing started.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { cleanup, openStorage, tempDir } from '../helpers.js';
import { ensureBuilt, startServe, type ServeProcess } from '../cli/helpers.js';
import { removeLabelled, requireEngine } from '../containers/engine.js';
import { call, connectHttp, fails, type Connected } from './helpers.js';

let provider: DockerProvider;
let serve: ServeProcess;
let home: string | undefined;
let s: Connected;

beforeAll(async () => {
  provider = await requireEngine();
  await ensureBuilt();
  home = tempDir();
  serve = await startServe(home, ['--demo']);
  s = await connectHttp(serve.url, serve.token);
}, 240_000);

afterAll(async () => {
  await s?.close();
  await serve?.stop('SIGTERM');
  if (home) {
    const storage = openStorage(home);
    const instance = storage.metaGet('containers.instance');
    if (instance) await removeLabelled(provider, { 'agent9.instance': instance });
  }
  cleanup();
});

describe('run_in_container', () => {
  it("runs a shell line in the agent's container and answers its exit code, stdout and stderr", async () => {
    const r = await call(s.client, 'run_in_container', { agent: 'demo', command: 'echo out; echo err >&2; exit 3' });
    expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
    expect(r.structuredContent).toMatchObject({ status: 'complete', exit_code: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(r.content[0]).toMatchObject({ type: 'text', text: expect.stringContaining('exit code 3') });
    const argv = await call(s.client, 'run_in_container', { agent: 'demo', command: ['sh', '-c', 'echo $((6*7))'] });
    expect(argv.structuredContent).toMatchObject({ exit_code: 0, stdout: '42\n' });
  }, 120_000);

  it('a request the service refuses is an error result naming the field, and starts nothing', async () => {
    const count = async () => ((await call(s.client, 'list', { path: '/agents/demo/containers/sessions' })).structuredContent as { entries: unknown[] }).entries.length;
    const before = await count();
    expect(await fails(s.client, 'run_in_container', { agent: 'demo', command: 'true', image: '../x' }, 'EINVAL')).toContain("field 'image'");
    expect(await count()).toBe(before);
  }, 60_000);
});
