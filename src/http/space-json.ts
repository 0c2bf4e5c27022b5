/**
 * The HTTP form of statfs: `GET /p?statfs=1` answers the space of the tree holding `/p` as JSON,
 * `{total_bytes, used_bytes, free_bytes, files?}` (an agent's memory: its quota and use), so that a
 * mount over HTTP (`agentctl mount`) reports what a local mount does.
 */
import { FsError } from '../fs/errors.js';
import type { FsSpace } from '../fs/types.js';

export interface SpaceJson {
  total_bytes: number;
  used_bytes: number;
  free_bytes: number;
  files?: number;
}

export function spaceJson(space: FsSpace): SpaceJson {
  const out: SpaceJson = { total_bytes: space.totalBytes, used_bytes: space.usedBytes, free_bytes: space.freeBytes };
  if (space.files !== undefined) out.files = space.files;
  return out;
}

export function spaceFromJson(json: unknown, path: string): FsSpace {
  const j = json as Partial<SpaceJson> | null;
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (!j || !num(j.total_bytes) || !num(j.used_bytes) || !num(j.free_bytes)) {
    throw new FsError('EIO', path, 'the server sent a malformed statfs answer');
  }
  const space: FsSpace = { totalBytes: j.total_bytes!, usedBytes: j.used_bytes!, freeBytes: j.free_bytes! };
  if (num(j.files)) space.files = j.files!;
  return space;
}
