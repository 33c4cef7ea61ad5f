/**
 * ArchiveStorage (constructs/archive-storage.ts): where the archive is kept, and `bind()`: what a
 * container needs to reach it, per backend. Validation messages are in validation.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ArchiveStorage } from '../../constructs';
import { container, envOf, find, postgresContainer, seedProps, synthDatabase } from './fixtures';

const archivePath = 'kubedb/demo/wal-postgres/archive';

describe('ArchiveStorage.bind', () => {
  it('gives an S3 archive its location, endpoint, region and the Secret\'s keys by reference, and no volume', () => {
    const storage = ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'http://minio.storage.svc:9000', bucket: 'kubedb', region: 'eu-west-1' });
    expect(storage.backend).toBe('s3');
    expect(storage.bind({ archivePath })).toStrictEqual({
      env: [
        { name: 'ARCHIVER_REPOSITORY', value: 's3://kubedb/kubedb/demo/wal-postgres/archive' },
        { name: 'ARCHIVER_S3_ENDPOINT', value: 'http://minio.storage.svc:9000' },
        { name: 'AWS_REGION', value: 'eu-west-1' },
        { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: 's3-secret', key: 'AWS_ACCESS_KEY_ID' } } },
        { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: 's3-secret', key: 'AWS_SECRET_ACCESS_KEY' } } },
      ],
      volumes: [],
      volumeMounts: [],
    });
  });

  it('defaults to AWS S3 in us-east-1 when neither endpoint nor region is given', () => {
    const { env } = ArchiveStorage.s3({ storageSecretName: 's3-secret', bucket: 'kubedb' }).bind({ archivePath });
    expect(env.map((v) => v.name)).toStrictEqual(['ARCHIVER_REPOSITORY', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
    expect(env[1]).toStrictEqual({ name: 'AWS_REGION', value: 'us-east-1' });
  });

  it('gives a GCS archive its location, the project id by reference and the service-account key as a mounted file', () => {
    const storage = ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb' });
    expect(storage.backend).toBe('gcs');
    expect(storage.bind({ archivePath })).toStrictEqual({
      env: [
        { name: 'ARCHIVER_REPOSITORY', value: 'gs://kubedb/kubedb/demo/wal-postgres/archive' },
        { name: 'GOOGLE_PROJECT_ID', valueFrom: { secretKeyRef: { name: 'gcs-secret', key: 'GOOGLE_PROJECT_ID' } } },
        { name: 'GOOGLE_APPLICATION_CREDENTIALS', value: '/var/run/secrets/archiver/gcs/service-account.json' },
      ],
      volumes: [
        {
          name: 'gcs-key',
          secret: { secretName: 'gcs-secret', items: [{ key: 'GOOGLE_SERVICE_ACCOUNT_JSON_KEY', path: 'service-account.json' }], defaultMode: 0o440 },
        },
      ],
      volumeMounts: [{ name: 'gcs-key', mountPath: '/var/run/secrets/archiver/gcs', readOnly: true }],
    });
  });

  it('gives nothing for a spec with both or neither backend (validate() reports it)', () => {
    for (const storage of [
      ArchiveStorage.fromSpec({ storageSecretName: 's3-secret', s3: { bucket: 'kubedb' }, gcs: { bucket: 'kubedb' } }),
      ArchiveStorage.fromSpec({ storageSecretName: 's3-secret' }),
    ]) {
      expect(storage.backend).toBeUndefined();
      expect(storage.bind({ archivePath })).toStrictEqual({ env: [], volumes: [], volumeMounts: [] });
      expect(storage.validate().map((p) => p.field)).toStrictEqual(['s3/gcs']);
    }
  });

  it('hands each caller its own arrays', () => {
    const storage = ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb' });
    storage.bind({ archivePath }).volumes.pop();
    expect(storage.bind({ archivePath }).volumes).toHaveLength(1);
  });

  it('strips the slashes around a prefix', () => {
    expect(ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb', prefix: 'team-a/' }).prefix).toBe('team-a');
    expect(ArchiveStorage.s3({ storageSecretName: 's3-secret', bucket: 'kubedb' }).prefix).toBeUndefined();
  });
});

describe('ArchiveStorage in the pod', () => {
  it('mounts the GCS service-account key as a file in the sidecar, and gives it to the postgres container as a variable start.sh unsets (a mounted file would stay readable by every superuser session)', () => {
    const { objects } = synthDatabase(seedProps({
      archiver: { storage: ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb', prefix: 'team-a/' }) },
    }));
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    const postgres = postgresContainer(statefulSet);
    const env = envOf(postgres);
    expect(env.ARCHIVER_REPOSITORY).toBe('gs://kubedb/team-a/kubedb/demo/wal-postgres/archive');
    // Optional in the pod: a missing Secret must not keep the kubelet from starting PostgreSQL (archiver-container-factory.ts).
    expect(env.GOOGLE_PROJECT_ID).toStrictEqual({ secretKeyRef: { name: 'gcs-secret', key: 'GOOGLE_PROJECT_ID', optional: true } });
    expect(env.GOOGLE_SERVICE_ACCOUNT_JSON_KEY).toStrictEqual({ secretKeyRef: { name: 'gcs-secret', key: 'GOOGLE_SERVICE_ACCOUNT_JSON_KEY', optional: true } });
    expect(env.GOOGLE_APPLICATION_CREDENTIALS).toBeUndefined();
    expect(env.AWS_ACCESS_KEY_ID).toBeUndefined();
    expect(postgres.volumeMounts.map((m: any) => m.name)).not.toContain('gcs-key');
    const startScript = find(objects, 'ConfigMap', 'wal-postgres-config').data!['start.sh'];
    expect(startScript).toContain('  unset GOOGLE_SERVICE_ACCOUNT_JSON_KEY\n');
    expect(statefulSet.spec.template.spec.volumes).toContainEqual({
      name: 'gcs-key',
      secret: { secretName: 'gcs-secret', items: [{ key: 'GOOGLE_SERVICE_ACCOUNT_JSON_KEY', path: 'service-account.json' }], defaultMode: 0o440, optional: true },
    });
    // The sidecar does the uploads: it has the key as a file, and keeps it.
    const sidecar = container(statefulSet, 'archiver');
    expect(sidecar.volumeMounts).toContainEqual({ name: 'gcs-key', mountPath: '/var/run/secrets/archiver/gcs', readOnly: true });
    expect(envOf(sidecar).GOOGLE_APPLICATION_CREDENTIALS).toBe('/var/run/secrets/archiver/gcs/service-account.json');
    expect(envOf(sidecar).GOOGLE_SERVICE_ACCOUNT_JSON_KEY).toBeUndefined();
  });
});
