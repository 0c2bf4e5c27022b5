/**
 * The two kinds of server mount a data tree is used through, for the POSIX tests: the global view
 * (`serve --mount DIR`: the memory is at DIR/agents/<id>/memory) and one agent's own view (`--mount DIR
 * --agent ID`: DIR/memory), both `allow_other` so that `nobody` reaches them too. Everything on a
 * mount runs in child processes (helpers.ts).
 */
import { rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent9 } from '../../src/server/agent9.js';
import { mountServer, type FuseMount } from '../../src/fuse/index.js';
import { tempDir } from '../helpers.js';
import { mountPoint, ok, q } from './helpers.js';

export const AGENT = 'posix';
/** The agent's data quota and the server's file size cap (config.json memory.max_file_bytes). */
export const QUOTA_BYTES = 256 * 1024 * 1024;
export const MAX_FILE_BYTES = 4 * 1024 * 1024;

export interface MountKind {
  name: string;
  /** The memory directory on this mount. */
  memory: string;
  mount: FuseMount;
}

export interface ServerMounts {
  a9: Agent9;
  kinds: MountKind[];
  close(): Promise<void>;
}

/** Runs a script as root, or as nobody (uid and gid 65534, no other groups). */
export function as(user: 'root' | 'nobody', script: string): string {
  return user === 'root' ? script : `setpriv --reuid=65534 --regid=65534 --clear-groups bash -c ${q(script)}`;
}

/** A server with one agent, its memory mounted both ways, each with a `pub` directory anyone may write (1777). */
export async function serverMounts(): Promise<ServerMounts> {
  const home = tempDir('agent9-posix-');
  await writeFile(join(home, 'config.json'), JSON.stringify({ memory: { max_file_bytes: MAX_FILE_BYTES } }));
  const a9 = await Agent9.open({ home, scheduler: false });
  a9.runtime.agents.create({ name: AGENT, program: 'echo', limits: { memory_bytes: QUOTA_BYTES } }, '/agents/new');
  const global = await mountServer(a9, await mountPoint(), { allowOther: true });
  const own = await mountServer(a9, await mountPoint(), { allowOther: true, agent: AGENT });
  const kinds: MountKind[] = [
    { name: 'the server mount (global view)', memory: join(global.dir, 'agents', AGENT, 'memory'), mount: global },
    { name: 'an --agent mount', memory: join(own.dir, 'memory'), mount: own },
  ];
  await ok(`mkdir ${q(kinds[0]!.memory)}/pub && chmod 1777 ${q(kinds[0]!.memory)}/pub`);
  return {
    a9,
    kinds,
    async close() {
      for (const k of kinds) {
        await k.mount.unmount();
        await rmdir(k.mount.dir).catch(() => undefined);
      }
      await a9.close();
    },
  };
}
