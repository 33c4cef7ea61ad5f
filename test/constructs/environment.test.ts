/**
 * Environment (constructs/environment.ts): one definition of each database, several environments
 * that differ in replicas, storage, resources, archive prefix and backup schedule, each in a tree
 * of its own; and the environment's bad input, reported at synth with path, field, value and fix.
 */
import { Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { ArchivedPostgres, Environment, IN_CLUSTER } from '../../constructs';
import { collectValidationErrors } from '../../scripts/synthesize';
import { envOf, find, postgresContainer } from './fixtures';
import { CATALOG, environment, gitOpsApp } from './gitops-fixtures';

const statefulSetOf = (db: ArchivedPostgres) => db.statefulSet.apiObject.toJson();

describe('Environment, given the catalog in dev and prod', () => {
  const app = gitOpsApp();
  const dev = environment(app, 'dev', { defaults: { replicas: 1 }, databases: { orders: { backups: { schedule: '0 3 * * 0' } }, 'orders-scratch': {} } });
  const prod = environment(app, 'prod', {
    cluster: { name: 'prod-eu' },
    databases: {
      orders: {
        replicas: 3,
        storage: { size: '20Gi' },
        resources: { requests: { cpu: '2', memory: '4Gi' } },
        archiver: { archiveTimeout: Duration.seconds(30) },
        backups: { schedule: '0 2 * * *', retention: { count: 7 } },
      },
    },
  });

  it('builds each database it names, in a chart of its own: <environment>/<name>/Database, written to <environment>/<namespace>/<name>/', () => {
    expect(dev.databases.map((db) => db.node.path)).toStrictEqual(['dev/orders/Database', 'dev/orders-scratch/Database']);
    expect(prod.databases.map((db) => db.node.path)).toStrictEqual(['prod/orders/Database']);
    expect(dev.charts.map((c) => c.outputFile)).toStrictEqual(['dev/shop/orders/orders.k8s.yaml', 'dev/shop/orders-scratch/orders-scratch.k8s.yaml']);
    expect(prod.charts.map((c) => c.directory)).toStrictEqual(['prod/shop/orders']);
    expect(dev.databases.map((db) => `${db.namespace}/${db.name}`)).toStrictEqual(['shop/orders', 'shop/orders-scratch']);
  });

  it('gives each environment its settings over the definition: defaults, then the database\'s own', () => {
    const [devOrders] = dev.databases;
    const [prodOrders] = prod.databases;
    expect([devOrders.replicas, prodOrders.replicas]).toStrictEqual([1, 3]);
    expect(dev.databases[1].replicas).toBe(1);
    const devClaim = devOrders.statefulSet.dataVolumeClaims[0].toJson();
    const prodClaim = prodOrders.statefulSet.dataVolumeClaims[2].toJson();
    // storage is merged field by field: the class stays the definition's.
    expect(devClaim.spec).toStrictEqual({ accessModes: ['ReadWriteOnce'], storageClassName: 'standard', resources: { requests: { storage: '1Gi' } } });
    expect(prodClaim.spec).toStrictEqual({ accessModes: ['ReadWriteOnce'], storageClassName: 'standard', resources: { requests: { storage: '20Gi' } } });
    expect(postgresContainer(statefulSetOf(prodOrders)).resources).toStrictEqual({ requests: { cpu: '2', memory: '4Gi', 'ephemeral-storage': '256Mi' }, limits: { memory: '4Gi', 'ephemeral-storage': '1Gi' } });
    expect(postgresContainer(statefulSetOf(devOrders)).resources).toStrictEqual({ requests: { cpu: '500m', memory: '1Gi', 'ephemeral-storage': '256Mi' }, limits: { memory: '1Gi', 'ephemeral-storage': '1Gi' } });
    expect([devOrders.archiveTimeout.toSeconds(), prodOrders.archiveTimeout.toSeconds()]).toStrictEqual([60, 30]);
    const sidecarEnv = (db: ArchivedPostgres) => envOf(statefulSetOf(db).spec.template.spec.containers.find((c: any) => c.name === 'archiver'));
    expect(sidecarEnv(devOrders).ARCHIVER_BACKUP_SCHEDULE).toBe('0 3 * * 0');
    expect(sidecarEnv(prodOrders)).toMatchObject({ ARCHIVER_BACKUP_SCHEDULE: '0 2 * * *', ARCHIVER_BACKUP_RETAIN: '7' });
  });

  it('puts the environment\'s archive prefix in front of each database\'s own, so that environments never share an archive', () => {
    expect(dev.databases.map((db) => `${db.archiveStorage.bucket}/${db.archivePath}`)).toStrictEqual([
      'pg-archive/dev/team-a/kubedb/shop/orders/archive',
      'pg-archive/dev/kubedb/shop/orders-scratch/archive',
    ]);
    expect(prod.databases[0].archivePath).toBe('prod/team-a/kubedb/shop/orders/archive');
    expect(envOf(postgresContainer(statefulSetOf(prod.databases[0]))).ARCHIVER_REPOSITORY).toBe('s3://pg-archive/prod/team-a/kubedb/shop/orders/archive');
    // The definition itself is left as it was.
    expect(CATALOG.orders.archiver.storage.prefix).toBe('team-a');
  });

  it('runs in Argo CD\'s own cluster unless told otherwise', () => {
    expect(dev.cluster).toStrictEqual({ server: IN_CLUSTER });
    expect(prod.cluster).toStrictEqual({ name: 'prod-eu' });
  });

  it('is a name scope of its own: shop/orders in dev and in prod are two databases, not a collision', () => {
    expect(collectValidationErrors(app)).toStrictEqual([]);
    const inBoth = writtenFilesOf(app);
    expect(find(inBoth['dev/shop/orders/orders.k8s.yaml'], 'StatefulSet', 'orders').spec.replicas).toBe(1);
    expect(find(inBoth['prod/shop/orders/orders.k8s.yaml'], 'StatefulSet', 'orders').spec.replicas).toBe(3);
  });
});

/** The charts' objects by output file, without writing them. */
function writtenFilesOf(app: ReturnType<typeof gitOpsApp>): Record<string, any[]> {
  return Object.fromEntries([...app.outputFiles].map(([chart, file]) => [file, chart.toJson()]));
}

describe('Environment bad input: synth errors with the construct path, the field, the value and the fix', () => {
  const errorsOf = (build: (app: ReturnType<typeof gitOpsApp>) => void) => {
    const app = gitOpsApp();
    build(app);
    return collectValidationErrors(app);
  };

  it('fails on a database name the catalog does not have, suggesting the nearest', () => {
    expect(errorsOf((app) => environment(app, 'dev', { databases: { order: {}, 'orders-scratch': {} } }))).toStrictEqual([
      '[dev] databases["order"]: names no database of the catalog ("orders", "orders-scratch"): did you mean "orders"? fix the name, or add the database\'s definition to the catalog',
    ]);
    expect(errorsOf((app) => environment(app, 'dev', { databases: { billing: {} } }))).toStrictEqual([
      '[dev] databases["billing"]: names no database of the catalog ("orders", "orders-scratch"): fix the name, or add the database\'s definition to the catalog',
    ]);
  });

  it('fails on an environment that runs no database', () => {
    expect(errorsOf((app) => environment(app, 'dev', { databases: {} }))).toStrictEqual([
      '[dev] databases: is empty: name at least one database of the catalog, e.g. { "wal-postgres": {} }',
    ]);
  });

  it('fails on a directory that is reserved or not a DNS label', () => {
    expect(errorsOf((app) => environment(app, 'delivery'))).toStrictEqual([
      '[delivery] directory (the construct id): "delivery" is reserved: the output directory\'s delivery/ holds the Argo CD and Flux manifests; name the environment otherwise, e.g. "prod"',
    ]);
    expect(errorsOf((app) => environment(app, 'prod', { directory: 'Prod EU' }))[0]).toBe(
      '[prod] directory: "Prod EU" is not a valid environment directory: use at most 63 lowercase letters, digits and \'-\', starting and ending with a letter or digit, e.g. "prod" (it names the directory and, in Argo CD and Flux, the objects that deliver it)',
    );
  });

  it('fails on an Application destination namespace that is not its databases\' namespace', () => {
    expect(errorsOf((app) => environment(app, 'dev', { databases: { orders: {} }, argoCd: { destinationNamespace: 'shop-dev' } }))).toStrictEqual([
      '[dev] argoCd.destinationNamespace: "shop-dev" is not the namespace of dev/orders/Database ("shop"): its Application would deploy into one namespace and its objects into another (Argo CD checks the project\'s destinations against each object\'s own namespace, and creates the destination namespace, not the objects\'); leave destinationNamespace unset (each database\'s own), or set it to "shop"',
    ]);
    expect(errorsOf((app) => environment(app, 'dev', { argoCd: { destinationNamespace: 'shop' } }))).toStrictEqual([]);
  });

  it('fails on a cluster that is not an https:// API server or names none or both', () => {
    expect(errorsOf((app) => environment(app, 'dev', { cluster: { server: 'kubernetes.default.svc' } }))).toStrictEqual([
      '[dev] cluster.server: "kubernetes.default.svc" is not the https:// URL of a Kubernetes API server: write it as Argo CD has the cluster registered (argocd cluster list), e.g. "https://kubernetes.default.svc"',
    ]);
    expect(errorsOf((app) => environment(app, 'dev', { cluster: { server: IN_CLUSTER, name: 'dev' } }))).toStrictEqual([
      '[dev] cluster: both of server and name are set: give exactly one, e.g. { server: "https://kubernetes.default.svc" } (Argo CD\'s own cluster) or { name: "prod-eu" }',
    ]);
  });

  it('fails on an archive prefix the archiver refuses, and Flux dependencies that name no Kustomization', () => {
    const errors = errorsOf((app) => environment(app, 'dev', { archivePrefix: '../dev', flux: { dependsOn: ['Secrets!'] } }));
    expect(errors.filter((e) => e.startsWith('[dev] archivePrefix: '))).toHaveLength(1);
    expect(errors).toContain('[dev] flux.dependsOn: "Secrets!" is not the name of a Flux Kustomization: use lowercase letters, digits and \'-\', e.g. "postgres-secrets"');
  });

  it('reports a database\'s own bad props under its path in the environment', () => {
    const errors = errorsOf((app) => environment(app, 'dev', { databases: { orders: { replicas: 0 } } }));
    expect(errors).toContain('[dev/orders/Database] replicas: 0 is not a whole number of at least 1: pod 0 is the primary and every further replica a standby');
  });

  it('is an Environment', () => {
    const app = gitOpsApp();
    expect(Environment.isEnvironment(environment(app, 'dev'))).toBe(true);
    expect(Environment.isEnvironment(app)).toBe(false);
  });
});
