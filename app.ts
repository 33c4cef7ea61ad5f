/**
 * The app: every environment and what delivers it. Pure definition, no I/O and no environment
 * variables: the entry (main.ts) and the tooling (scripts/synth-check.ts, tests) import it and
 * decide where it goes, and hand it what the previous synthesis wrote.
 *
 *   constructs/ <- charts/ <- app.ts <- main.ts, scripts/synth-check.ts -> scripts/synthesize.ts
 */
import { App } from 'cdk8s';
import { DEMO_DATABASES } from './charts/demo-databases';
import { ArchiverImage, Environment, GitOpsApp, GitOpsDelivery, IN_CLUSTER, PreviousOutput, PreviousOutputFiles } from './constructs';

/**
 * The archiver image every database of the app runs, where the nodes pull it from: a placeholder
 * registry; a team sets its own (`ARCHIVER_IMAGE=<this> npm run archiver:image -- --push` builds
 * and pushes it; pin it with the digest that prints: `...:0.1.0@sha256:...`).
 */
export const ARCHIVER_IMAGE = 'ghcr.io/your-org/pg-wal-archiver:0.1.0';

/** The repository Argo CD and Flux sync dist/ from: a placeholder; a team sets its own. */
export const REPOSITORY_URL = 'https://github.com/your-org/pg-wal-gitops.git';

/**
 * The app, written to `outdir`: `dev/` and `prod/` (one directory per database), and
 * `delivery/argocd/` and `delivery/flux/` (what Argo CD and Flux sync them from).
 * `previousOutput` is what the previous synthesis wrote (a volume claim cannot shrink).
 */
export function buildApp(outdir: string, previousOutput: PreviousOutputFiles = {}): App {
  const app = new GitOpsApp({ outdir });
  // First things after new App(): construct context can only be set before anything is added.
  PreviousOutput.use(app, previousOutput);
  ArchiverImage.use(app, ARCHIVER_IMAGE);

  // Argo CD's own cluster: one member each, a weekly backup, both databases.
  const dev = new Environment(app, 'dev', {
    catalog: DEMO_DATABASES,
    cluster: { server: IN_CLUSTER },
    archivePrefix: 'dev',
    defaults: { replicas: 1 },
    databases: {
      'wal-postgres': { backups: { schedule: '0 3 * * 0', retention: { count: 2 } } },
      'wal-postgres-pitr': {},
    },
  });
  // The cluster registered in Argo CD as `prod`: the seed only, 3 members on larger volumes.
  const prod = new Environment(app, 'prod', {
    catalog: DEMO_DATABASES,
    cluster: { name: 'prod' },
    archivePrefix: 'prod',
    databases: {
      'wal-postgres': {
        replicas: 3,
        storage: { size: '20Gi' },
        resources: { requests: { cpu: '1', memory: '2Gi' } },
      },
    },
    // Flux applies the databases once the Kustomization that delivers their Secrets is ready.
    flux: { dependsOn: ['postgres-secrets'] },
  });

  new GitOpsDelivery(app, 'delivery', {
    repoURL: REPOSITORY_URL,
    targetRevision: 'main',
    environments: [dev, prod],
  });
  return app;
}
