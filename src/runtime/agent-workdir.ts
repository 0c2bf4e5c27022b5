/**
 * An agent's working directory on the host, `$AGENT9_HOME/work/<id>`: where an exec program runs.
 * The program writes it directly (not through the namespace), so the server only ever walks it:
 * to export it, to count it in the agent's data quota, and to remove it with the agent.
 *
 * The walk never follows a symbolic link (a program may plant `ln -s /etc x`): links, devices,
 * fifos and sockets are skipped, and only regular files and directories below the root are seen.
 */
import { lstat, mkdir, opendir, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface WorkDirEntry {
  /** Path below the work dir, '/'-separated, never empty, never with '..'. */
  rel: string;
  kind: 'file' | 'dir';
  /** File size in bytes (0 for a directory). */
  size: number;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  mtimeMs: number;
}

export function agentWorkDir(home: string, agentId: string): string {
  return join(home, 'work', agentId);
}

/** Creates the work dir (mode 0700) if missing and gives its path. */
export async function ensureWorkDir(home: string, agentId: string): Promise<string> {
  const dir = agentWorkDir(home, agentId);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Every regular file and directory below `root`, parents before children, depth first. A missing root
 * gives nothing; entries that vanish while walking (the program is still running) are skipped.
 */
export async function* walkWorkDir(root: string): AsyncGenerator<WorkDirEntry> {
  const rootStat = await lstat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) return;
  const pending: string[] = [''];
  while (pending.length > 0) {
    const relDir = pending.pop()!;
    const dir = await opendir(relDir ? join(root, relDir) : root).catch(() => undefined);
    if (!dir) continue;
    const children: string[] = [];
    for await (const d of dir) {
      if (!d.isFile() && !d.isDirectory()) continue; // links, devices, fifos, sockets
      const rel = relDir ? `${relDir}/${d.name}` : d.name;
      const st = await lstat(join(root, rel)).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) {
        yield { rel, kind: 'dir', size: 0, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs };
        children.push(rel);
      } else if (st.isFile()) {
        yield { rel, kind: 'file', size: st.size, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs };
      }
    }
    // Reverse so that the stack pops children in directory order.
    for (let i = children.length - 1; i >= 0; i--) pending.push(children[i]!);
  }
}

/** Bytes held by the regular files of an agent's work dir (0 when it has none). */
export async function workDirBytes(home: string, agentId: string): Promise<number> {
  let total = 0;
  for await (const e of walkWorkDir(agentWorkDir(home, agentId))) total += e.size;
  return total;
}

/** Removes the work dir and everything in it (links are removed, never followed). */
export async function removeWorkDir(home: string, agentId: string): Promise<void> {
  await rm(agentWorkDir(home, agentId), { recursive: true, force: true });
}
