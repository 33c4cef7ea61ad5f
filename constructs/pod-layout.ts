/**
 * Where things are inside a database pod: the paths and port that the configuration files, the
 * StatefulSet's containers and the archiver containers must agree on. One place, so that a Job
 * that runs the archiver mounts the same paths the sidecar sees.
 */
import * as path from 'node:path';
import { CONFIG_DIR, REPLICATION_USER as REPLICATION_ROLE, SPOOL_DEFAULT_FROM_DATA_DIRECTORY, SUPERUSER_NAME } from '../contract';

/** Where the ConfigMap is mounted in the PostgreSQL container and the sidecar (the contract's: the sidecar watches it). */
export { CONFIG_DIR };
/** The data volume's mount point; PGDATA is a subdirectory so that the volume's lost+found stays out of it. */
export const DATA_MOUNT = '/var/lib/postgresql/data';
export const PGDATA = `${DATA_MOUNT}/pgdata`;
/**
 * The archiver's spool: on the data volume (same filesystem as pg_wal) but outside PGDATA, so base
 * backups skip it; where the archiver puts it by default (contract), rendered explicitly.
 */
export const ARCHIVER_SPOOL_DIR = path.posix.join(PGDATA, SPOOL_DEFAULT_FROM_DATA_DIRECTORY);
export const SOCKET_DIR = '/var/run/postgresql';
/** Where the TLS Secret (`tls`) is mounted in the PostgreSQL container. */
export const TLS_DIR = '/etc/postgresql-tls';
export const POSTGRES_PORT = 5432;
/** The superuser: the official image's default; it logs in inside the pod only, unless `superuserNetworkLogin`. */
export const SUPERUSER = SUPERUSER_NAME;
/**
 * The role the standbys clone, stream, rewind and query pod 0 as (LOGIN REPLICATION and the
 * functions pg_rewind reads files with; created by pod 0's archiver sidecar).
 */
export const REPLICATION_USER = REPLICATION_ROLE;
/** The uid and gid of the postgres user of the official (Debian) image; every container of the pod runs as it. */
export const POSTGRES_UID = 999;
