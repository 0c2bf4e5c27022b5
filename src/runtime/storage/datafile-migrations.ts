/** The tables of data files (datafiles.ts): nodes by tree and path, content in chunks by node. */
import type { Migration } from './db.js';

export const dataFileMigrations: Migration[] = [
  {
    version: 3,
    name: 'data files',
    up: `
      CREATE TABLE data_nodes (
        id INTEGER PRIMARY KEY,
        tree TEXT NOT NULL, path TEXT NOT NULL,
        type TEXT NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
        size INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, atime INTEGER NOT NULL,
        version INTEGER NOT NULL,
        head BLOB,
        UNIQUE (tree, path));
      CREATE TABLE data_chunks (node INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (node, idx));`,
  },
  {
    // Times set by utimensat(2) (tar, cp -a, rsync -a) are kept to the nanosecond: the nanoseconds past
    // the millisecond of atime and mtime (0-999999); 0 for every time the server sets itself.
    version: 4,
    name: 'data file times to the nanosecond',
    up: `
      ALTER TABLE data_nodes ADD COLUMN atime_ns INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE data_nodes ADD COLUMN mtime_ns INTEGER NOT NULL DEFAULT 0;`,
  },
  {
    // Node kinds of a local disk. `type` may now also be 'symlink' (the target is the content), 'fifo',
    // 'socket', and 'name': one more name of a hard-linked node, whose row (`inode`) holds the file.
    // `nlink` counts a node's names (a directory: 2 + its subdirectories, counted here for the
    // directories there are; a path's parent is the path up to its last '/', which rtrim finds by
    // stripping every character but '/' from the end).
    version: 70,
    name: 'data file links, special nodes and link counts',
    up: `
      ALTER TABLE data_nodes ADD COLUMN nlink INTEGER NOT NULL DEFAULT 1;
      ALTER TABLE data_nodes ADD COLUMN inode INTEGER;
      CREATE INDEX data_nodes_inode ON data_nodes (inode) WHERE inode IS NOT NULL;
      CREATE TEMP TABLE subdirs AS
        SELECT tree, rtrim(path, replace(path, '/', '')) AS parent, count(*) AS n
        FROM data_nodes WHERE type = 'dir' AND path <> '/' GROUP BY 1, 2;
      CREATE INDEX temp.subdirs_parent ON subdirs (tree, parent);
      UPDATE data_nodes SET nlink = 2 + coalesce((SELECT n FROM subdirs s WHERE s.tree = data_nodes.tree
        AND s.parent = (CASE WHEN data_nodes.path = '/' THEN '/' ELSE data_nodes.path || '/' END)), 0)
        WHERE type = 'dir';
      DROP TABLE temp.subdirs;`,
  },
];
