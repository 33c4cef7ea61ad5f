import { Chart, ChartProps } from 'cdk8s';
import { Construct } from 'constructs';
import { ArchivedPostgres, ArchiveStorage, TerminationPolicy } from '../constructs';

/**
 * The seed example (KubeDB's "continuous archiving with wal-g"): namespace `demo`, `wal-postgres`
 * with 2 members on 1Gi `standard` volumes, archiving to the `kubedb` bucket with the credentials
 * of the Secret `s3-secret`.
 */
export class DemoChart extends Chart {
  constructor(scope: Construct, id: string, props: ChartProps = {}) {
    super(scope, id, { namespace: 'demo', disableResourceNameHashes: true, ...props });

    new ArchivedPostgres(this, 'wal-postgres', {
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
    });
  }
}
