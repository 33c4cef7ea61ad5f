/**
 * The files PostgreSQL is started with, rendered as text so that a reviewer reads exactly what will
 * run: `postgresql.conf`, `pg_hba.conf` and the start-up script that picks the pod's role. Pure
 * functions: the construct puts their output into a ConfigMap.
 */
import { renderArchiveCommand, renderRestoreCommand } from '../contract';

/** Where the ConfigMap is mounted in the PostgreSQL container. */
export const CONFIG_DIR = '/etc/postgresql-archived';
/** The data volume's mount point; PGDATA is a subdirectory so that the volume's lost+found stays out of it. */
export const DATA_MOUNT = '/var/lib/postgresql/data';
export const PGDATA = `${DATA_MOUNT}/pgdata`;
/** The archiver's spool: on the data volume (same filesystem as pg_wal) but outside PGDATA, so base backups skip it. */
export const ARCHIVER_SPOOL_DIR = `${DATA_MOUNT}/archiver-spool`;
export const SOCKET_DIR = '/var/run/postgresql';
export const POSTGRES_PORT = 5432;
/** The superuser and replication user: the official image's default. */
export const SUPERUSER = 'postgres';

export interface PostgresConfigOptions {
  /** `namespace/name`, written into the file header. */
  readonly id: string;
  /** Host name of pod 0 through the governing Service, e.g. `wal-postgres-0.wal-postgres-pods`. */
  readonly primaryHost: string;
  /** archive_timeout in seconds. */
  readonly archiveTimeoutSeconds: number;
  /** Where the archiver is installed in the container. */
  readonly archiverInstallDir: string;
}

/** Quotes a value for postgresql.conf. */
export function confString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export function renderPostgresqlConf(options: PostgresConfigOptions): string {
  return `# postgresql.conf of ${options.id}, rendered by the ArchivedPostgres construct.
# A change to this file changes the pod template's config checksum and rolls the pods.

listen_addresses = '*'
port = ${POSTGRES_PORT}
unix_socket_directories = ${confString(SOCKET_DIR)}
hba_file = ${confString(`${CONFIG_DIR}/pg_hba.conf`)}
password_encryption = 'scram-sha-256'

# Replication: pod 0 is the primary, pods 1..N-1 stream from it as hot standbys.
wal_level = replica
max_wal_senders = 10
hot_standby = on
# Used by standbys only (a standby.signal file is present): the password comes from PGPASSWORD.
primary_conninfo = ${confString(`host=${options.primaryHost} port=${POSTGRES_PORT} user=${SUPERUSER}`)}
# A standby that falls further behind than this catches up from the archive (restore_command).
wal_keep_size = '256MB'

# Continuous archiving. archive_mode = on archives on the primary only; standbys do not push.
archive_mode = on
archive_command = ${confString(renderArchiveCommand(options.archiverInstallDir))}
# Switch to a new segment after this many seconds even when it is not full, so that at most this
# much committed work is missing from the archive.
archive_timeout = ${options.archiveTimeoutSeconds}
# Standbys, and recovery from the archive, fetch segments that streaming cannot provide.
restore_command = ${confString(renderRestoreCommand(options.archiverInstallDir))}
`;
}

export function renderPgHbaConf(id: string): string {
  return `# pg_hba.conf of ${id}, rendered by the ArchivedPostgres construct.
# TYPE  DATABASE     USER  ADDRESS  METHOD
# Inside the container the OS user postgres is the database superuser (probes, kubectl exec psql).
local   all          all            peer
# ...replication too: pg_basebackup run in the pod (kubectl exec) takes a base backup locally.
local   replication  all            peer
# Everything over the network authenticates with SCRAM, replication from the standbys included.
host    all          all   all      scram-sha-256
host    replication  all   all      scram-sha-256
`;
}

export interface StartScriptOptions {
  readonly id: string;
  readonly primaryHost: string;
}

/**
 * The container's command. The role comes from the pod ordinal: pod 0 initialises (on an empty
 * volume) and runs the primary; the others clone pod 0 once with pg_basebackup and run as
 * standbys.
 */
export function renderStartScript(options: StartScriptOptions): string {
  return `#!/bin/bash
# Start-up of ${options.id}, rendered by the ArchivedPostgres construct.
# Pod 0 is the primary; pods 1..N-1 are streaming standbys cloned from pod 0.
set -euo pipefail

config=(-c "config_file=${CONFIG_DIR}/postgresql.conf")
ordinal="\${POD_NAME##*-}"

# The archiver sidecar starts with this container. Give it a few seconds, so that the first
# restore_command and archive_command calls already reach it (without it they work alone: slower,
# still correct). Its port file may be a dead one's: only an answer on the port counts.
for _ in {1..20}; do
  if read -r port _ 2>/dev/null <"${ARCHIVER_SPOOL_DIR}/daemon.port" &&
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    break
  fi
  sleep 0.5
done

if [ "$ordinal" = "0" ]; then
  echo "start: $POD_NAME is the primary"
  # The official image's entrypoint runs initdb when the volume is empty, then starts postgres.
  exec docker-entrypoint.sh postgres "\${config[@]}"
fi

echo "start: $POD_NAME is a standby of ${options.primaryHost}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h "${options.primaryHost}" -p ${POSTGRES_PORT}; do
    echo "start: waiting for the primary ${options.primaryHost} to accept connections"
    sleep 5
  done
  # Clone into a scratch directory and rename it into place: a clone cut short by a restart is
  # never mistaken for a data directory.
  rm -rf "$PGDATA.clone"
  pg_basebackup --host="${options.primaryHost}" --port=${POSTGRES_PORT} --username=${SUPERUSER} \\
    --pgdata="$PGDATA.clone" --wal-method=stream --checkpoint=fast --no-password --progress
  mv "$PGDATA.clone" "$PGDATA"
fi
# Every start of pods 1..N-1 is a standby start.
touch "$PGDATA/standby.signal"
exec postgres "\${config[@]}"
`;
}
