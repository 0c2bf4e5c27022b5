/**
 * No Docker engine reachable (the provider points at a socket that does not exist): the provider says
 * `unavailable` with the reason, a submit fails clearly and reserves nothing, everything else works.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readAll, writeAll } from '../../src/fs/ops.js';
import { DockerProvider } from '../../src/services/containers/providers/docker.js';
import { admin, cleanup, expectCode, text } from '../helpers.js';
import { AGENT, makeRig } from './setup.js';

const SOCKET = '/nonexistent/agent9-test/docker.sock';
const rig = makeRig({ providers: [new DockerProvider({ socketPath: SOCKET })] });

afterAll(async () => {
  await rig.engine.close();
  cleanup();
});

describe('/containers without an engine', () => {
  it('reports the provider unavailable with the reason', async () => {
    const health = await rig.json('/containers/providers/docker/health');
    expect(health['status']).toBe('unavailable');
    expect(health['reason']).toContain(SOCKET);
    expect(await rig.json('/containers/providers/docker/info')).toMatchObject({ id: 'docker', endpoint: `unix://${SOCKET}` });
  });

  it('fails a submit with EREMOTEIO naming the reason, and reserves nothing', async () => {
    const err = await expectCode(rig.call('/containers/new', { commands: ['echo hi'] }), 'EREMOTEIO', '/containers/new');
    expect(err.message).toContain('provider docker is unavailable');
    expect(err.message).toContain(SOCKET);
    expect(rig.ledger.openReservations(AGENT)).toEqual([]);
    expect(rig.engine.sessions.ids(AGENT)).toEqual([]);
  });

  it('keeps the rest working: policy, usage, listings', async () => {
    expect((await rig.engine.start()).orphansRemoved).toBe(0);
    await writeAll(rig.ns, '/containers/policy', '{"max_concurrent": 2}', admin);
    expect((await rig.json('/containers/policy'))['max_concurrent']).toBe(2);
    expect(await rig.json('/containers/usage')).toMatchObject({ unit: 'micro-USD', sessions: {} });
    expect((await rig.ns.readdir('/containers/sessions', admin)).length).toBe(0);
    expect(text(await readAll(rig.ns, '/mounts', admin))).toContain('/containers containers rw');
  });
});
