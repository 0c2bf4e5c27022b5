/**
 * The real Docker engine the container tests run against (started by scripts/setup.d/docker.sh). Nothing
 * is skipped: when the engine is not reachable, every engine test fails with this message.
 */
import { randomBytes } from 'node:crypto';
import { DockerProvider } from '../../src/services/containers/providers/docker.js';

export const BUSYBOX = 'agent9/busybox:latest';
export const PYTHON = 'agent9/python:latest';

/** A provider for the engine, or an error saying how to start one. */
export async function requireEngine(): Promise<DockerProvider> {
  const provider = new DockerProvider();
  const health = await provider.health({ fresh: true });
  if (health.status !== 'available') {
    throw new Error(`no Docker engine for the container tests (${health.reason}); run: bash scripts/setup.d/docker.sh`);
  }
  if (!(await provider.hasImage(BUSYBOX))) {
    throw new Error(`image ${BUSYBOX} is missing from the engine; run: bash scripts/setup.d/docker.sh`);
  }
  return provider;
}

/** A label value unique to one test file run, to find (and remove) every container it made. */
export function testLabel(): Record<string, string> {
  return { 'agent9.test': randomBytes(6).toString('hex') };
}

/** Removes every container carrying these labels. */
export async function removeLabelled(provider: DockerProvider, labels: Record<string, string>): Promise<number> {
  const list = await provider.list(labels);
  await Promise.all(list.map((c) => provider.remove(c.containerId)));
  return list.length;
}
