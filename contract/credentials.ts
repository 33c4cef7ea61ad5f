/**
 * The database roles' credentials in the pod: where the archiver sidecar finds the passwords (the
 * Secrets mounted as volumes, which the kubelet updates in place when a Secret changes; an
 * environment variable never changes), and where it writes the libpq password file that the
 * standbys' start script, probes and walreceiver authenticate to pod 0 with.
 */

/** The role the standbys stream, clone, rewind and query pod 0 as; never the superuser. */
export const REPLICATION_USER = 'replication';

/** The superuser: the official image's default, local only unless the database says otherwise. */
export const SUPERUSER_NAME = 'postgres';

/** Where each password Secret is mounted (its key `password`, a file of that name). */
export const CREDENTIALS_MOUNT = {
  superuser: '/etc/postgresql-credentials/superuser',
  replication: '/etc/postgresql-credentials/replication',
} as const;

/** The key of each password Secret, and the file name it is mounted as. */
export const PASSWORD_KEY = 'password';

/**
 * The libpq password file with the replication role's password (`*:*:*:replication:<password>`,
 * mode 0600), in the `tmp` volume both containers share: written by the sidecar, read by libpq
 * in the PostgreSQL container at every connection, so a rotated password is used at the next one.
 */
export const REPLICATION_PASSFILE = '/tmp/replication.pgpass';

/** The environment that tells the sidecar where the credentials are (unset: that duty is off). */
export const CREDENTIALS_ENV = {
  /** The superuser's password file; the sidecar keeps the role's password equal to it. */
  superuserPasswordFile: 'ARCHIVER_SUPERUSER_PASSWORD_FILE',
  /** The replication role's password file; the sidecar creates the role and keeps its password equal to it. */
  replicationPasswordFile: 'ARCHIVER_REPLICATION_PASSWORD_FILE',
  /** Where the sidecar writes the libpq password file of the replication role. */
  replicationPassfile: 'ARCHIVER_REPLICATION_PASSFILE',
  /** How often the password files are read, in seconds. Default 5. */
  pollSeconds: 'ARCHIVER_CREDENTIALS_POLL_SECONDS',
} as const;
