/**
 * Where an archive is, and how it is laid out inside. KubeDB's location,
 * `{bucket}/{prefix}/kubedb/{namespace}/{name}/archive`, holds:
 *
 *   archive.json        the owning cluster: system identifier, WAL segment size
 *   wal/<name>          one object per WAL file (the archiver's envelope, envelope.ts)
 *   basebackups/<name>/ one base backup (backup/layout.ts in the archiver):
 *     parts/NNNN.tar      the data directory's files as tar streams in the archiver's envelope
 *     backup_label        what pg_backup_stop returned (and tablespace_map when there is one)
 *     manifest.json       written last: a backup is complete, and listed, only when it exists
 */

export const ARCHIVE_LAYOUT = {
  /** The identity of the cluster that owns the archive. */
  identity: 'archive.json',
  /** WAL files, one object each under their PostgreSQL name. */
  wal: 'wal/',
  /** Base backups. */
  basebackups: 'basebackups/',
} as const;

/** The objects of one base backup, relative to `basebackups/<name>/`. */
export const BACKUP_LAYOUT = {
  /** Written last: a backup without one is unfinished and never listed. */
  manifest: 'manifest.json',
  backupLabel: 'backup_label',
  tablespaceMap: 'tablespace_map',
  /** Parts, `parts/0001.tar` ...: envelope-framed (compressed) tar streams. */
  parts: 'parts/',
} as const;

/** The key prefix of base backup `name`: `basebackups/<name>/`. */
export function backupPrefix(name: string): string {
  return `${ARCHIVE_LAYOUT.basebackups}${name}/`;
}

/** The key of WAL file `name`. */
export function walKey(name: string): string {
  return `${ARCHIVE_LAYOUT.wal}${name}`;
}

/**
 * The archive location of one database, KubeDB's layout:
 * `{bucket}/{prefix}/kubedb/{namespace}/{name}/archive`. Returns the path inside the bucket.
 */
export function archivePath(prefix: string | undefined, namespace: string, name: string): string {
  const parts = [prefix, 'kubedb', namespace, name, 'archive'].filter((p): p is string => !!p);
  return parts.map((p) => p.replace(/^\/+|\/+$/g, '')).filter((p) => p.length > 0).join('/');
}

/** The URL schemes of ARCHIVER_REPOSITORY for each backend. */
export const REPOSITORY_SCHEMES = { s3: 's3', gcs: 'gs', local: 'file' } as const;

/** `s3://bucket/path` / `gs://bucket/path`: the value of ARCHIVER_REPOSITORY. */
export function repositoryUrl(backend: 's3' | 'gcs', bucket: string, path: string): string {
  return `${REPOSITORY_SCHEMES[backend]}://${bucket}/${path}`;
}
