/**
 * GitOpsDelivery (constructs/gitops-delivery.ts, argo-cd-delivery.ts, flux-delivery.ts): what
 * Argo CD and Flux sync each environment from, every path they point at present in the output, and
 * the delivery's bad input, reported at synth with path, field, value and fix.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiObject, Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../app';
import { GitOpsApp, GitOpsDelivery, IGNORE_DIFFERENCES, IN_CLUSTER, RESOURCES_FINALIZER } from '../../constructs';
import { collectValidationErrors } from '../../scripts/synthesize';
import { KubeObject, find, testOutdir } from './fixtures';
import { REPO, environment, gitOpsApp, writtenFiles } from './gitops-fixtures';

/** dev (in-cluster) and prod (cluster `prod-eu`), both databases in each, delivered from REPO. */
function delivered(options: Partial<ConstructorParameters<typeof GitOpsDelivery>[2]> = {}) {
  const app = gitOpsApp();
  const dev = environment(app, 'dev');
  const prod = environment(app, 'prod', { cluster: { name: 'prod-eu' }, databases: { orders: { replicas: 3 } }, flux: { dependsOn: ['postgres-secrets'] } });
  const delivery = new GitOpsDelivery(app, 'delivery', { repoURL: REPO, environments: [dev, prod], ...options });
  return { app, dev, prod, delivery };
}

describe('GitOpsDelivery, given dev and prod', () => {
  const { app, delivery } = delivered();
  const files = writtenFiles(app);

  it('writes each environment\'s tree and the delivery manifests beside them', () => {
    expect(Object.keys(files)).toStrictEqual([
      'delivery/argocd/dev/dev.k8s.yaml',
      'delivery/argocd/prod/prod.k8s.yaml',
      'delivery/flux/dev/dev.k8s.yaml',
      'delivery/flux/prod/prod.k8s.yaml',
      'dev/shop/orders-scratch/orders-scratch.k8s.yaml',
      'dev/shop/orders/orders.k8s.yaml',
      'prod/shop/orders/orders.k8s.yaml',
    ]);
  });

  it('synthesizes the same delivery manifests as the reviewed snapshot', () => {
    expect(Object.fromEntries(Object.entries(files).filter(([file]) => file.startsWith('delivery/')))).toMatchSnapshot();
  });

  it('gives each database its own Argo CD Application over its directory, deleted with its objects (then its PostDelete hooks)', () => {
    const argo = files['delivery/argocd/prod/prod.k8s.yaml'];
    expect(find(argo, 'Application', 'prod-shop-orders')).toStrictEqual({
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Application',
      metadata: {
        name: 'prod-shop-orders',
        namespace: 'argocd',
        finalizers: [RESOURCES_FINALIZER],
        labels: { 'app.kubernetes.io/instance': 'orders', 'app.kubernetes.io/managed-by': 'cdk8s', 'app.kubernetes.io/part-of': 'prod-postgres' },
      },
      spec: {
        project: 'prod-postgres',
        source: { repoURL: REPO, targetRevision: 'main', path: 'dist/prod/shop/orders' },
        destination: { name: 'prod-eu', namespace: 'shop' },
        syncPolicy: {
          automated: { prune: true, selfHeal: true },
          syncOptions: ['PruneLast=true', 'RespectIgnoreDifferences=true'],
          retry: { limit: 5, backoff: { duration: '30s', factor: 2, maxDuration: '10m' } },
        },
        ignoreDifferences: IGNORE_DIFFERENCES,
      },
    });
    expect(argo.filter((o) => o.kind === 'Application').map((o) => o.metadata.name)).toStrictEqual(['prod-postgres', 'prod-shop-orders']);
    expect(files['delivery/argocd/dev/dev.k8s.yaml'].filter((o) => o.kind === 'Application').map((o) => o.metadata.name)).toStrictEqual(['dev-postgres', 'dev-shop-orders', 'dev-shop-orders-scratch']);
  });

  it('says on the Application of a WipeOut database that its hook needs the database to stay alone in it', () => {
    const application = find(files['delivery/argocd/dev/dev.k8s.yaml'], 'Application', 'dev-shop-orders-scratch');
    expect(application.metadata.annotations).toStrictEqual({
      'archived-postgres/post-delete-hook': 'Job shop/orders-scratch-wipeout deletes the database\'s WAL archive when this Application is deleted (Argo CD runs PostDelete hooks on an Application\'s deletion only): the database must stay the only one of this Application',
    });
    expect(find(files['delivery/argocd/dev/dev.k8s.yaml'], 'Application', 'dev-shop-orders').metadata.annotations).toBeUndefined();
  });

  it('allows in the environment\'s AppProject exactly its destinations and the kinds its databases render', () => {
    const project = find(files['delivery/argocd/dev/dev.k8s.yaml'], 'AppProject', 'dev-postgres');
    expect(project.spec.destinations).toStrictEqual([{ server: IN_CLUSTER, namespace: 'shop' }]);
    expect(project.spec.sourceRepos).toStrictEqual([REPO]);
    expect(project.spec.clusterResourceWhitelist).toBeUndefined();
    const rendered = new Set(Object.entries(files).filter(([f]) => f.startsWith('dev/')).flatMap(([, objects]) => objects.map((o) => `${o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : ''}/${o.kind}`)));
    expect(project.spec.namespaceResourceWhitelist.map((gk: any) => `${gk.group}/${gk.kind}`)).toStrictEqual([...rendered].sort());
    // prod runs no WipeOut database: no Job, Role or RoleBinding allowed there.
    expect(find(files['delivery/argocd/prod/prod.k8s.yaml'], 'AppProject', 'prod-postgres').spec.namespaceResourceWhitelist.map((gk: any) => gk.kind)).not.toContain('Job');
  });

  it('keeps the Applications as Git has them through a root Application, in a project limited to Argo CD\'s namespace, without cascading deletion', () => {
    const argo = files['delivery/argocd/dev/dev.k8s.yaml'];
    const root = find(argo, 'Application', 'dev-postgres');
    expect((root.metadata as { finalizers?: string[] }).finalizers).toBeUndefined();
    expect(root.spec.source.path).toBe('dist/delivery/argocd/dev');
    expect(root.spec.destination).toStrictEqual({ server: IN_CLUSTER, namespace: 'argocd' });
    expect(find(argo, 'AppProject', root.spec.project).spec).toMatchObject({
      destinations: [{ server: IN_CLUSTER, namespace: 'argocd' }],
      namespaceResourceWhitelist: [{ group: 'argoproj.io', kind: 'AppProject' }, { group: 'argoproj.io', kind: 'Application' }],
    });
  });

  it('gives Flux a GitRepository of the output directory only, and a Kustomization per environment: pruned, health-checked on the StatefulSets, after its dependencies', () => {
    const flux = files['delivery/flux/prod/prod.k8s.yaml'];
    expect(find(flux, 'GitRepository', 'prod-postgres').spec).toStrictEqual({ url: REPO, ref: { branch: 'main' }, interval: '1m', ignore: '/*\n!/dist/\n' });
    expect(find(flux, 'Kustomization', 'prod-postgres').spec).toStrictEqual({
      sourceRef: { kind: 'GitRepository', name: 'prod-postgres' },
      path: './dist/prod',
      interval: '5m',
      retryInterval: '1m',
      timeout: '10m',
      prune: true,
      wait: false,
      healthChecks: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'orders', namespace: 'shop' }],
      dependsOn: [{ name: 'postgres-secrets' }],
    });
    expect(find(files['delivery/flux/dev/dev.k8s.yaml'], 'Kustomization', 'dev-postgres').spec.healthChecks.map((c: any) => c.name)).toStrictEqual(['orders', 'orders-scratch']);
    expect(find(flux, 'Kustomization', 'prod-postgres-delivery').spec.path).toBe('./dist/delivery/flux/prod');
    expect(find(files['delivery/flux/dev/dev.k8s.yaml'], 'Kustomization', 'dev-postgres').spec.dependsOn).toBeUndefined();
  });

  it('points every manifest at a path that exists in the output', () => {
    expect(delivery.sourcePaths).toStrictEqual([
      'dist/delivery/argocd/dev', 'dist/dev/shop/orders', 'dist/dev/shop/orders-scratch',
      'dist/delivery/argocd/prod', 'dist/prod/shop/orders',
      './dist/delivery/flux/dev', './dist/dev', './dist/delivery/flux/prod', './dist/prod',
    ]);
    for (const source of delivery.sourcePaths) {
      const inOutput = path.join(app.outdir, path.relative('dist', source));
      expect(fs.statSync(inOutput).isDirectory(), source).toBe(true);
      expect(fs.readdirSync(inOutput).length, source).toBeGreaterThan(0);
    }
  });

  it('follows the options: no prune or self-heal, the project\'s kinds, Flux\'s namespace, interval and repository Secret, another branch and output path', () => {
    const { app } = delivered({
      targetRevision: 'release/2026',
      path: 'deploy/dist',
      argoCd: { namespace: 'gitops', prune: false, selfHeal: false },
      flux: { namespace: 'flux', interval: Duration.minutes(10), secretName: 'repo-ssh', prune: false },
    });
    const argo = writtenFiles(app)['delivery/argocd/dev/dev.k8s.yaml'];
    const application = find(argo, 'Application', 'dev-shop-orders');
    expect(application.metadata.namespace).toBe('gitops');
    expect(application.spec.syncPolicy.automated).toStrictEqual({ prune: false, selfHeal: false });
    expect(application.spec.source).toStrictEqual({ repoURL: REPO, targetRevision: 'release/2026', path: 'deploy/dist/dev/shop/orders' });
    const flux = writtenFiles(app)['delivery/flux/dev/dev.k8s.yaml'];
    expect(find(flux, 'GitRepository', 'dev-postgres').spec).toMatchObject({ ref: { branch: 'release/2026' }, secretRef: { name: 'repo-ssh' }, ignore: '/*\n!/deploy/dist/\n' });
    expect(find(flux, 'Kustomization', 'dev-postgres').spec).toMatchObject({ path: './deploy/dist/dev', interval: '10m', prune: false });
    expect(flux.every((o) => o.metadata.namespace === 'flux')).toBe(true);
  });

  it('renders for one tool only when told', () => {
    expect(Object.keys(writtenFiles(delivered({ flux: false }).app)).filter((f) => f.startsWith('delivery/'))).toStrictEqual(['delivery/argocd/dev/dev.k8s.yaml', 'delivery/argocd/prod/prod.k8s.yaml']);
    expect(Object.keys(writtenFiles(delivered({ argoCd: false }).app)).filter((f) => f.startsWith('delivery/'))).toStrictEqual(['delivery/flux/dev/dev.k8s.yaml', 'delivery/flux/prod/prod.k8s.yaml']);
  });
});

describe('The app in app.ts', () => {
  const app = buildApp(testOutdir());
  const files = writtenFiles(app);

  it('holds the seed database in dev and prod, with their Argo CD and Flux manifests', () => {
    expect(Object.keys(files)).toStrictEqual([
      'delivery/argocd/dev/dev.k8s.yaml',
      'delivery/argocd/prod/prod.k8s.yaml',
      'delivery/flux/dev/dev.k8s.yaml',
      'delivery/flux/prod/prod.k8s.yaml',
      'dev/demo/wal-postgres-pitr/wal-postgres-pitr.k8s.yaml',
      'dev/demo/wal-postgres/wal-postgres.k8s.yaml',
      'prod/demo/wal-postgres/wal-postgres.k8s.yaml',
    ]);
    expect(find(files['prod/demo/wal-postgres/wal-postgres.k8s.yaml'], 'StatefulSet', 'wal-postgres').spec.replicas).toBe(3);
    expect(find(files['dev/demo/wal-postgres/wal-postgres.k8s.yaml'], 'StatefulSet', 'wal-postgres').spec.replicas).toBe(1);
  });

  it('points every Argo CD and Flux path at a directory of dist/ (the committed one too)', () => {
    const delivery = app.node.findAll().find((c): c is GitOpsDelivery => c instanceof GitOpsDelivery)!;
    const pointed = Object.entries(files).filter(([f]) => f.startsWith('delivery/')).flatMap(([, objects]) => objects)
      .flatMap((o: KubeObject) => (o.kind === 'Application' ? [o.spec.source.path] : o.kind === 'Kustomization' ? [o.spec.path] : []));
    expect(pointed.sort()).toStrictEqual([...delivery.sourcePaths].sort());
    const root = path.resolve(__dirname, '../..');
    for (const source of pointed) {
      expect(fs.statSync(path.join(app.outdir, path.relative('dist', source))).isDirectory(), source).toBe(true);
      expect(fs.statSync(path.join(root, source)).isDirectory(), `${source} in the committed dist/`).toBe(true);
    }
  });
});

describe('GitOpsDelivery bad input: synth errors with the construct path, the field, the value and the fix, all at once', () => {
  const errorsOf = (build: (app: GitOpsApp) => void) => {
    const app = gitOpsApp();
    build(app);
    return collectValidationErrors(app);
  };
  const oneEnvironment = (app: GitOpsApp, props: Partial<ConstructorParameters<typeof GitOpsDelivery>[2]> = {}) =>
    new GitOpsDelivery(app, 'delivery', { repoURL: REPO, environments: [environment(app, 'dev')], ...props });

  it('fails on a repository URL that is not a URL', () => {
    for (const repoURL of ['github.com/team-a/databases', 'not a url', 'ftp://git.example.com/databases.git', 'https://git.example.com']) {
      expect(errorsOf((app) => oneEnvironment(app, { repoURL }))).toStrictEqual([
        `[delivery] repoURL: ${JSON.stringify(repoURL)} is not a URL of a Git repository: write the repository's clone URL with its scheme, host and path, e.g. "https://github.com/your-org/pg-wal-gitops.git" or "ssh://git@github.com/your-org/pg-wal-gitops.git"`,
      ]);
    }
  });

  it('fails on a scp-like address when Flux is rendered (Flux takes URLs only), and on credentials in the URL', () => {
    expect(errorsOf((app) => oneEnvironment(app, { repoURL: 'git@git.example.com:team-a/databases.git' }))).toStrictEqual([
      '[delivery] repoURL: "git@git.example.com:team-a/databases.git" is a scp-like address, which Argo CD takes but Flux\'s GitRepository does not (it takes http://, https:// and ssh:// URLs only): write "ssh://git@git.example.com/team-a/databases.git"',
    ]);
    expect(errorsOf((app) => oneEnvironment(app, { repoURL: 'git@git.example.com:team-a/databases.git', flux: false }))).toStrictEqual([]);
    const leaked = errorsOf((app) => oneEnvironment(app, { repoURL: 'https://bot:hunter2@git.example.com/team-a/databases.git' }));
    expect(leaked).toStrictEqual(['[delivery] repoURL: has a password in it (value not shown): never put credentials into Git; give Argo CD a repository Secret and Flux `flux.secretName`']);
  });

  it('fails on a branch name Git refuses and an output path outside the repository', () => {
    expect(errorsOf((app) => oneEnvironment(app, { targetRevision: 'feature..x', path: '../dist' }))).toStrictEqual([
      '[delivery] targetRevision: "feature..x" is not a branch name: give the branch Argo CD and Flux sync, e.g. "main"',
      '[delivery] path: "../dist" is not a directory of the repository: give the output directory relative to the repository\'s root, as npm run synth writes it, e.g. "dist"',
    ]);
  });

  it('fails on an AppProject that does not allow a kind the databases render', () => {
    const allowedKinds = [
      { group: '', kind: 'ServiceAccount' }, { group: '', kind: 'ConfigMap' }, { group: '', kind: 'Service' }, { group: '', kind: 'PersistentVolumeClaim' },
      { group: 'apps', kind: 'StatefulSet' }, { group: 'policy', kind: 'PodDisruptionBudget' }, { group: 'batch', kind: 'Job' },
      { group: 'monitoring.coreos.com', kind: 'PodMonitor' }, { group: 'monitoring.coreos.com', kind: 'PrometheusRule' },
    ];
    // Every database renders a Role and RoleBinding (its sidecars' role label); orders-scratch's WipeOut hook too.
    expect(errorsOf((app) => oneEnvironment(app, { argoCd: { allowedKinds } }))).toStrictEqual(['orders', 'orders-scratch'].flatMap((db) => ['Role', 'RoleBinding'].map((kind) =>
      `[delivery] argoCd.allowedKinds: the AppProject "dev-postgres" does not allow rbac.authorization.k8s.io/${kind}, which dev/${db}/Database renders: Argo CD would refuse to sync its Application (resource not permitted in project); add { group: "rbac.authorization.k8s.io", kind: "${kind}" } to argoCd.allowedKinds, or render no ${kind} in the database`)));
  });

  it('fails on a kind added to a database after the delivery was constructed (its AppProject was rendered without it)', () => {
    expect(errorsOf((app) => {
      const delivery = oneEnvironment(app);
      new ApiObject(delivery.environments[0].databases[0], 'Monitor', { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 'orders' } });
    })).toStrictEqual([
      '[delivery] argoCd: the AppProject "dev-postgres" does not allow monitoring.coreos.com/ServiceMonitor, which dev/orders/Database renders: Argo CD would refuse to sync its Application (resource not permitted in project); construct GitOpsDelivery after every object is added to the databases (its AppProjects allow the kinds rendered by then), or list the kinds in argoCd.allowedKinds',
    ]);
  });

  it('fails on two environments that would make one database of two in the same cluster, or share an archive', () => {
    expect(errorsOf((app) => new GitOpsDelivery(app, 'delivery', {
      repoURL: REPO,
      environments: [environment(app, 'dev', { databases: { orders: {} } }), environment(app, 'test', { databases: { orders: {} }, archivePrefix: 'dev' })],
    }))).toStrictEqual([
      '[delivery] environments: test/orders/Database and dev/orders/Database are both "shop/orders" in the server https://kubernetes.default.svc: one would replace the other\'s objects; give the environments different clusters (cluster), or the databases different namespaces',
      '[delivery] environments: test/orders/Database archives into s3://pg-archive/dev/team-a/kubedb/shop/orders/archive, as dev/orders/Database does: two databases writing one archive corrupt each other\'s recovery (and WipeOut of one deletes the other\'s); give the environments different archivePrefix values, or the databases different buckets',
    ]);
  });

  it('fails on an Application name Argo CD cannot track', () => {
    const errors = errorsOf((app) => oneEnvironment(app, { environments: [environment(app, 'development-environment-for-the-orders-teams', { databases: { 'orders-scratch': {} } })] }));
    expect(errors).toStrictEqual([
      '[delivery] environments: the Application of development-environment-for-the-orders-teams/orders-scratch/Database would be named "development-environment-for-the-orders-teams-shop-orders-scratch" (64 characters): Argo CD tracks an Application\'s objects by its name in a label, at most 63 characters; shorten the environment\'s name, the namespace or the database\'s name',
    ]);
  });

  it('fails on no environment and on invalid namespaces for Argo CD and Flux', () => {
    expect(errorsOf((app) => new GitOpsDelivery(app, 'delivery', { repoURL: REPO, environments: [], argoCd: { namespace: 'Argo CD' }, flux: { namespace: 'flux_system' } }))).toStrictEqual([
      '[delivery] environments: is empty: give at least one Environment',
      '[delivery] argoCd.namespace: "Argo CD" is not a valid namespace: use at most 63 lowercase letters, digits and \'-\', starting and ending with a letter or digit (a DNS-1123 label), e.g. "demo"',
      '[delivery] flux.namespace: "flux_system" is not a valid namespace: use at most 63 lowercase letters, digits and \'-\', starting and ending with a letter or digit (a DNS-1123 label), e.g. "demo"',
    ]);
  });

  it('reports every problem of the app at once: environments, databases and delivery', () => {
    const errors = errorsOf((app) => {
      const dev = environment(app, 'dev', { databases: { order: {}, orders: { replicas: 0 } }, argoCd: { destinationNamespace: 'other' } });
      new GitOpsDelivery(app, 'delivery', { repoURL: 'github.com/team-a/databases', environments: [dev] });
    });
    expect(errors.map((e) => e.slice(0, e.indexOf(':')))).toStrictEqual([
      '[dev] databases["order"]',
      '[dev] argoCd.destinationNamespace',
      '[dev/orders/Database] replicas',
      '[delivery] repoURL',
    ]);
  });
});
