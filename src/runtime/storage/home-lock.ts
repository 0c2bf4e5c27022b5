/**
 * One server per data directory, by a lock the kernel releases when its holder dies: an exclusive
 * SQLite lock (a POSIX record lock underneath) held on `$AGENT9_HOME/server.lock` for the server's
 * life. A server killed with SIGKILL loses it the moment its descriptors close, even while its process
 * is still a zombie, so a supervisor's immediate restart always works; a live second server is refused.
 * (A pid in server.json cannot do this: a zombie's pid is still alive, and a reused pid looks alive
 * forever.)
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { FsError } from '../../fs/errors.js';

export const LOCK_FILE = 'server.lock';

export class HomeLock {
  private constructor(private db: Database.Database | undefined) {}

  /** Takes the data directory's lock, or fails with EBUSY (`who` says who holds it, when known). */
  static acquire(home: string, who: () => string | undefined = () => undefined): HomeLock {
    let db: Database.Database | undefined;
    try {
      // No waiting: a held lock means a live server.
      db = new Database(join(home, LOCK_FILE), { timeout: 0 });
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      return new HomeLock(db);
    } catch (err) {
      db?.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') {
        const holder = who();
        throw new FsError('EBUSY', '/', `another agent9 server is serving ${home}${holder ? ` (${holder})` : ''}`);
      }
      throw new FsError('EIO', '/', `cannot lock ${join(home, LOCK_FILE)}: ${(err as Error).message}`);
    }
  }

  release(): void {
    this.db?.close();
    this.db = undefined;
  }
}
