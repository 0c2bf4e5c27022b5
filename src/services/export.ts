/**
 * /export: the agent as one bundle (CONTRACT section 8), a view whose snapshot is spooled to a
 * temporary file at open (runtime/export-spool.ts) and read from there: its size is known only once
 * opened (stat says 0; fstat and HTTP Content-Length give it).
 */
import { FsError } from '../fs/errors.js';
import type { Cx, DirEntry, FileService, Handle, OpenFlags, Stat } from '../fs/types.js';
import { MODE } from '../fs/types.js';
import { segmentsOf } from '../fs/paths.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';

export class ExportFile implements FileService {
  readonly serviceName = 'export';

  constructor(
    private readonly rt: AgentRuntime,
    private readonly id: string,
  ) {}

  private statNow(path: string): Stat {
    const row = this.rt.store.getAgent(this.id);
    if (!row) throw new FsError('ENOENT', path, `no agent '${this.id}'`);
    return { type: 'file', kind: 'view', size: 0, mode: MODE.view, mtime: row.updated_at, ctime: row.updated_at, version: 0 };
  }

  private root(path: string): void {
    if (segmentsOf(path).length > 0) throw new FsError('ENOTDIR', path, 'not a directory');
  }

  async stat(path: string, _cx: Cx): Promise<Stat> {
    this.root(path);
    return this.statNow(path);
  }

  async readdir(path: string, _cx: Cx): Promise<DirEntry[]> {
    this.root(path);
    throw new FsError('ENOTDIR', path, 'not a directory');
  }

  async open(path: string, flags: OpenFlags, _cx: Cx): Promise<Handle> {
    this.root(path);
    if (flags.write) throw new FsError('EACCES', path, 'read-only file');
    const base = this.statNow(path);
    return this.rt.exports.open(this.id, path, () => base);
  }
}
