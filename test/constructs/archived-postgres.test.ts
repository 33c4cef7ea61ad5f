/**
 * ArchivedPostgres (constructs/archived-postgres.ts): the objects it renders for the seed example,
 * their names and construct ids, the props' defaults, and how the database grows after construction.
 * What each piece renders is specified in the file named after it.
 */
import { ApiObject, Chart } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { ArchivedPostgres, ArchiveStorage, TerminationPolicy } from '../../constructs';
import { TEST_ARCHIVER_IMAGE, databaseChart, find, postgresContainer, seedProps, synth, synthDatabase, testApp } from './fixtures';

describe('ArchivedPostgres, given the seed example (demo/wal-postgres, 2 replicas, S3 bucket kubedb)', () => {
  const { db, objects } = synthDatabase(seedProps());
  const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');

  it('synthesizes the same objects as the reviewed snapshot', () => {
    expect(objects).toMatchSnapshot();
  });

  it('keeps the construct ids of its objects (charts and later constructs find objects by them: renaming one breaks them)', () => {
    const ids = db.apiObjects.map((o) => o.node.path);
    expect(ids).toStrictEqual([
      'test/wal-postgres/ServiceAccount',
      'test/wal-postgres/PodRole/Role',
      'test/wal-postgres/PodRole/RoleBinding',
      'test/wal-postgres/Config',
      'test/wal-postgres/GoverningService',
      'test/wal-postgres/PrimaryService',
      'test/wal-postgres/StandbyService',
      'test/wal-postgres/DataVolumeClaim0',
      'test/wal-postgres/DataVolumeClaim1',
      'test/wal-postgres/StatefulSet',
      'test/wal-postgres/DisruptionBudget',
      'test/wal-postgres/Monitoring/PodMonitor',
      'test/wal-postgres/Monitoring/Rules',
      'test/wal-postgres/Monitoring/Dashboard',
    ]);
    expect(ids).toMatchSnapshot();
  });

  it('names every object after the database, with no hash suffix, in namespace demo', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toStrictEqual([
      'ServiceAccount/demo/wal-postgres',
      'Role/demo/wal-postgres',
      'RoleBinding/demo/wal-postgres',
      'ConfigMap/demo/wal-postgres-config',
      'Service/demo/wal-postgres-pods',
      'Service/demo/wal-postgres',
      'Service/demo/wal-postgres-standby',
      'PersistentVolumeClaim/demo/data-wal-postgres-0',
      'PersistentVolumeClaim/demo/data-wal-postgres-1',
      'StatefulSet/demo/wal-postgres',
      'PodDisruptionBudget/demo/wal-postgres',
      'PodMonitor/demo/wal-postgres',
      'PrometheusRule/demo/wal-postgres',
      'ConfigMap/demo/wal-postgres-dashboard',
    ]);
  });

  it('selects pods by two stable labels only (a StatefulSet selector can never change)', () => {
    const selector = { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': 'wal-postgres' };
    expect(db.selectorLabels).toStrictEqual(selector);
    expect(Object.isFrozen(db.selectorLabels)).toBe(true);
    expect(statefulSet.spec.selector).toStrictEqual({ matchLabels: selector });
    expect(find(objects, 'PodDisruptionBudget', 'wal-postgres').spec.selector).toStrictEqual({ matchLabels: selector });
    expect(find(objects, 'Service', 'wal-postgres-pods').spec.selector).toStrictEqual(selector);
    // The read-only Service adds the role label the sidecars patch (postgres-services.test.ts).
    expect(find(objects, 'Service', 'wal-postgres-standby').spec.selector).toStrictEqual({ ...selector, 'archived-postgres/role': 'standby' });
    expect(statefulSet.spec.template.metadata.labels).toMatchObject(selector);
  });

  it('labels every object and pod with the selector labels, its component and its manager', () => {
    const labels = { ...db.selectorLabels, 'app.kubernetes.io/component': 'database', 'app.kubernetes.io/managed-by': 'cdk8s' };
    expect(db.labels).toStrictEqual(labels);
    // The dashboard's ConfigMap has Grafana's label too.
    for (const object of objects) expect(object.metadata.labels).toStrictEqual(object.metadata.name.endsWith('-dashboard') ? { ...labels, grafana_dashboard: '1' } : labels);
    expect(statefulSet.spec.template.metadata.labels).toStrictEqual(labels);
  });

  it('renders no Secret object and no secret value', () => {
    expect(objects.filter((o) => o.kind === 'Secret')).toStrictEqual([]);
    for (const container of statefulSet.spec.template.spec.containers) {
      // Passwords are mounted files: their variables name the file, never hold a value.
      const files = container.env.filter((e: any) => /PASSWORD_FILE$|PASSFILE$/.test(e.name));
      expect(files.every((e: any) => e.value.startsWith('/etc/postgresql-credentials/') || e.value === '/tmp/replication.pgpass')).toBe(true);
      const envValues = container.env.filter((e: any) => /KEY|SECRET|PASSWORD|TOKEN/.test(e.name) && !files.includes(e));
      expect(envValues.length).toBeGreaterThan(0);
      expect(envValues.every((e: any) => e.value === undefined && e.valueFrom?.secretKeyRef)).toBe(true);
    }
  });

  it('has a one-at-a-time disruption budget', () => {
    expect(find(objects, 'PodDisruptionBudget', 'wal-postgres').spec.maxUnavailable).toBe(1);
  });
});

describe('ArchivedPostgres options', () => {
  it('places the archive under the prefix: {bucket}/{prefix}/kubedb/{namespace}/{name}/archive', () => {
    const { db, objects } = synthDatabase(seedProps({
      namespace: 'prod',
      archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'http://minio.storage.svc:9000', bucket: 'backups', prefix: 'eu/west' }) },
    }), 'orders');
    expect(db.archivePath).toBe('eu/west/kubedb/prod/orders/archive');
    expect(db.archiveStorage.backend).toBe('s3');
    expect(postgresContainer(find(objects, 'StatefulSet', 'orders')).env).toContainEqual({ name: 'ARCHIVER_REPOSITORY', value: 's3://backups/eu/west/kubedb/prod/orders/archive' });
    expect(objects.every((o) => o.metadata.namespace === 'prod')).toBe(true);
  });

  it('defaults to one member, the official image of the version (fully qualified), the chart namespace and the {name}-auth Secret', () => {
    const { db, objects } = synthDatabase({ version: 16, archiver: seedProps().archiver });
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    expect(statefulSet.spec.replicas).toBe(1);
    expect(db.replicas).toBe(1);
    expect(postgresContainer(statefulSet).image).toBe('docker.io/library/postgres:16');
    expect(statefulSet.metadata.namespace).toBe('demo');
    expect(db.authSecretName).toBe('wal-postgres-auth');
    expect(db.replicationSecretName).toBe('wal-postgres-replication');
    expect(statefulSet.spec.template.spec.volumes).toContainEqual({ name: 'replication-password', secret: { secretName: 'wal-postgres-replication', items: [{ key: 'password', path: 'password' }], defaultMode: 0o440 } });
    expect(find(objects, 'PersistentVolumeClaim', 'data-wal-postgres-0').spec).toStrictEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } });
    expect(objects.filter((o) => o.kind === 'PersistentVolumeClaim')).toHaveLength(1);
  });

  it('runs the app\'s archiver image (ArchiverImage.use) in the installer, the sidecar and the WipeOut Job', () => {
    const app = testApp({ archiverImage: 'ghcr.io/team-a/pg-wal-archiver:0.1.0@sha256:' + 'a'.repeat(64) });
    const chart = new Chart(app, 'test', { namespace: 'demo' });
    new ArchivedPostgres(chart, 'wal-postgres', seedProps({ terminationPolicy: TerminationPolicy.WIPE_OUT }));
    const objects = synth(chart);
    const pod = find(objects, 'StatefulSet', 'wal-postgres').spec.template.spec;
    const job = find(objects, 'Job', 'wal-postgres-wipeout').spec.template.spec;
    expect([...pod.initContainers, ...pod.containers.slice(1), ...job.containers].map((c: any) => c.image)).toStrictEqual(Array(3).fill(`ghcr.io/team-a/pg-wal-archiver:0.1.0@sha256:${'a'.repeat(64)}`));
  });

  it('uses the given PostgreSQL image (pinned by digest here), auth Secret and resources', () => {
    const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
    const { objects } = synthDatabase(seedProps({
      image: `registry.example.com/postgres:15.8@${digest}`,
      authSecretName: 'pg-superuser',
      replication: { secretName: 'pg-replication' },
      resources: { requests: { cpu: '2', memory: '4Gi' } },
      archiver: { ...seedProps().archiver, resources: { requests: { cpu: '1' }, limits: { memory: '1Gi' } } },
    }));
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    const postgres = postgresContainer(statefulSet);
    expect(postgres.image).toBe(`registry.example.com/postgres:15.8@${digest}`);
    expect(statefulSet.spec.template.spec.initContainers[0].image).toBe(TEST_ARCHIVER_IMAGE);
    const sidecar = statefulSet.spec.template.spec.containers.find((c: any) => c.name === 'archiver');
    expect(sidecar.image).toBe(TEST_ARCHIVER_IMAGE);
    // The memory limit given alone is the request too, as Kubernetes makes it.
    expect(sidecar.resources).toStrictEqual({ requests: { cpu: '1', memory: '1Gi', 'ephemeral-storage': '128Mi' }, limits: { memory: '1Gi', 'ephemeral-storage': '512Mi' } });
    expect(statefulSet.spec.template.spec.volumes).toContainEqual({ name: 'replication-password', secret: { secretName: 'pg-replication', items: [{ key: 'password', path: 'password' }], defaultMode: 0o440 } });
    expect(statefulSet.spec.template.spec.volumes).toContainEqual({ name: 'superuser-password', secret: { secretName: 'pg-superuser', items: [{ key: 'password', path: 'password' }], defaultMode: 0o440 } });
    expect(postgres.resources).toStrictEqual({ requests: { cpu: '2', memory: '4Gi', 'ephemeral-storage': '256Mi' }, limits: { memory: '4Gi', 'ephemeral-storage': '1Gi' } });
  });
});

describe('ArchivedPostgres grows after construction', () => {
  it('annotates every object with addAnnotation(), e.g. for Argo CD or Flux', () => {
    // GIVEN
    const { db, chart } = databaseChart(seedProps());
    // WHEN
    db.addAnnotation('argocd.argoproj.io/sync-wave', '1');
    // THEN
    const objects = synth(chart);
    expect(objects).toHaveLength(14);
    for (const object of objects) expect(object.metadata.annotations).toMatchObject({ 'argocd.argoproj.io/sync-wave': '1' });
    // The StatefulSet keeps its own annotation beside it.
    expect(find(objects, 'StatefulSet', 'wal-postgres').metadata.annotations).toStrictEqual({
      'archived-postgres/termination-policy': 'Delete',
      'archived-postgres/postgres-major-version': '15',
      'argocd.argoproj.io/sync-wave': '1',
    });
  });

  it('counts an object added inside it among its apiObjects, so that addAnnotation() reaches it too', () => {
    // GIVEN
    const { db, chart } = databaseChart(seedProps());
    // WHEN
    new ApiObject(db, 'Extra', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'wal-postgres-extra' } });
    db.addAnnotation('example.com/owner', 'team-a');
    // THEN
    expect(db.apiObjects.map((o) => o.node.id)).toContain('Extra');
    expect(find(synth(chart), 'ConfigMap', 'wal-postgres-extra').metadata.annotations).toStrictEqual({ 'example.com/owner': 'team-a' });
  });

  it('gives a PodMonitor of one\'s own what it needs: the selector labels and the sidecar\'s metrics port', () => {
    // GIVEN a database without its own monitoring objects
    const { db, chart } = databaseChart(seedProps({ monitoring: { enabled: false } }));
    // WHEN
    new ApiObject(chart, 'PodMonitor', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: { name: 'wal-postgres' },
      spec: { selector: { matchLabels: db.selectorLabels }, podMetricsEndpoints: [{ port: 'metrics' }] },
    });
    // THEN
    const objects = synth(chart);
    const pod = find(objects, 'StatefulSet', 'wal-postgres').spec.template;
    const monitor = find(objects, 'PodMonitor', 'wal-postgres');
    expect(pod.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    const sidecar = pod.spec.containers.find((c: any) => c.name === 'archiver');
    expect(sidecar.ports).toStrictEqual([{ name: 'metrics', containerPort: 9188, protocol: 'TCP' }]);
  });
});
