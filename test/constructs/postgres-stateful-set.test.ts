/**
 * PostgresStatefulSet (constructs/postgres-stateful-set.ts): the pod of every member (the postgres
 * container, the archiver's installer and sidecar, security, probes, volumes) and what can be
 * added to it after construction.
 */
import { Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { CLAIM_TEMPLATE_SIZE, checkDataVolume, dataVolumeClaimName } from '../../constructs';
import { DAEMON_NODE_FLAGS } from '../../contract';
import { collectValidationErrors } from '../../scripts/synthesize';
import { container, databaseChart, envOf, find, postgresContainer, seedProps, synth, synthDatabase, TEST_ARCHIVER_IMAGE } from './fixtures';

describe('PostgresStatefulSet, given the seed example', () => {
  const { objects } = synthDatabase(seedProps());
  const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
  const postgres = postgresContainer(statefulSet);
  const config = find(objects, 'ConfigMap', 'wal-postgres-config');

  it('claims a 1Gi ReadWriteOnce volume of class standard per member, rendered before the StatefulSet as the controller names it', () => {
    expect(statefulSet.spec.replicas).toBe(2);
    const claims = objects.filter((o) => o.kind === 'PersistentVolumeClaim');
    expect(claims.map((c) => c.metadata.name)).toStrictEqual(['data-wal-postgres-0', 'data-wal-postgres-1']);
    expect(claims.map((c) => dataVolumeClaimName('wal-postgres', claims.indexOf(c)))).toStrictEqual(['data-wal-postgres-0', 'data-wal-postgres-1']);
    for (const claim of claims) {
      expect(claim.metadata.namespace).toBe('demo');
      expect(claim.metadata.labels).toStrictEqual(statefulSet.metadata.labels);
      expect(claim.spec).toStrictEqual({ accessModes: ['ReadWriteOnce'], storageClassName: 'standard', resources: { requests: { storage: '1Gi' } } });
    }
    expect(objects.indexOf(claims[1]) + 1).toBe(objects.indexOf(statefulSet));
    expect(postgres.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/postgresql/data' });
  });

  it('keeps its claim template at CLAIM_TEMPLATE_SIZE whatever the size: a template can never change, a claim can grow', () => {
    expect(CLAIM_TEMPLATE_SIZE).toBe('512Mi');
    expect(statefulSet.spec.volumeClaimTemplates).toStrictEqual([
      {
        metadata: { name: 'data', labels: { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': 'wal-postgres' } },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'standard', resources: { requests: { storage: '512Mi' } } },
      },
    ]);
    const grown = synthDatabase(seedProps({ storage: { ...seedProps().storage, size: '20Gi' } })).objects;
    expect(find(grown, 'StatefulSet', 'wal-postgres').spec.volumeClaimTemplates).toStrictEqual(statefulSet.spec.volumeClaimTemplates);
    expect(find(grown, 'PersistentVolumeClaim', 'data-wal-postgres-1').spec.resources).toStrictEqual({ requests: { storage: '20Gi' } });
  });

  it('renders no claim for replicas that validation refuses', () => {
    for (const replicas of [0, 1.5, -1]) expect(databaseChart(seedProps({ replicas })).db.statefulSet.dataVolumeClaims).toStrictEqual([]);
    expect(databaseChart(seedProps({ replicas: 1000 })).db.statefulSet.dataVolumeClaims).toHaveLength(32);
  });

  it('gives the archiver KubeDB\'s archive location and the Secret\'s keys by reference', () => {
    const env = envOf(postgres);
    expect(env.ARCHIVER_REPOSITORY).toBe('s3://kubedb/kubedb/demo/wal-postgres/archive');
    expect(env.ARCHIVER_S3_ENDPOINT).toBe('https://s3.amazonaws.com');
    expect(env.AWS_ACCESS_KEY_ID).toStrictEqual({ secretKeyRef: { name: 's3-secret', key: 'AWS_ACCESS_KEY_ID', optional: true } });
    expect(env.AWS_SECRET_ACCESS_KEY).toStrictEqual({ secretKeyRef: { name: 's3-secret', key: 'AWS_SECRET_ACCESS_KEY', optional: true } });
    expect(env.ARCHIVER_SPOOL).toBe('/var/lib/postgresql/data/archiver-spool');
    expect(env.PGDATA).toBe('/var/lib/postgresql/data/pgdata');
  });

  it('runs the background archiver as the `archiver` sidecar, with the same archive settings and data volume', () => {
    const containers = statefulSet.spec.template.spec.containers;
    expect(containers.map((c: any) => c.name)).toStrictEqual(['postgres', 'archiver']);
    const sidecar = containers[1];
    expect(sidecar.image).toBe(TEST_ARCHIVER_IMAGE);
    expect(sidecar.command).toStrictEqual(['/archiver/bin/node', ...DAEMON_NODE_FLAGS, '/archiver/lib/archiver.cjs', 'daemon']);
    const { ARCHIVER_DAEMON_IDLE_SECONDS, POD_NAME: sidecarPodName, PGHOST, PGUSER, ARCHIVER_BACKUP_AT_READY, ARCHIVER_BACKUP_FROM, ARCHIVER_METRICS_PORT, PGDATA: sidecarPgdata, ARCHIVER_ROLE_LABEL, ARCHIVER_CONFIG_DIR, ...sidecarEnv } = envOf(sidecar);
    const { ARCHIVER_DAEMON, ARCHIVER_BOOTSTRAP, POD_NAME, PGDATA, POSTGRES_USER, POSTGRES_PASSWORD_FILE, ...archiverEnv } = envOf(postgres);
    const { ARCHIVER_SUPERUSER_PASSWORD_FILE, ARCHIVER_REPLICATION_PASSWORD_FILE, ARCHIVER_REPLICATION_PASSFILE, ...sidecarArchiverEnv } = sidecarEnv;
    // Never idles out (a container that exits is restarted with a back-off); the calls never start their own.
    expect(ARCHIVER_DAEMON_IDLE_SECONDS).toBe('0');
    expect(ARCHIVER_DAEMON).toBe('external');
    expect(sidecarArchiverEnv).toStrictEqual(archiverEnv);
    expect(sidecar.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/postgresql/data' });
    // The default bootstrap and backups.
    expect(ARCHIVER_BOOTSTRAP).toBe('restore');
    expect([ARCHIVER_BACKUP_AT_READY, ARCHIVER_BACKUP_FROM]).toStrictEqual(['on', 'primary']);
    // The sidecar takes base backups: its role from the pod's name, the server over the Unix socket as the superuser.
    expect(sidecarPodName).toStrictEqual(POD_NAME);
    expect(POD_NAME).toStrictEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(PGHOST).toBe('/var/run/postgresql');
    expect(PGUSER).toBe('postgres');
    // Its metrics, and the data directory it finds pg_wal in for them: the server's.
    expect(ARCHIVER_METRICS_PORT).toBe('9188');
    expect(sidecarPgdata).toBe(PGDATA);
    // It labels its pod with its server's role (pod-role.test.ts).
    expect(ARCHIVER_ROLE_LABEL).toBe('on');
    expect(sidecar.volumeMounts).toContainEqual({ name: 'run', mountPath: '/var/run/postgresql', readOnly: true });
    expect(postgres.volumeMounts).toContainEqual({ name: 'run', mountPath: '/var/run/postgresql' });
    expect(postgres.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/postgresql/data' });
    expect(sidecar.resources).toStrictEqual({ requests: { cpu: '100m', memory: '256Mi', 'ephemeral-storage': '128Mi' }, limits: { memory: '512Mi', 'ephemeral-storage': '512Mi' } });
    // No password in any environment: the sidecar reads the mounted Secrets (below).
    expect([...sidecar.env, ...postgres.env].some((e: any) => e.valueFrom?.secretKeyRef?.name?.startsWith('wal-postgres-'))).toBe(false);
    expect([ARCHIVER_SUPERUSER_PASSWORD_FILE, ARCHIVER_REPLICATION_PASSWORD_FILE, ARCHIVER_REPLICATION_PASSFILE]).toStrictEqual([
      '/etc/postgresql-credentials/superuser/password',
      '/etc/postgresql-credentials/replication/password',
      '/tmp/replication.pgpass',
    ]);
  });

  it('mounts the password Secrets as volumes, updated in place on rotation: both in the sidecar, the superuser\'s alone in the postgres container for initdb', () => {
    const [postgres, sidecar] = statefulSet.spec.template.spec.containers;
    const volumes = statefulSet.spec.template.spec.volumes;
    expect(volumes).toContainEqual({ name: 'superuser-password', secret: { secretName: 'wal-postgres-auth', items: [{ key: 'password', path: 'password' }], defaultMode: 0o440 } });
    expect(volumes).toContainEqual({ name: 'replication-password', secret: { secretName: 'wal-postgres-replication', items: [{ key: 'password', path: 'password' }], defaultMode: 0o440 } });
    expect(sidecar.volumeMounts.filter((m: any) => m.name.endsWith('-password'))).toStrictEqual([
      { name: 'superuser-password', mountPath: '/etc/postgresql-credentials/superuser', readOnly: true },
      { name: 'replication-password', mountPath: '/etc/postgresql-credentials/replication', readOnly: true },
    ]);
    expect(postgres.volumeMounts.filter((m: any) => m.name.endsWith('-password'))).toStrictEqual([
      { name: 'superuser-password', mountPath: '/etc/postgresql-credentials/superuser', readOnly: true },
    ]);
    expect(envOf(postgres).POSTGRES_PASSWORD_FILE).toBe('/etc/postgresql-credentials/superuser/password');
    // The passfile the sidecar writes is in the volume both containers mount.
    for (const c of [postgres, sidecar]) expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
  });

  it('installs the archiver from its image into a volume the postgres container reads', () => {
    const init = statefulSet.spec.template.spec.initContainers;
    expect(init).toHaveLength(1);
    expect(init[0].image).toBe(TEST_ARCHIVER_IMAGE);
    expect(init[0].command).toStrictEqual(['/archiver/bin/node', '/archiver/lib/archiver.cjs', 'install', '/opt/archiver']);
    expect(init[0].volumeMounts).toStrictEqual([{ name: 'archiver', mountPath: '/opt/archiver' }]);
    expect(init[0].env).toBeUndefined();
    expect(postgres.volumeMounts).toContainEqual({ name: 'archiver', mountPath: '/opt/archiver', readOnly: true });
  });

  it('decides the role from the pod ordinal in a start-up script readable in the ConfigMap', () => {
    expect(postgres.command).toStrictEqual(['/bin/bash', '/etc/postgresql-archived/start.sh']);
    expect(postgres.volumeMounts).toContainEqual({ name: 'config', mountPath: '/etc/postgresql-archived', readOnly: true });
    expect(statefulSet.spec.template.spec.volumes).toContainEqual({ name: 'config', configMap: { name: 'wal-postgres-config', defaultMode: 0o444 } });
    const script = config.data!['start.sh'];
    expect(script).toContain('ordinal="${POD_NAME##*-}"');
    expect(script).toContain('if [ "$ordinal" = "0" ]; then');
    expect(script).toContain('primary_host=wal-postgres-0.wal-postgres-pods\n');
    expect(script).toContain('pg_basebackup --host="$primary_host"');
    expect(script).toContain('touch "$PGDATA/standby.signal"');
    expect(config.data!['postgresql.conf']).toContain("primary_conninfo = 'host=wal-postgres-0.wal-postgres-pods port=5432 user=replication passfile=/tmp/replication.pgpass'");
    expect(script).toContain('pg_basebackup --host="$primary_host" --port="$primary_port" --username=replication');
    expect(script).not.toMatch(/username=postgres|user=postgres/);
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

  it('has probes and requests: ready and live through probe.sh (a standby also follows pod 0), started when the server answers or a copy into the empty volume grows', () => {
    expect(postgres.readinessProbe.exec.command).toStrictEqual(['/bin/bash', '/etc/postgresql-archived/probe.sh', 'ready']);
    expect(postgres.livenessProbe.exec.command).toStrictEqual(['/bin/bash', '/etc/postgresql-archived/probe.sh', 'live']);
    expect(postgres.startupProbe.exec.command).toStrictEqual(['/bin/bash', '/etc/postgresql-archived/probe.sh', 'startup']);
    expect(postgres.startupProbe.failureThreshold * postgres.startupProbe.periodSeconds).toBe(3600);
    expect(postgres.resources).toStrictEqual({ requests: { cpu: '500m', memory: '1Gi', 'ephemeral-storage': '256Mi' }, limits: { memory: '1Gi', 'ephemeral-storage': '1Gi' } });
  });

  it('rolls the pods when a configuration change needs a restart, and only then (postgres-config.test.ts: which do)', () => {
    const annotation = (props = seedProps()) =>
      find(synthDatabase(props).objects, 'StatefulSet', 'wal-postgres').spec.template.metadata.annotations['archived-postgres/config-sha256'];
    expect(annotation()).toMatch(/^[0-9a-f]{64}$/);
    expect(annotation()).toBe(annotation());
    // archive_timeout is reloaded by the sidecar, which watches the ConfigMap.
    expect(annotation(seedProps({ archiver: { ...seedProps().archiver, archiveTimeout: Duration.seconds(120) } }))).toBe(annotation());
    const sidecar = container(statefulSet, 'archiver');
    expect(sidecar.volumeMounts).toContainEqual({ name: 'config', mountPath: '/etc/postgresql-archived', readOnly: true });
    expect(envOf(sidecar).ARCHIVER_CONFIG_DIR).toBe('/etc/postgresql-archived');
  });
});

describe('PostgresStatefulSet grows after construction', () => {
  it('adds containers, init containers and volumes after its own', () => {
    // GIVEN
    const { db, chart } = databaseChart(seedProps());
    // WHEN
    db.statefulSet.addVolume({ name: 'scratch', emptyDir: {} });
    db.statefulSet.addInitContainer({ name: 'prepare', image: 'busybox:1.36', command: ['true'] });
    db.statefulSet.addContainer({ name: 'exporter', image: 'exporter:1.0', volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] });
    // THEN
    const pod = find(synth(chart), 'StatefulSet', 'wal-postgres').spec.template.spec;
    expect(pod.initContainers.map((c: any) => c.name)).toStrictEqual(['install-archiver', 'prepare']);
    expect(pod.containers.map((c: any) => c.name)).toStrictEqual(['postgres', 'archiver', 'exporter']);
    expect(pod.containers[2]).toStrictEqual({ name: 'exporter', image: 'exporter:1.0', volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] });
    // archiver-api-token: the sidecar's token for its role label (pod-role.test.ts).
    expect(pod.volumes.map((v: any) => v.name)).toStrictEqual(['config', 'run', 'tmp', 'shm', 'archiver', 'superuser-password', 'replication-password', 'archiver-api-token', 'scratch']);
  });

  it('adds variables and volume mounts to the postgres container, e.g. for a point-in-time recovery', () => {
    // GIVEN
    const { db, chart } = databaseChart(seedProps());
    // WHEN
    db.statefulSet.addVolume({ name: 'recovery', emptyDir: {} });
    db.statefulSet.postgres.addVolumeMount({ name: 'recovery', mountPath: '/recovery' });
    db.statefulSet.postgres.addEnv({ name: 'RECOVERY_TARGET', value: 'latest' });
    // THEN
    const postgres = postgresContainer(find(synth(chart), 'StatefulSet', 'wal-postgres'));
    expect(postgres.env.at(-2)).toStrictEqual({ name: 'ARCHIVER_BOOTSTRAP', value: 'restore' });
    expect(postgres.env.at(-1)).toStrictEqual({ name: 'RECOVERY_TARGET', value: 'latest' });
    expect(postgres.volumeMounts.at(-1)).toStrictEqual({ name: 'recovery', mountPath: '/recovery' });
  });

  it('adds variables and ports to the archiver sidecar, e.g. a log level and a debugger\'s port', () => {
    // GIVEN
    const { db, chart } = databaseChart(seedProps());
    // WHEN
    db.statefulSet.archiverSidecar.addEnv({ name: 'ARCHIVER_LOG_LEVEL', value: 'debug' });
    db.statefulSet.archiverSidecar.addPort({ name: 'inspect', containerPort: 9229 });
    // THEN
    const statefulSet = find(synth(chart), 'StatefulSet', 'wal-postgres');
    const sidecar = container(statefulSet, 'archiver');
    expect(sidecar.env.at(-1)).toStrictEqual({ name: 'ARCHIVER_LOG_LEVEL', value: 'debug' });
    // After its own metrics port.
    expect(sidecar.ports).toStrictEqual([{ name: 'metrics', containerPort: 9188, protocol: 'TCP' }, { name: 'inspect', containerPort: 9229 }]);
    // Only the sidecar has them.
    expect(envOf(postgresContainer(statefulSet)).ARCHIVER_LOG_LEVEL).toBeUndefined();
  });

  it('annotates the pod template beside the configuration checksum', () => {
    // GIVEN
    const { db, chart } = databaseChart(seedProps());
    // WHEN
    db.statefulSet.addPodAnnotation('prometheus.io/scrape', 'true');
    // THEN
    const annotations = find(synth(chart), 'StatefulSet', 'wal-postgres').spec.template.metadata.annotations;
    expect(Object.keys(annotations).sort()).toStrictEqual(['archived-postgres/config-sha256', 'prometheus.io/scrape']);
    expect(annotations['prometheus.io/scrape']).toBe('true');
  });

});

describe('checkDataVolume', () => {
  it('accepts the seed example\'s volume and no volume at all', () => {
    expect(checkDataVolume('storage', seedProps().storage)).toStrictEqual([]);
    expect(checkDataVolume('storage', undefined)).toStrictEqual([]);
  });

  it('fails on an empty or unknown access mode and an invalid StorageClass name, naming each field', () => {
    expect(checkDataVolume('storage', { accessModes: [] })).toStrictEqual(['storage.accessModes: is empty: use e.g. ["ReadWriteOnce"]']);
    expect(checkDataVolume('storage', { storageClassName: 'Fast SSD', accessModes: ['ReadWriteAll'] })).toStrictEqual([
      'storage.storageClassName: "Fast SSD" is not a valid StorageClass name: use lowercase letters, digits, \'-\' and \'.\', e.g. "standard"',
      'storage.accessModes: "ReadWriteAll" is not an access mode: use ReadWriteOnce, ReadWriteOncePod, ReadWriteMany, ReadOnlyMany',
    ]);
  });

  it('is how ArchivedPostgres reports its storage prop', () => {
    const { app } = databaseChart(seedProps({ storage: { accessModes: ['ReadWriteAll'] } }));
    expect(collectValidationErrors(app)).toStrictEqual([
      '[test/wal-postgres] storage.accessModes: "ReadWriteAll" is not an access mode: use ReadWriteOnce, ReadWriteOncePod, ReadWriteMany, ReadOnlyMany',
    ]);
  });
});
