/**
 * Where a database's WAL archive is kept, and what a container needs to reach it. The one place
 * that knows the backends apart: `bind()` hands any pod the environment, Secret references and
 * volumes of its backend, so no consumer switches on S3 or GCS.
 */
import { k8s } from 'cdk8s-plus-27';
import { ARCHIVER_ENV, DEFAULT_AWS_REGION, STORAGE_SECRET_KEYS, repositoryUrl } from '../contract';
import { checkEndpoint, checkGcsBucketName, checkPrefix, checkS3BucketName, checkSecretName } from './validation';

/** Where the GCS service-account key is mounted in every container that reaches a GCS archive. */
export const GCS_KEY_DIR = '/var/run/secrets/archiver/gcs';
export const GCS_KEY_FILE = 'service-account.json';
/** The pod volume that holds the GCS key (from the storage Secret). */
export const GCS_KEY_VOLUME = 'gcs-key';

/** The kinds of storage an archive can be kept in. */
export type ArchiveBackend = 's3' | 'gcs';

/** Where an S3-compatible archive lives (KubeDB's `spec.archiver.storage.s3`). */
export interface S3Location {
  /**
   * The S3-compatible endpoint, e.g. `http://minio.storage.svc:9000`.
   * @default - AWS S3 in `region`
   */
  readonly endpoint?: string;
  /** The bucket. It must exist; the archiver does not create it. */
  readonly bucket: string;
  /**
   * A path inside the bucket under which `kubedb/{namespace}/{name}/archive/` is placed.
   * @default - the archive starts at the root of the bucket
   */
  readonly prefix?: string;
  /**
   * The region; S3-compatible servers usually accept any.
   * @default "us-east-1"
   */
  readonly region?: string;
}

/** Where a GCS archive lives (KubeDB's `spec.archiver.storage.gcs`). */
export interface GcsLocation {
  /** The bucket. It must exist; the archiver does not create it. */
  readonly bucket: string;
  /**
   * A path inside the bucket under which `kubedb/{namespace}/{name}/archive/` is placed.
   * @default - the archive starts at the root of the bucket
   */
  readonly prefix?: string;
}

/**
 * KubeDB's `spec.archiver.storage` object as written in its YAML: a Secret name and exactly one
 * of `s3` or `gcs`. Accepted as is (see `ArchiveStorage.fromSpec`) so that a KubeDB manifest can
 * be ported field by field; `ArchiveStorage.s3()`/`.gcs()` are the typed way in.
 */
export interface ArchiveStorageSpec {
  /**
   * The Secret holding the credentials: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` for S3;
   * `GOOGLE_PROJECT_ID` and `GOOGLE_SERVICE_ACCOUNT_JSON_KEY` for GCS. Only its name is ever
   * rendered.
   */
  readonly storageSecretName: string;
  readonly s3?: S3Location;
  readonly gcs?: GcsLocation;
}

export interface S3ArchiveStorageOptions extends S3Location {
  /** The Secret with keys `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`. */
  readonly storageSecretName: string;
}

export interface GcsArchiveStorageOptions extends GcsLocation {
  /** The Secret with keys `GOOGLE_PROJECT_ID` and `GOOGLE_SERVICE_ACCOUNT_JSON_KEY`. */
  readonly storageSecretName: string;
}

/** One problem found in an archive storage definition: the field (relative to `archiver.storage`) and what is wrong. */
export interface ArchiveStorageProblem {
  readonly field: string;
  readonly message: string;
}

/** What `ArchiveStorage.bind()` needs to know about the archive being reached. */
export interface ArchiveStorageBindOptions {
  /** The archive's path inside the bucket: `{prefix}/kubedb/{namespace}/{name}/archive` (contract's `archivePath`). */
  readonly archivePath: string;
  /**
   * How credentials that are files elsewhere (GCS's JSON key) reach the container: `mounted`, a
   * volume of the Secret's key; `variables`, the key itself in a variable (contract's
   * STORAGE_CREDENTIAL_ENV), for a container that unsets its credentials before it runs
   * anything else, as the postgres container's start.sh does before it starts PostgreSQL: a
   * mounted file would stay readable by every superuser session (`pg_read_file`).
   * @default 'mounted'
   */
  readonly credentials?: 'mounted' | 'variables';
}

/**
 * What a container needs to reach an archive: its environment (credentials as Secret references,
 * never values), the pod volumes and the container's mounts of them. Every array is the caller's
 * own copy.
 */
export interface ArchiveStorageBinding {
  readonly env: k8s.EnvVar[];
  readonly volumes: k8s.Volume[];
  readonly volumeMounts: k8s.VolumeMount[];
}

/** Where a database's WAL archive is kept: exactly one of S3-compatible or GCS storage. */
export class ArchiveStorage {
  /** An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...). */
  public static s3(options: S3ArchiveStorageOptions): ArchiveStorage {
    const { storageSecretName, ...s3 } = options;
    return new ArchiveStorage({ storageSecretName, s3 });
  }

  /** A Google Cloud Storage bucket. */
  public static gcs(options: GcsArchiveStorageOptions): ArchiveStorage {
    const { storageSecretName, ...gcs } = options;
    return new ArchiveStorage({ storageSecretName, gcs });
  }

  /** KubeDB's object as is; `validate()` reports both or neither of `s3`/`gcs`. */
  public static fromSpec(spec: ArchiveStorageSpec): ArchiveStorage {
    return new ArchiveStorage(spec);
  }

  private constructor(public readonly spec: ArchiveStorageSpec) {}

  /** `s3` or `gcs`; undefined only for an invalid spec (both or neither), which `validate()` reports. */
  public get backend(): ArchiveBackend | undefined {
    if (this.spec.s3 && !this.spec.gcs) return 's3';
    if (this.spec.gcs && !this.spec.s3) return 'gcs';
    return undefined;
  }

  public get bucket(): string {
    return (this.spec.s3 ?? this.spec.gcs)?.bucket ?? '';
  }

  /** The prefix without surrounding slashes, or undefined. */
  public get prefix(): string | undefined {
    const prefix = (this.spec.s3 ?? this.spec.gcs)?.prefix?.replace(/\/+$/, '');
    return prefix ? prefix : undefined;
  }

  /**
   * The environment, Secret references and volumes with which a container reaches the archive at
   * `options.archivePath` through the archiver (the names of contract's ARCHIVER_ENV). Empty for an
   * invalid spec, which `validate()` reports.
   */
  public bind(options: ArchiveStorageBindOptions): ArchiveStorageBinding {
    const secret = (name: string, key: string): k8s.EnvVar => ({
      name,
      valueFrom: { secretKeyRef: { name: this.spec.storageSecretName, key } },
    });
    switch (this.backend) {
      case 's3': {
        const s3 = this.spec.s3!;
        const env: k8s.EnvVar[] = [{ name: ARCHIVER_ENV.repository, value: repositoryUrl('s3', this.bucket, options.archivePath) }];
        if (s3.endpoint !== undefined) env.push({ name: ARCHIVER_ENV.s3Endpoint, value: s3.endpoint });
        env.push({ name: ARCHIVER_ENV.awsRegion, value: s3.region ?? DEFAULT_AWS_REGION });
        env.push(secret(ARCHIVER_ENV.awsAccessKeyId, STORAGE_SECRET_KEYS.awsAccessKeyId));
        env.push(secret(ARCHIVER_ENV.awsSecretAccessKey, STORAGE_SECRET_KEYS.awsSecretAccessKey));
        return { env, volumes: [], volumeMounts: [] };
      }
      case 'gcs': {
        const env: k8s.EnvVar[] = [
          { name: ARCHIVER_ENV.repository, value: repositoryUrl('gcs', this.bucket, options.archivePath) },
          secret(ARCHIVER_ENV.gcsProjectId, STORAGE_SECRET_KEYS.gcsProjectId),
        ];
        if (options.credentials === 'variables') {
          return { env: [...env, secret(ARCHIVER_ENV.gcsCredentialsJson, STORAGE_SECRET_KEYS.gcsServiceAccountJsonKey)], volumes: [], volumeMounts: [] };
        }
        return {
          env: [...env, { name: ARCHIVER_ENV.gcsCredentialsFile, value: `${GCS_KEY_DIR}/${GCS_KEY_FILE}` }],
          volumes: [
            {
              name: GCS_KEY_VOLUME,
              secret: {
                secretName: this.spec.storageSecretName,
                items: [{ key: STORAGE_SECRET_KEYS.gcsServiceAccountJsonKey, path: GCS_KEY_FILE }],
                // Readable by the pod's group (fsGroup 999) only.
                defaultMode: 0o440,
              },
            },
          ],
          volumeMounts: [{ name: GCS_KEY_VOLUME, mountPath: GCS_KEY_DIR, readOnly: true }],
        };
      }
      default:
        return { env: [], volumes: [], volumeMounts: [] };
    }
  }

  /** Every problem of this definition; empty when it is usable. */
  public validate(): ArchiveStorageProblem[] {
    const problems: ArchiveStorageProblem[] = [];
    const secret = checkSecretName(this.spec.storageSecretName ?? '');
    if (secret) problems.push({ field: 'storageSecretName', message: secret });
    const { s3, gcs } = this.spec;
    if (s3 && gcs) {
      problems.push({ field: 's3/gcs', message: 'both are set: choose exactly one storage backend, ArchiveStorage.s3({...}) or ArchiveStorage.gcs({...})' });
    } else if (!s3 && !gcs) {
      problems.push({ field: 's3/gcs', message: 'neither is set: choose exactly one storage backend, ArchiveStorage.s3({...}) or ArchiveStorage.gcs({...})' });
    }
    if (s3) {
      const bucket = checkS3BucketName(s3.bucket ?? '');
      if (bucket) problems.push({ field: 's3.bucket', message: bucket });
      if (s3.endpoint !== undefined) {
        const endpoint = checkEndpoint(s3.endpoint);
        if (endpoint) problems.push({ field: 's3.endpoint', message: endpoint });
      }
      if (s3.prefix !== undefined) {
        const prefix = checkPrefix(s3.prefix);
        if (prefix) problems.push({ field: 's3.prefix', message: prefix });
      }
      if (s3.region !== undefined && !/^[a-z0-9-]{2,32}$/.test(s3.region)) {
        problems.push({ field: 's3.region', message: `${JSON.stringify(s3.region)} is not a region name: write e.g. "us-east-1"` });
      }
    }
    if (gcs) {
      const bucket = checkGcsBucketName(gcs.bucket ?? '');
      if (bucket) problems.push({ field: 'gcs.bucket', message: bucket });
      if (gcs.prefix !== undefined) {
        const prefix = checkPrefix(gcs.prefix);
        if (prefix) problems.push({ field: 'gcs.prefix', message: prefix });
      }
    }
    return problems;
  }
}
