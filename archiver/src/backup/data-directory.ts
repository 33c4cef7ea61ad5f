/**
 * What of a data directory a base backup copies: every file and directory, except what
 * PostgreSQL's own base backup leaves out (src/backend/backup/basebackup.c: excludeDirContents,
 * excludeFiles) because the server recreates it or a restore must not see it. Pure rules plus one
 * walk; the walk runs between pg_backup_start and pg_backup_stop, so files may vanish under it.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { BackupError } from '../errors';

/** Directories kept, but empty: their contents are runtime state or WAL (restored from the archive). */
export const EXCLUDED_DIRECTORY_CONTENTS: readonly string[] = [
  'pg_wal',
  'pg_stat_tmp',
  'pg_replslot',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_subtrans',
];

/** Files left out wherever they are (by name) or at the top (by path). */
const EXCLUDED_NAMES = new Set(['pg_internal.init']);
const EXCLUDED_TOP_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'postgresql.auto.conf.tmp',
  'current_logfiles.tmp',
  // The running server's own files of a backup: this backup writes its own label.
  'backup_label',
  'backup_label.old',
  'tablespace_map',
  'tablespace_map.old',
  // How the restored server starts is the restore's choice (backup-fetch --recovery).
  'recovery.signal',
  'standby.signal',
]);

/** pg_control is copied last, after every other file (as pg_basebackup sends it). */
export const PG_CONTROL = 'global/pg_control';

export interface DataEntry {
  /** Relative to the data directory, '/'-separated. */
  readonly path: string;
  readonly type: 'file' | 'directory';
  readonly mode: number;
  /** At the walk; a file may change size before it is read. */
  readonly size: number;
  readonly mtime: number;
}

/** Whether the walk leaves `relative` out (a path inside the data directory). */
export function isExcluded(relative: string, isDirectory: boolean): boolean {
  const parts = relative.split('/');
  const name = parts[parts.length - 1];
  if (parts.length >= 2 && EXCLUDED_DIRECTORY_CONTENTS.includes(parts[0])) {
    // pg_wal/archive_status stays as an (empty) directory: PostgreSQL expects it.
    return !(relative === 'pg_wal/archive_status' && isDirectory);
  }
  if (name.startsWith('pgsql_tmp')) return true;
  if (!isDirectory && EXCLUDED_NAMES.has(name)) return true;
  if (!isDirectory && parts.length === 1 && EXCLUDED_TOP_FILES.has(name)) return true;
  return false;
}

/**
 * Every entry to copy, directories before what they hold, sorted by path. Tablespaces (entries of
 * pg_tblspc) are refused: their data lives outside the data directory.
 */
export async function walkDataDirectory(dataDirectory: string): Promise<DataEntry[]> {
  const tablespaces = await fs.readdir(path.join(dataDirectory, 'pg_tblspc')).catch(() => [] as string[]);
  if (tablespaces.length > 0) {
    throw new BackupError(
      `the data directory ${dataDirectory} has tablespaces (pg_tblspc/${tablespaces.join(', pg_tblspc/')}): backup-push copies the data directory only and does not back up tablespaces; move their objects to pg_default (ALTER TABLE ... SET TABLESPACE pg_default) and drop the tablespaces`,
    );
  }
  const entries: DataEntry[] = [];
  const visit = async (relative: string): Promise<void> => {
    const absolute = relative === '' ? dataDirectory : path.join(dataDirectory, relative);
    let names: string[];
    try {
      names = await fs.readdir(absolute);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // dropped while we walked
      throw error;
    }
    for (const name of names.sort()) {
      const child = relative === '' ? name : `${relative}/${name}`;
      let stat: import('node:fs').Stats;
      try {
        stat = await fs.lstat(path.join(dataDirectory, child));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      if (stat.isSymbolicLink()) {
        // pg_wal as a symbolic link (initdb --waldir): restored as a directory, its contents come from the archive.
        if (child === 'pg_wal') {
          entries.push({ path: child, type: 'directory', mode: 0o700, size: 0, mtime: Math.floor(stat.mtimeMs / 1000) });
          entries.push({ path: 'pg_wal/archive_status', type: 'directory', mode: 0o700, size: 0, mtime: Math.floor(stat.mtimeMs / 1000) });
          continue;
        }
        throw new BackupError(`${path.join(dataDirectory, child)} is a symbolic link: backup-push copies regular files and directories only`);
      }
      const isDirectory = stat.isDirectory();
      if (isExcluded(child, isDirectory)) continue;
      if (isDirectory) {
        entries.push({ path: child, type: 'directory', mode: stat.mode & 0o7777, size: 0, mtime: Math.floor(stat.mtimeMs / 1000) });
        await visit(child);
      } else if (stat.isFile()) {
        entries.push({ path: child, type: 'file', mode: stat.mode & 0o7777, size: stat.size, mtime: Math.floor(stat.mtimeMs / 1000) });
      }
      // Sockets, FIFOs and devices have no place in a data directory: skipped, as pg_basebackup does.
    }
  };
  await visit('');
  return entries;
}
