import { Duration } from 'cdk8s';
import { ArchiveStorage, Bootstrap, DatabaseCatalog, RecoveryTarget, TerminationPolicy } from '../constructs';

/** Where both databases archive: the `kubedb` bucket, with the credentials of the Secret `s3-secret`. */
const ARCHIVE = ArchiveStorage.s3({
  storageSecretName: 's3-secret',
  endpoint: 'https://s3.amazonaws.com',
  bucket: 'kubedb',
});

/**
 * The seed example (KubeDB's "continuous archiving with wal-g"), each database defined once for
 * every environment (app.ts says which environment runs which, and what differs there):
 * namespace `demo`, `wal-postgres` with 2 members on 1Gi `standard` volumes, archiving to the
 * `kubedb` bucket; and `wal-postgres-pitr`, a copy of it as it was at a point in time.
 */
export const DEMO_DATABASES: DatabaseCatalog = {
  'wal-postgres': {
    namespace: 'demo',
    version: 15,
    replicas: 2,
    storage: { storageClassName: 'standard', accessModes: ['ReadWriteOnce'], size: '1Gi' },
    archiver: { storage: ARCHIVE },
    terminationPolicy: TerminationPolicy.DELETE,
    // A base backup daily at 02:00 UTC (and one as soon as a new primary is ready); after each,
    // keep the 7 newest and whatever a recovery to any point of the last 14 days needs.
    backups: { schedule: '0 2 * * *', retention: { count: 7, window: Duration.days(14) } },
    // Every network connection encrypted, the standbys verifying pod 0 against the Secret's ca.crt:
    // a kubernetes.io/tls Secret, e.g. made by a cert-manager Certificate (README: TLS).
    tls: { secretName: 'wal-postgres-tls' },
    // PostgreSQL from the pods of namespace demo and the members only; metrics from monitoring;
    // out: DNS, the members and the archive's storage (README: NetworkPolicy).
    networkPolicy: {},
  },

  // A new database from the seed's archive as it was at 06:00 UTC, e.g. to look at rows deleted
  // by mistake later that morning. Its first start recovers to the target, then it archives
  // into its own location and takes its own backup; a scratch copy, its archive goes with it.
  'wal-postgres-pitr': {
    namespace: 'demo',
    version: 15,
    storage: { storageClassName: 'standard', size: '1Gi' },
    // The seed's archive storage (in each environment under that environment's archivePrefix).
    archiver: { storage: ARCHIVE },
    // The restored cluster keeps the seed's roles and passwords.
    authSecretName: 'wal-postgres-auth',
    bootstrap: Bootstrap.fromArchive({
      namespace: 'demo',
      name: 'wal-postgres',
      target: RecoveryTarget.time('2026-11-30T06:00:00Z'),
    }),
    terminationPolicy: TerminationPolicy.WIPE_OUT,
  },
};
