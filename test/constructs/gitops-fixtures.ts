/**
 * What the specifications of the GitOps layout share (environment.ts, database-chart.ts,
 * gitops-delivery.ts): an app as app.ts builds it, with a small catalog, in this file's scratch
 * directory (test/constructs/fixtures.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App } from 'cdk8s';
import { parseAllDocuments } from 'yaml';
import { ArchiverImage, ArchiveStorage, DatabaseCatalog, Environment, EnvironmentProps, GitOpsApp, PreviousOutput, PreviousOutputFiles, TerminationPolicy } from '../../constructs';
import { KubeObject, TEST_ARCHIVER_IMAGE, testOutdir } from './fixtures';

export const REPO = 'https://git.example.com/team-a/databases.git';

/** `orders` (2 members, 1Gi) and `orders-scratch` (WipeOut), both in namespace `shop`, archiving to `pg-archive`. */
export const CATALOG: DatabaseCatalog = {
  orders: {
    namespace: 'shop',
    version: 16,
    replicas: 2,
    storage: { storageClassName: 'standard', size: '1Gi' },
    archiver: { storage: ArchiveStorage.s3({ storageSecretName: 'orders-s3', bucket: 'pg-archive', prefix: 'team-a' }) },
  },
  'orders-scratch': {
    namespace: 'shop',
    version: 16,
    archiver: { storage: ArchiveStorage.gcs({ storageSecretName: 'orders-gcs', bucket: 'pg-archive' }) },
    terminationPolicy: TerminationPolicy.WIPE_OUT,
  },
};

/** A GitOpsApp with the test archiver image, and the previous output if given. */
export function gitOpsApp(previous?: PreviousOutputFiles): GitOpsApp {
  const app = new GitOpsApp({ outdir: testOutdir() });
  if (previous) PreviousOutput.use(app, previous);
  ArchiverImage.use(app, TEST_ARCHIVER_IMAGE);
  return app;
}

/** An environment of CATALOG in `app`, every database by default, with `props` over it. */
export function environment(app: App, id: string, props: Partial<EnvironmentProps> = {}): Environment {
  return new Environment(app, id, { catalog: CATALOG, databases: { orders: {}, 'orders-scratch': {} }, archivePrefix: id, ...props });
}

/** Every file `app.synth()` wrote, relative to its output directory, as YAML documents. */
export function writtenFiles(app: App): Record<string, KubeObject[]> {
  app.synth();
  const files: Record<string, KubeObject[]> = {};
  for (const file of (fs.readdirSync(app.outdir, { recursive: true }) as string[]).sort()) {
    const full = path.join(app.outdir, file);
    if (fs.statSync(full).isFile()) files[file] = parseAllDocuments(fs.readFileSync(full, 'utf8')).map((d) => d.toJS());
  }
  return files;
}
