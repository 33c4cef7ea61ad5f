import { Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { renderArchiveCommand, renderRestoreCommand } from '../../contract';
import { ArchiveStorage, TerminationPolicy } from '../../constructs';
import { envOf, find, postgresContainer, seedProps, synthDatabase } from './fixtures';

describe('ArchivedPostgres, given the seed example (demo/wal-postgres, 2 replicas, S3 bucket kubedb)', () => {
  const { objects } = synthDatabase(seedProps());
  const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
  const postgres = postgresContainer(statefulSet);
  const config = find(objects, 'ConfigMap', 'wal-postgres-config');

  it('synthesizes the same objects as the reviewed snapshot', () => {
    expect(objects).toMatchSnapshot();
  });

  it('names every object after the database, with no hash suffix, in namespace demo', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toStrictEqual([
      'ServiceAccount/demo/wal-postgres',
      'ConfigMap/demo/wal-postgres-config',
      'Service/demo/wal-postgres-pods',
      'Service/demo/wal-postgres',
      'Service/demo/wal-postgres-standby',
      'StatefulSet/demo/wal-postgres',
      'PodDisruptionBudget/demo/wal-postgres',
    ]);
  });

  it('selects pods by two stable labels only (a StatefulSet selector can never change)', () => {
    const selector = { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': 'wal-postgres' };
    expect(statefulSet.spec.selector).toStrictEqual({ matchLabels: selector });
    expect(find(objects, 'PodDisruptionBudget', 'wal-postgres').spec.selector).toStrictEqual({ matchLabels: selector });
    expect(find(objects, 'Service', 'wal-postgres-pods').spec.selector).toStrictEqual(selector);
    expect(find(objects, 'Service', 'wal-postgres-standby').spec.selector).toStrictEqual(selector);
    expect(statefulSet.spec.template.metadata.labels).toMatchObject(selector);
  });

  it('routes the primary Service to pod 0 only', () => {
    expect(find(objects, 'Service', 'wal-postgres').spec.selector).toStrictEqual({
      'app.kubernetes.io/name': 'postgres',
      'app.kubernetes.io/instance': 'wal-postgres',
      'statefulset.kubernetes.io/pod-name': 'wal-postgres-0',
    });
  });

  it('governs the pods with a headless Service that publishes not-ready pods', () => {
    const governing = find(objects, 'Service', 'wal-postgres-pods');
    expect(statefulSet.spec.serviceName).toBe('wal-postgres-pods');
    expect(governing.spec.clusterIP).toBe('None');
    expect(governing.spec.publishNotReadyAddresses).toBe(true);
  });

  it('claims a 1Gi ReadWriteOnce volume of class standard per member', () => {
    expect(statefulSet.spec.replicas).toBe(2);
    expect(statefulSet.spec.volumeClaimTemplates).toStrictEqual([
      {
        metadata: { name: 'data', labels: { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': 'wal-postgres' } },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'standard', resources: { requests: { storage: '1Gi' } } },
      },
    ]);
    expect(postgres.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/postgresql/data' });
  });

  it('archives with the archiver every 60 s at most, from the primary', () => {
    const conf = config.data!['postgresql.conf'];
    expect(conf).toContain("archive_mode = on\n");
    expect(conf).toContain(`archive_command = '${renderArchiveCommand()}'\n`);
    expect(renderArchiveCommand()).toBe('/opt/archiver/bin/archiver wal-push %p');
    expect(conf).toContain('archive_timeout = 60\n');
    expect(conf).toContain('wal_level = replica\n');
    expect(conf).toContain(`restore_command = '${renderRestoreCommand()}'\n`);
    expect(renderRestoreCommand()).toBe('/opt/archiver/bin/archiver wal-fetch %f %p');
  });

  it('gives the archiver KubeDB\'s archive location and the Secret\'s keys by reference', () => {
    const env = envOf(postgres);
    expect(env.ARCHIVER_REPOSITORY).toBe('s3://kubedb/kubedb/demo/wal-postgres/archive');
    expect(env.ARCHIVER_S3_ENDPOINT).toBe('https://s3.amazonaws.com');
    expect(env.AWS_ACCESS_KEY_ID).toStrictEqual({ secretKeyRef: { name: 's3-secret', key: 'AWS_ACCESS_KEY_ID' } });
    expect(env.AWS_SECRET_ACCESS_KEY).toStrictEqual({ secretKeyRef: { name: 's3-secret', key: 'AWS_SECRET_ACCESS_KEY' } });
    expect(env.POSTGRES_PASSWORD).toStrictEqual({ secretKeyRef: { name: 'wal-postgres-auth', key: 'password' } });
    expect(env.ARCHIVER_SPOOL).toBe('/var/lib/postgresql/data/archiver-spool');
    expect(env.PGDATA).toBe('/var/lib/postgresql/data/pgdata');
  });

  it('renders no Secret object and no secret value', () => {
    expect(objects.filter((o) => o.kind === 'Secret')).toStrictEqual([]);
    for (const container of statefulSet.spec.template.spec.containers) {
      const envValues = container.env.filter((e: any) => /KEY|SECRET|PASSWORD|TOKEN/.test(e.name));
      expect(envValues.length).toBeGreaterThan(0);
      expect(envValues.every((e: any) => e.value === undefined && e.valueFrom?.secretKeyRef)).toBe(true);
    }
  });

  it('runs the background archiver as the `archiver` sidecar, with the same archive settings and data volume', () => {
    const containers = statefulSet.spec.template.spec.containers;
    expect(containers.map((c: any) => c.name)).toStrictEqual(['postgres', 'archiver']);
    const sidecar = containers[1];
    expect(sidecar.image).toBe('pg-wal-archiver:0.1.0');
    expect(sidecar.command).toStrictEqual(['/archiver/bin/node', '/archiver/lib/archiver.cjs', 'daemon']);
    const { ARCHIVER_DAEMON_IDLE_SECONDS, ...sidecarEnv } = envOf(sidecar);
    const { ARCHIVER_DAEMON, POD_NAME, PGDATA, POSTGRES_USER, POSTGRES_PASSWORD, PGPASSWORD, ...archiverEnv } = envOf(postgres);
    // Never idles out (a container that exits is restarted with a back-off); the calls never start their own.
    expect(ARCHIVER_DAEMON_IDLE_SECONDS).toBe('0');
    expect(ARCHIVER_DAEMON).toBe('external');
    expect(sidecarEnv).toStrictEqual(archiverEnv);
    expect(sidecar.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/postgresql/data' });
    expect(postgres.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/postgresql/data' });
    expect(sidecar.resources).toStrictEqual({ requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } });
    // Nothing of the superuser's reaches the sidecar.
    expect(sidecar.env.some((e: any) => e.name.includes('PASSWORD'))).toBe(false);
  });

  it('installs the archiver from its image into a volume the postgres container reads', () => {
    const init = statefulSet.spec.template.spec.initContainers;
    expect(init).toHaveLength(1);
    expect(init[0].image).toBe('pg-wal-archiver:0.1.0');
    expect(init[0].command).toStrictEqual(['/archiver/bin/node', '/archiver/lib/archiver.cjs', 'install', '/opt/archiver']);
    expect(init[0].volumeMounts).toStrictEqual([{ name: 'archiver', mountPath: '/opt/archiver' }]);
    expect(postgres.volumeMounts).toContainEqual({ name: 'archiver', mountPath: '/opt/archiver', readOnly: true });
  });

  it('decides the role from the pod ordinal in a start-up script readable in the ConfigMap', () => {
    expect(postgres.command).toStrictEqual(['/bin/bash', '/etc/postgresql-archived/start.sh']);
    const script = config.data!['start.sh'];
    expect(script).toContain('ordinal="${POD_NAME##*-}"');
    expect(script).toContain('if [ "$ordinal" = "0" ]; then');
    expect(script).toContain('pg_basebackup --host="wal-postgres-0.wal-postgres-pods"');
    expect(script).toContain('touch "$PGDATA/standby.signal"');
    expect(config.data!['postgresql.conf']).toContain("primary_conninfo = 'host=wal-postgres-0.wal-postgres-pods port=5432 user=postgres'");
  });

  it('runs as the postgres user with no privileges, capabilities or writable root filesystem', () => {
    const pod = statefulSet.spec.template.spec;
    expect(pod.securityContext).toStrictEqual({
      runAsUser: 999,
      runAsGroup: 999,
      runAsNonRoot: true,
      fsGroup: 999,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    });
    for (const container of [...pod.containers, ...pod.initContainers]) {
      expect(container.securityContext).toStrictEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        privileged: false,
        capabilities: { drop: ['ALL'] },
      });
    }
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe('wal-postgres');
  });

  it('has probes, requests and a one-at-a-time disruption budget', () => {
    expect(postgres.readinessProbe.exec.command).toStrictEqual(['pg_isready', '--quiet', '--host=/var/run/postgresql', '--port=5432']);
    expect(postgres.livenessProbe.exec.command[2]).toBe('pg_isready --quiet --host=/var/run/postgresql --port=5432; [ $? -ne 2 ]');
    expect(postgres.startupProbe.failureThreshold * postgres.startupProbe.periodSeconds).toBe(3600);
    expect(postgres.resources).toStrictEqual({ requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '1Gi' } });
    expect(find(objects, 'PodDisruptionBudget', 'wal-postgres').spec.maxUnavailable).toBe(1);
  });

  it('deletes the volume claims with the StatefulSet under the default Delete policy', () => {
    expect(statefulSet.spec.persistentVolumeClaimRetentionPolicy).toStrictEqual({ whenDeleted: 'Delete', whenScaled: 'Retain' });
    expect(statefulSet.metadata.annotations).toStrictEqual({ 'archived-postgres/termination-policy': 'Delete' });
  });

  it('rolls the pods when the configuration changes, and only then', () => {
    const annotation = (props = seedProps()) =>
      find(synthDatabase(props).objects, 'StatefulSet', 'wal-postgres').spec.template.metadata.annotations['archived-postgres/config-sha256'];
    expect(annotation()).toMatch(/^[0-9a-f]{64}$/);
    expect(annotation()).toBe(annotation());
    expect(annotation(seedProps({ archiver: { ...seedProps().archiver, archiveTimeout: Duration.seconds(120) } }))).not.toBe(annotation());
  });
});

describe('ArchivedPostgres options', () => {
  it('mounts the GCS service-account key as a file and references the project id', () => {
    const { objects } = synthDatabase(seedProps({
      archiver: { storage: ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb', prefix: 'team-a/' }) },
    }));
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    const postgres = postgresContainer(statefulSet);
    const env = envOf(postgres);
    expect(env.ARCHIVER_REPOSITORY).toBe('gs://kubedb/team-a/kubedb/demo/wal-postgres/archive');
    expect(env.GOOGLE_PROJECT_ID).toStrictEqual({ secretKeyRef: { name: 'gcs-secret', key: 'GOOGLE_PROJECT_ID' } });
    expect(env.GOOGLE_APPLICATION_CREDENTIALS).toBe('/var/run/secrets/archiver/gcs/service-account.json');
    expect(env.AWS_ACCESS_KEY_ID).toBeUndefined();
    expect(statefulSet.spec.template.spec.volumes).toContainEqual({
      name: 'gcs-key',
      secret: { secretName: 'gcs-secret', items: [{ key: 'GOOGLE_SERVICE_ACCOUNT_JSON_KEY', path: 'service-account.json' }], defaultMode: 0o440 },
    });
    expect(postgres.volumeMounts).toContainEqual({ name: 'gcs-key', mountPath: '/var/run/secrets/archiver/gcs', readOnly: true });
    // The sidecar does the uploads: it needs the key at the same path.
    const sidecar = statefulSet.spec.template.spec.containers.find((c: any) => c.name === 'archiver');
    expect(sidecar.volumeMounts).toContainEqual({ name: 'gcs-key', mountPath: '/var/run/secrets/archiver/gcs', readOnly: true });
    expect(envOf(sidecar).GOOGLE_APPLICATION_CREDENTIALS).toBe('/var/run/secrets/archiver/gcs/service-account.json');
  });

  it('places the archive under the prefix: {bucket}/{prefix}/kubedb/{namespace}/{name}/archive', () => {
    const { db, objects } = synthDatabase(seedProps({
      namespace: 'prod',
      archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'http://minio.storage.svc:9000', bucket: 'backups', prefix: 'eu/west' }) },
    }), 'orders');
    expect(db.archivePath).toBe('eu/west/kubedb/prod/orders/archive');
    expect(envOf(postgresContainer(find(objects, 'StatefulSet', 'orders'))).ARCHIVER_REPOSITORY).toBe('s3://backups/eu/west/kubedb/prod/orders/archive');
    expect(objects.every((o) => o.metadata.namespace === 'prod')).toBe(true);
  });

  it('defaults to one member, the official image of the version, and the chart namespace', () => {
    const { objects } = synthDatabase({ version: 16, archiver: seedProps().archiver });
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    expect(statefulSet.spec.replicas).toBe(1);
    expect(postgresContainer(statefulSet).image).toBe('postgres:16');
    expect(statefulSet.metadata.namespace).toBe('demo');
    expect(statefulSet.spec.volumeClaimTemplates[0].spec).toStrictEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } });
  });

  it('renders archiveTimeout in seconds', () => {
    const { objects } = synthDatabase(seedProps({ archiver: { ...seedProps().archiver, archiveTimeout: Duration.minutes(5) } }));
    expect(find(objects, 'ConfigMap', 'wal-postgres-config').data!['postgresql.conf']).toContain('archive_timeout = 300\n');
  });

  it('keeps the volume claims and tells Argo CD and Flux not to prune under DoNotTerminate', () => {
    const { objects } = synthDatabase(seedProps({ terminationPolicy: TerminationPolicy.DO_NOT_TERMINATE }));
    expect(find(objects, 'StatefulSet', 'wal-postgres').spec.persistentVolumeClaimRetentionPolicy).toStrictEqual({ whenDeleted: 'Retain', whenScaled: 'Retain' });
    for (const object of objects) {
      expect(object.metadata.annotations).toMatchObject({
        'argocd.argoproj.io/sync-options': 'Delete=false',
        'kustomize.toolkit.fluxcd.io/prune': 'disabled',
      });
    }
  });

  it('keeps the volume claims under Halt and deletes them under WipeOut', () => {
    const policy = (terminationPolicy: TerminationPolicy) =>
      find(synthDatabase(seedProps({ terminationPolicy })).objects, 'StatefulSet', 'wal-postgres').spec.persistentVolumeClaimRetentionPolicy.whenDeleted;
    expect(policy(TerminationPolicy.HALT)).toBe('Retain');
    expect(policy(TerminationPolicy.WIPE_OUT)).toBe('Delete');
  });

  it('uses the given images, auth Secret and resources', () => {
    const { objects } = synthDatabase(seedProps({
      image: 'registry.example.com/postgres:15.8',
      authSecretName: 'pg-superuser',
      resources: { requests: { cpu: '2', memory: '4Gi' } },
      archiver: { ...seedProps().archiver, image: 'registry.example.com/pg-wal-archiver:1.2.3', resources: { requests: { cpu: '1' }, limits: { memory: '1Gi' } } },
    }));
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    const postgres = postgresContainer(statefulSet);
    expect(postgres.image).toBe('registry.example.com/postgres:15.8');
    expect(statefulSet.spec.template.spec.initContainers[0].image).toBe('registry.example.com/pg-wal-archiver:1.2.3');
    const sidecar = statefulSet.spec.template.spec.containers.find((c: any) => c.name === 'archiver');
    expect(sidecar.image).toBe('registry.example.com/pg-wal-archiver:1.2.3');
    expect(sidecar.resources).toStrictEqual({ requests: { cpu: '1', memory: '256Mi' }, limits: { memory: '1Gi' } });
    expect(envOf(postgres).PGPASSWORD).toStrictEqual({ secretKeyRef: { name: 'pg-superuser', key: 'password' } });
    expect(postgres.resources).toStrictEqual({ requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '4Gi' } });
  });
});
