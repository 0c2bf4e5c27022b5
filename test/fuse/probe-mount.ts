/**
 * Reports, as one JSON line, whether FUSE works in this process's environment and what mounting gives:
 *   node --import ./test/support/ts-loader.mjs test/fuse/probe-mount.ts MOUNTDIR
 * Used to test the messages for a machine without /dev/fuse, libfuse3 or the addon (in a private mount namespace).
 */
import { SyntheticFs, dir, view } from '../../src/fs/synthetic.js';
import { fuseUnavailableReason, mountNamespace, FuseUnavailableError } from '../../src/fuse/index.js';

const mountDir = process.argv[2]!;
const reason = (await fuseUnavailableReason()) ?? null;
let mountError: { name: string; message: string } | null = null;
try {
  const m = await mountNamespace(new SyntheticFs(dir({ hello: view(() => 'hi\n') })), mountDir);
  await m.unmount();
} catch (err) {
  mountError = { name: err instanceof FuseUnavailableError ? 'FuseUnavailableError' : (err as Error).name, message: (err as Error).message };
}
process.stdout.write(JSON.stringify({ reason, mountError }) + '\n');
