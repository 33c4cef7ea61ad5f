/**
 * ArchiverContainerFactory (constructs/archiver-container-factory.ts): archiver containers for any
 * pod, with the sidecar's environment, Secret references, volumes and security context. That the
 * archiver reads what it renders is specified in archiver-container-factory.real-archiver.test.ts.
 */
import { k8s } from 'cdk8s-plus-27';
import { describe, expect, it } from 'vitest';
import { archiverImageCommand } from '../../contract';
import { ArchiverContainerFactory, ArchiveStorage, DATA_MOUNT } from '../../constructs';
import { container, databaseChart, find, seedProps, synth } from './fixtures';

const gcs = ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb' });

/** What only the sidecar has: the background archiver's idling, its base backups' pod name, server and schedule, its metrics, its pod's role label, the configuration it reloads, the password files it keeps the roles and the passfile equal to. */
const SIDECAR_ONLY = ['ARCHIVER_DAEMON_IDLE_SECONDS', 'POD_NAME', 'PGHOST', 'PGUSER', 'ARCHIVER_BACKUP_AT_READY', 'ARCHIVER_BACKUP_FROM', 'ARCHIVER_METRICS_PORT', 'PGDATA', 'ARCHIVER_ROLE_LABEL', 'ARCHIVER_CONFIG_DIR', 'ARCHIVER_SUPERUSER_PASSWORD_FILE', 'ARCHIVER_REPLICATION_PASSWORD_FILE', 'ARCHIVER_REPLICATION_PASSFILE'];

/** The sidecar's environment without what only the sidecar has. */
function sidecarArchiverEnv(sidecar: any): any[] {
  return sidecar.env.filter((v: any) => !SIDECAR_ONLY.includes(v.name));
}

describe('ArchiverContainerFactory gives a Job or CronJob the archiver of a database', () => {
  it('a Job: the same image, environment, Secret references, key volume and security contexts as the sidecar', () => {
    // GIVEN a database archiving to GCS (whose key is a volume)
    const { db, chart } = databaseChart(seedProps({ archiver: { storage: gcs } }));
    const archiver = db.archiverContainers;
    // WHEN a Job runs the archiver
    new k8s.KubeJob(chart, 'Check', {
      metadata: { name: 'wal-postgres-check' },
      spec: {
        template: {
          spec: {
            restartPolicy: 'Never',
            securityContext: archiver.podSecurityContext,
            containers: [archiver.container({
              name: 'check',
              command: archiverImageCommand('check', '--storage'),
              // The spool's volume: the root filesystem is read-only.
              volumeMounts: [{ name: 'spool', mountPath: DATA_MOUNT }],
            })],
            volumes: [{ name: 'spool', emptyDir: {} }, ...archiver.volumes],
          },
        },
      },
    });
    // THEN
    const objects = synth(chart);
    const pod = find(objects, 'StatefulSet', 'wal-postgres').spec.template.spec;
    const sidecar = container({ spec: { template: { spec: pod } } } as any, 'archiver');
    const jobPod = find(objects, 'Job', 'wal-postgres-check').spec.template.spec;
    const job = jobPod.containers[0];
    expect(job.image).toBe(sidecar.image);
    expect(job.command).toStrictEqual(['/archiver/bin/node', '/archiver/lib/archiver.cjs', 'check', '--storage']);
    expect(job.env).toStrictEqual(sidecarArchiverEnv(sidecar));
    expect(job.env).toContainEqual({ name: 'GOOGLE_PROJECT_ID', valueFrom: { secretKeyRef: { name: 'gcs-secret', key: 'GOOGLE_PROJECT_ID', optional: true } } });
    expect(job.securityContext).toStrictEqual(sidecar.securityContext);
    expect(jobPod.securityContext).toStrictEqual(pod.securityContext);
    const keyMount = { name: 'gcs-key', mountPath: '/var/run/secrets/archiver/gcs', readOnly: true };
    expect(job.volumeMounts).toStrictEqual([{ name: 'spool', mountPath: DATA_MOUNT }, keyMount]);
    expect(sidecar.volumeMounts).toContainEqual(keyMount);
    const keyVolume = pod.volumes.find((v: any) => v.name === 'gcs-key');
    expect(keyVolume).toBeDefined();
    expect(jobPod.volumes).toStrictEqual([{ name: 'spool', emptyDir: {} }, keyVolume]);
  });

  it('a CronJob: the same environment and Secret references as the sidecar, for an S3 archive', () => {
    // GIVEN the seed example (S3)
    const { db, chart } = databaseChart(seedProps());
    const archiver = db.archiverContainers;
    // WHEN a CronJob runs the archiver every night
    new k8s.KubeCronJob(chart, 'Nightly', {
      metadata: { name: 'wal-postgres-nightly' },
      spec: {
        schedule: '0 3 * * *',
        jobTemplate: {
          spec: {
            template: {
              spec: {
                restartPolicy: 'OnFailure',
                securityContext: archiver.podSecurityContext,
                containers: [archiver.container({ name: 'nightly', command: archiverImageCommand('check'), resources: { requests: { cpu: '100m' } } })],
                volumes: archiver.volumes,
              },
            },
          },
        },
      },
    });
    // THEN
    const objects = synth(chart);
    const sidecar = container(find(objects, 'StatefulSet', 'wal-postgres'), 'archiver');
    const cron = find(objects, 'CronJob', 'wal-postgres-nightly').spec.jobTemplate.spec.template.spec.containers[0];
    expect(cron.env).toStrictEqual(sidecarArchiverEnv(sidecar));
    expect(cron.env.filter((v: any) => v.valueFrom).map((v: any) => v.valueFrom.secretKeyRef.name)).toStrictEqual(['s3-secret', 's3-secret']);
    expect(cron.securityContext).toStrictEqual(sidecar.securityContext);
    expect(cron.resources).toStrictEqual({ requests: { cpu: '100m' } });
    // S3 needs no volume.
    expect(cron.volumeMounts).toBeUndefined();
  });
});

describe('ArchiverContainerFactory', () => {
  const factory = new ArchiverContainerFactory({ storage: gcs, archivePath: 'kubedb/demo/db/archive', image: 'registry.example.com/pg-wal-archiver:0.1.0' });

  it('runs the given image, with the spool on the data volume by default', () => {
    expect(factory.image).toBe('registry.example.com/pg-wal-archiver:0.1.0');
    expect(factory.env[0]).toStrictEqual({ name: 'ARCHIVER_SPOOL', value: '/var/lib/postgresql/data/archiver-spool' });
  });

  it('puts a container\'s own variables after the archiver\'s and its own mounts before the storage\'s', () => {
    expect(factory.container({
      name: 'example',
      command: ['run'],
      env: [{ name: 'EXTRA', value: '1' }],
      volumeMounts: [{ name: 'data', mountPath: '/data' }],
    })).toStrictEqual({
      name: 'example',
      image: 'registry.example.com/pg-wal-archiver:0.1.0',
      imagePullPolicy: 'IfNotPresent',
      command: ['run'],
      env: [
        { name: 'ARCHIVER_SPOOL', value: '/var/lib/postgresql/data/archiver-spool' },
        { name: 'ARCHIVER_REPOSITORY', value: 'gs://kubedb/kubedb/demo/db/archive' },
        { name: 'GOOGLE_PROJECT_ID', valueFrom: { secretKeyRef: { name: 'gcs-secret', key: 'GOOGLE_PROJECT_ID', optional: true } } },
        { name: 'GOOGLE_APPLICATION_CREDENTIALS', value: '/var/run/secrets/archiver/gcs/service-account.json' },
        { name: 'EXTRA', value: '1' },
      ],
      ports: undefined,
      resources: undefined,
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } },
      volumeMounts: [{ name: 'data', mountPath: '/data' }, { name: 'gcs-key', mountPath: '/var/run/secrets/archiver/gcs', readOnly: true }],
    });
  });

  it('uses the given spool directory', () => {
    const custom = new ArchiverContainerFactory({ storage: gcs, archivePath: 'a', image: 'registry.example.com/archiver:2', spoolDirectory: '/spool' });
    expect(custom.container({ name: 'x', command: [] }).image).toBe('registry.example.com/archiver:2');
    expect(custom.env[0]).toStrictEqual({ name: 'ARCHIVER_SPOOL', value: '/spool' });
  });

  it('makes an installer that copies the archiver into a volume and reaches no archive (no environment, no key)', () => {
    expect(factory.installContainer({ volumeName: 'archiver' })).toStrictEqual({
      name: 'install-archiver',
      image: 'registry.example.com/pg-wal-archiver:0.1.0',
      imagePullPolicy: 'IfNotPresent',
      command: ['/archiver/bin/node', '/archiver/lib/archiver.cjs', 'install', '/opt/archiver'],
      securityContext: factory.securityContext,
      resources: {
        requests: { cpu: k8s.Quantity.fromString('50m'), memory: k8s.Quantity.fromString('64Mi') },
        limits: { memory: k8s.Quantity.fromString('128Mi') },
      },
      volumeMounts: [{ name: 'archiver', mountPath: '/opt/archiver' }],
    });
  });

  it('hands each caller its own objects', () => {
    factory.env.pop();
    (factory.volumes[0] as { name: string }).name = 'changed';
    expect(factory.env).toHaveLength(4);
    expect(factory.volumes[0].name).toBe('gcs-key');
  });
});
