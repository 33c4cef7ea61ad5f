import { Chart, ChartProps, Duration } from 'cdk8s';
import { Construct } from 'constructs';
import { ArchivedPostgres, ArchiveStorage, Bootstrap, RecoveryTarget, TerminationPolicy } from '../constructs';

/**
 * The seed example (KubeDB's "continuous archiving with wal-g"): namespace `demo`, `wal-postgres`
 * with 2 members on 1Gi `standard` volumes, archiving to the `kubedb` bucket with the credentials
 * of the Secret `s3-secret`; and `wal-postgres-pitr`, a copy of it as it was at a point in time.
 */
export class DemoChart extends Chart {
  constructor(scope: Construct, id: string, props: ChartProps = {}) {
    super(scope, id, { namespace: 'demo', disableResourceNameHashes: true, ...props });

    const seed = new ArchivedPostgres(this, 'wal-postgres', {
      version: 15,
      replicas: 2,
      storage: { storageClassName: 'standard', accessModes: ['ReadWriteOnce'], size: '1Gi' },
      archiver: {
        storage: ArchiveStorage.s3({
          storageSecretName: 's3-secret',
          endpoint: 'https://s3.amazonaws.com',
          bucket: 'kubedb',
        }),
      },
      terminationPolicy: TerminationPolicy.DELETE,
      // A base backup daily at 02:00 UTC (and one as soon as a new primary is ready); after each,
      // keep the 7 newest and whatever a recovery to any point of the last 14 days needs.
      backups: { schedule: '0 2 * * *', retention: { count: 7, window: Duration.days(14) } },
    });

    // A new database from the seed's archive as it was at 06:00 UTC, e.g. to look at rows deleted
    // by mistake later that morning. Its first start recovers to the target, then it archives
    // into its own location and takes its own backup; a scratch copy, its archive goes with it.
    new ArchivedPostgres(this, 'wal-postgres-pitr', {
      version: seed.version,
      storage: { storageClassName: 'standard', size: '1Gi' },
      archiver: { storage: seed.archiveStorage },
      // The restored cluster keeps the seed's roles and passwords.
      authSecretName: seed.authSecretName,
      bootstrap: Bootstrap.fromArchive({
        namespace: seed.namespace,
        name: seed.name,
        target: RecoveryTarget.time('2026-11-30T06:00:00Z'),
      }),
      terminationPolicy: TerminationPolicy.WIPE_OUT,
    });
  }
}
