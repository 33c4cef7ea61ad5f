/**
 * The benchmark app: BENCH_DATABASES copies of the seed database, one chart per ten databases,
 * synthesized like main.ts (validated as a whole, written atomically).
 */
import { App, Chart } from 'cdk8s';
import { ArchivedPostgres, ArchiverImage, ArchiveStorage } from '../constructs';
import { synthesizeAtomically } from '../scripts/synthesize';

const count = Number(process.env.BENCH_DATABASES ?? '1');

function build(outdir: string): App {
  const app = new App({ outdir });
  ArchiverImage.use(app, 'registry.example.com/pg-wal-archiver:0.1.0');
  let chart: Chart | undefined;
  for (let i = 0; i < count; i++) {
    if (i % 10 === 0) chart = new Chart(app, `team-${i / 10}`, { namespace: `team-${i / 10}` });
    new ArchivedPostgres(chart!, `db-${i}`, {
      version: 15,
      replicas: 2,
      storage: { storageClassName: 'standard', size: '1Gi' },
      archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.amazonaws.com', bucket: 'kubedb' }) },
    });
  }
  return app;
}

process.exitCode = synthesizeAtomically(build, process.env.CDK8S_OUTDIR ?? 'dist');
