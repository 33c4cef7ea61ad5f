/**
 * The spool: a directory beside pg_wal (on the same filesystem) where the background archiver
 * leaves work already done, for the launcher (archiver/bin/archiver) to pick up without starting
 * Node. The archiver (archiver/src/spool.ts) writes it; the launcher and its bash helper read it
 * with shell builtins, so its names and line formats are part of the contract and reach the
 * scripts at build time.
 *
 *   .owner         the archive location the rest was made for (spoolOwner)
 *   .boot          the kernel's boot id when the prefetched files were written
 *   pushed/NAME    NAME is durably archived; one line, pushedMarker(owner, path)
 *   prefetch/NAME  NAME restored from the archive, checksum verified
 *   daemon.port    "PORT TOKEN PID": where the background archiver listens on loopback TCP for
 *                  requests (protocol.ts), the secret a request must present, and its pid (mode 0600)
 */

export const SPOOL_LAYOUT = {
  owner: '.owner',
  boot: '.boot',
  pushed: 'pushed',
  prefetch: 'prefetch',
  port: 'daemon.port',
} as const;

/**
 * The spool's default place, relative to PostgreSQL's data directory: on the data volume (same
 * filesystem as pg_wal) but outside the data directory, so base backups skip it. The data
 * directory is the working directory when it holds DATA_DIRECTORY_MARKER (archive_command and
 * restore_command run there), else $PGDATA; with neither, ARCHIVER_SPOOL must be set.
 */
export const SPOOL_DEFAULT_FROM_DATA_DIRECTORY = '../archiver-spool';

/** A file every PostgreSQL data directory holds. */
export const DATA_DIRECTORY_MARKER = 'PG_VERSION';

/** The variable PostgreSQL's tools read the data directory from. */
export const PGDATA_ENV = 'PGDATA';

/**
 * Who owns the spool's markers and prefetched files: the archive location they were made for.
 * The launcher builds the same string from its environment without forking,
 * `"$ARCHIVER_REPOSITORY|${ARCHIVER_S3_ENDPOINT:-}"`, and trusts the spool only when it matches
 * the `.owner` file: after a configuration change, nothing done for the old location is taken as
 * done for the new one.
 */
export function spoolOwner(repository: string, s3Endpoint: string | undefined): string {
  return `${repository}|${s3Endpoint ?? ''}`;
}

/**
 * The one line of a pushed-ahead marker: the location it was archived to and the absolute path
 * of the pg_wal file it was made from, separated by a tab. The launcher takes a marker only when
 * both are its own (`wal-push /elsewhere/NAME` is never answered by a marker for pg_wal/NAME).
 */
export function pushedMarker(owner: string, absolutePath: string): string {
  return `${owner}\t${absolutePath}`;
}
