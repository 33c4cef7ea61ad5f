/**
 * DatabaseChart (constructs/database-chart.ts): one database in a directory of its own, its Argo CD
 * sync waves, a volume that grows through a pull request (and never shrinks), and the one-database
 * one-directory rule.
 */
import { describe, expect, it } from 'vitest';
import { DatabaseChart, SYNC_WAVES, TerminationPolicy } from '../../constructs';
import { collectValidationErrors } from '../../scripts/synthesize';
import { KubeObject, find, seedProps } from './fixtures';
import { CATALOG, environment, gitOpsApp, writtenFiles } from './gitops-fixtures';

const FILE = 'dev/shop/orders/orders.k8s.yaml';

/** The dev environment's `orders` with `size`, and what was written for it. */
function ordersWith(size: string, previous?: Record<string, KubeObject[]>) {
  const app = gitOpsApp(previous);
  const env = environment(app, 'dev', { databases: { orders: { storage: { size } } } });
  return { app, env, chart: env.charts[0], errors: collectValidationErrors(app) };
}

describe('DatabaseChart, given dev\'s orders', () => {
  const { app, chart } = ordersWith('1Gi');
  const files = writtenFiles(app);
  const objects = files[FILE];

  it('is written to <environment>/<namespace>/<name>/<name>.k8s.yaml, one file per database', () => {
    expect(Object.keys(files)).toStrictEqual([FILE]);
    expect(chart.outputFile).toBe(FILE);
    expect(chart.directory).toBe('dev/shop/orders');
    expect(DatabaseChart.isDatabaseChart(chart)).toBe(true);
  });

  it('writes its objects in their construct order: the claims right before the StatefulSet (kubectl apply -f keeps it)', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toStrictEqual([
      'ServiceAccount/orders',
      'Role/orders',
      'RoleBinding/orders',
      'ConfigMap/orders-config',
      'Service/orders-pods',
      'Service/orders',
      'Service/orders-standby',
      'PersistentVolumeClaim/data-orders-0',
      'PersistentVolumeClaim/data-orders-1',
      'StatefulSet/orders',
      'PodDisruptionBudget/orders',
      'PodMonitor/orders',
      'PrometheusRule/orders',
      'ConfigMap/orders-dashboard',
    ]);
  });

  it('annotates sync waves: ServiceAccount, Role, RoleBinding, ConfigMap, Services and disruption budget first; the claims in the StatefulSet\'s wave, before it by kind', () => {
    expect(objects.map((o) => `${o.kind} ${o.metadata.annotations?.['argocd.argoproj.io/sync-wave']}`)).toStrictEqual([
      'ServiceAccount -1', 'Role -1', 'RoleBinding -1', 'ConfigMap -1', 'Service -1', 'Service -1', 'Service -1',
      'PersistentVolumeClaim 0', 'PersistentVolumeClaim 0', 'StatefulSet 0', 'PodDisruptionBudget -1',
      'PodMonitor 1', 'PrometheusRule 1', 'ConfigMap -1',
    ]);
    expect(SYNC_WAVES.PersistentVolumeClaim).toBe(SYNC_WAVES.StatefulSet);
    // The chart's toJson() (Testing.synth, cdk8s synth) renders the same.
    expect(chart.toJson()).toStrictEqual(objects);
  });

  it('leaves the WipeOut hook out of the sync waves (Argo CD runs it after the Application is deleted)', () => {
    const app = gitOpsApp();
    environment(app, 'dev', { databases: { 'orders-scratch': {} } });
    const hook = writtenFiles(app)['dev/shop/orders-scratch/orders-scratch.k8s.yaml'].filter((o) => o.metadata.name === 'orders-scratch-wipeout');
    expect(hook.map((o) => o.kind)).toStrictEqual(['ServiceAccount', 'Role', 'RoleBinding', 'Job']);
    for (const object of hook) expect(object.metadata.annotations?.['argocd.argoproj.io/sync-wave']).toBeUndefined();
  });
});

describe('Growing a database\'s volume through a pull request', () => {
  const before = writtenFiles(ordersWith('1Gi').app)[FILE];
  const grown = ordersWith('2Gi', { [FILE]: before });
  const after = writtenFiles(grown.app)[FILE];

  it('renders a claim change and no change to the StatefulSet\'s claim template or other fields Kubernetes refuses to update', () => {
    expect(grown.errors).toStrictEqual([]);
    for (const name of ['data-orders-0', 'data-orders-1']) {
      expect(find(before, 'PersistentVolumeClaim', name).spec.resources.requests.storage).toBe('1Gi');
      expect(find(after, 'PersistentVolumeClaim', name).spec.resources.requests.storage).toBe('2Gi');
    }
    const [oldSet, newSet] = [find(before, 'StatefulSet', 'orders'), find(after, 'StatefulSet', 'orders')];
    expect(newSet.spec.volumeClaimTemplates).toStrictEqual(oldSet.spec.volumeClaimTemplates);
    for (const field of ['selector', 'serviceName', 'podManagementPolicy', 'persistentVolumeClaimRetentionPolicy']) expect(newSet.spec[field]).toStrictEqual(oldSet.spec[field]);
  });

  it('changes nothing else but the WAL sizes that follow the volume (postgresql.conf), which the sidecar reloads: the pods do not roll', () => {
    const changed = (a: KubeObject[], b: KubeObject[]) => b.filter((o, i) => JSON.stringify(o) !== JSON.stringify(a[i])).map((o) => `${o.kind}/${o.metadata.name}`);
    expect(changed(before, after)).toStrictEqual(['ConfigMap/orders-config', 'PersistentVolumeClaim/data-orders-0', 'PersistentVolumeClaim/data-orders-1']);
    const conf = (objects: KubeObject[]) => find(objects, 'ConfigMap', 'orders-config').data!['postgresql.conf'];
    expect(conf(before)).toContain("max_wal_size = '256MB'");
    expect(conf(after)).toContain("max_wal_size = '512MB'");
  });

  it('renders a claim for a member added in the same pull request, before the StatefulSet that scales to it', () => {
    const app = gitOpsApp({ [FILE]: before });
    environment(app, 'dev', { databases: { orders: { replicas: 3 } } });
    const objects = writtenFiles(app)[FILE];
    expect(objects.map((o) => o.kind).indexOf('StatefulSet')).toBe(objects.findIndex((o) => o.metadata.name === 'data-orders-2') + 1);
  });

  it('fails on a shrink below what the previous synthesis wrote to the same file, naming the claim, both sizes and the fix', () => {
    const shrunk = ordersWith('512Mi', { [FILE]: before });
    expect(shrunk.errors).toStrictEqual(['data-orders-0', 'data-orders-1'].map((claim) =>
      `[dev/orders/Database] storage.size: "512Mi" would shrink the volume claim ${claim}, which dist/${FILE} (the previous synthesis) gives 1Gi: a claim can only grow (the API server refuses a smaller request, and every sync would fail); keep "1Gi" or more, or move the data to a new database with smaller volumes (Bootstrap.fromArchive from this one's archive) and remove this one`));
    // The same size written another way is no shrink; a database new to the file is not checked.
    expect(ordersWith('1024Mi', { [FILE]: before }).errors).toStrictEqual([]);
    expect(ordersWith('512Mi', { 'prod/shop/orders/orders.k8s.yaml': before }).errors).toStrictEqual([]);
  });
});

describe('One database, one directory', () => {
  it('fails on two environments writing to one directory, naming both databases', () => {
    const app = gitOpsApp();
    environment(app, 'prod', { databases: { orders: {} } });
    environment(app, 'prod-eu', { databases: { orders: {} }, directory: 'prod', archivePrefix: 'prod-eu' });
    expect(collectValidationErrors(app)).toStrictEqual([
      '[prod-eu/orders/Database] directory: "prod/shop/orders" is also where prod/orders/Database is written: each database needs a directory of its own (its own Argo CD Application, whose deletion runs its PostDelete hook); give the environments different directories, or the databases different names or namespaces',
    ]);
  });

  it('fails on two databases writing to one directory', () => {
    const app = gitOpsApp();
    new DatabaseChart(app, 'a', { directory: 'prod/shop/orders', name: 'orders', namespace: 'shop', props: seedProps() });
    new DatabaseChart(app, 'b', { directory: 'prod/shop/orders', name: 'orders-eu', namespace: 'shop', props: seedProps({ terminationPolicy: TerminationPolicy.HALT }) });
    expect(collectValidationErrors(app)).toContain('[b/Database] directory: "prod/shop/orders" is also where a/Database is written: each database needs a directory of its own (its own Argo CD Application, whose deletion runs its PostDelete hook); give the environments different directories, or the databases different names or namespaces');
  });
});

describe('Changing the PostgreSQL major version through a pull request', () => {
  /** dev's orders at `version`, and what was written for it. */
  const ordersAt = (version: number, previous?: Record<string, KubeObject[]>) => {
    const app = gitOpsApp(previous);
    // The version is the catalog's: every environment runs the same one.
    environment(app, 'dev', { catalog: { ...CATALOG, orders: { ...CATALOG.orders, version } }, databases: { orders: {} } });
    return { app, errors: collectValidationErrors(app) };
  };
  const before = writtenFiles(ordersAt(16).app)[FILE];

  it('records the major version on the StatefulSet', () => {
    expect(find(before, 'StatefulSet', 'orders').metadata.annotations?.['archived-postgres/postgres-major-version']).toBe('16');
  });

  it('fails, naming the file, both versions and how to move instead: the pods could not start on the old data', () => {
    expect(ordersAt(17, { [FILE]: before }).errors).toStrictEqual([
      `[dev/orders/Database] version: 17 would roll the members of dist/${FILE} (the previous synthesis), whose data directories hold PostgreSQL 16, onto PostgreSQL 17: a major version cannot start on another's data, and the rollout would stop at its first pod with that pod down; keep version: 16. To move to 17, create a new database of version 17 (a new name), copy the data into it logically (pg_dump and pg_restore, or logical replication), point the clients at it, then remove this one`,
    ]);
    expect(ordersAt(16, { [FILE]: before }).errors).toStrictEqual([]);
    // A database new to the file may have any version.
    expect(ordersAt(17, { 'prod/shop/orders/orders.k8s.yaml': before }).errors).toStrictEqual([]);
  });

  it('reads the version of output written before the annotation from the official image\'s tag', () => {
    const unannotated = before.map((o) => o.kind !== 'StatefulSet' ? o : {
      ...o, metadata: { ...o.metadata, annotations: { 'archived-postgres/termination-policy': 'Delete' } },
    });
    expect(ordersAt(17, { [FILE]: unannotated }).errors).toHaveLength(1);
    expect(ordersAt(17, { [FILE]: unannotated }).errors[0]).toContain('hold PostgreSQL 16, onto PostgreSQL 17');
  });
});
