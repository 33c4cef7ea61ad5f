/**
 * The contract between the constructs (which render Kubernetes YAML) and the archiver (which
 * PostgreSQL runs inside the pod). Both sides import these names from here, and a contract test
 * feeds the environment that the YAML renders to the real archiver.
 *
 * This module must stay free of dependencies: the cdk8s app imports it, and it must never pull the
 * archiver's cloud SDKs into synthesis.
 */

/** Environment variables the archiver reads. */
export const ARCHIVER_ENV = {
  /**
   * Where the archive lives, as a URL: `s3://bucket/path`, `gs://bucket/path` or `file:///path`.
   * The constructs render `{bucket}/{prefix}/kubedb/{namespace}/{name}/archive`.
   */
  repository: 'ARCHIVER_REPOSITORY',
  /** S3-compatible endpoint URL, e.g. `https://minio.storage.svc:9000`. Unset: AWS S3. */
  s3Endpoint: 'ARCHIVER_S3_ENDPOINT',
  /** `true`/`false`. Default: path-style when an endpoint other than AWS is set. */
  s3ForcePathStyle: 'ARCHIVER_S3_FORCE_PATH_STYLE',
  /** AWS region; S3-compatible servers usually accept any. */
  awsRegion: 'AWS_REGION',
  awsAccessKeyId: 'AWS_ACCESS_KEY_ID',
  awsSecretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  /** Google Cloud project of the GCS bucket. */
  gcsProjectId: 'GOOGLE_PROJECT_ID',
  /** Path of the mounted service-account JSON key file. */
  gcsCredentialsFile: 'GOOGLE_APPLICATION_CREDENTIALS',
  /**
   * A directory on the same filesystem as `pg_wal` where the archiver keeps its spool (segments
   * already pushed ahead, segments prefetched for restore). Same filesystem: a prefetched segment
   * is handed to PostgreSQL by rename, not by copy.
   */
  spool: 'ARCHIVER_SPOOL',
  /** `zstd`, `lz4`, `gzip`, `brotli` or `none`. Default: zstd. */
  compression: 'ARCHIVER_COMPRESSION',
  /** The codec's level. Default: its fast level (zstd 1). */
  compressionLevel: 'ARCHIVER_COMPRESSION_LEVEL',
  /**
   * `when_supported` (default: the SDK's request checksums, for real S3) or `when_required`
   * (S3 clones that mishandle them, such as s3rver).
   */
  s3Checksums: 'ARCHIVER_S3_CHECKSUMS',
  /** Segments pushed at once (the requested one plus those pushed ahead). Default 8. */
  pushConcurrency: 'ARCHIVER_PUSH_CONCURRENCY',
  /** Worker threads of the background archiver for hashing and (de)compression. Default: the CPUs, at most 4; 0: the main thread. */
  workers: 'ARCHIVER_WORKERS',
  /** Segments `wal-fetch` downloads ahead of PostgreSQL's requests. Default 8; 0 disables. */
  prefetch: 'ARCHIVER_PREFETCH',
  /** Prefetch downloads at once. Default 2: they compete with PostgreSQL's replay for the CPU. */
  prefetchConcurrency: 'ARCHIVER_PREFETCH_CONCURRENCY',
  /**
   * `on` (default): a background archiver process serves the calls, started by the first one;
   * `external`: it is run by someone else (the pod's `archiver` sidecar) and used when it
   * answers, never started by a call; `off`: each call works alone.
   */
  daemon: 'ARCHIVER_DAEMON',
  /** The background process exits after this many idle seconds. Default 300; 0: never (the sidecar). */
  daemonIdleSeconds: 'ARCHIVER_DAEMON_IDLE_SECONDS',
  /** Deadline of one storage request in seconds (each is retried). Default 60. */
  timeoutSeconds: 'ARCHIVER_TIMEOUT_SECONDS',
  /** Attempts per storage request, the first included. Default 3. */
  maxAttempts: 'ARCHIVER_MAX_ATTEMPTS',
  /** `debug`, `info` (default) or `warn`. */
  logLevel: 'ARCHIVER_LOG_LEVEL',
} as const;

/** Keys the archiver reads from the storage Secret named by `storageSecretName` (KubeDB's names). */
export const STORAGE_SECRET_KEYS = {
  awsAccessKeyId: 'AWS_ACCESS_KEY_ID',
  awsSecretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  gcsProjectId: 'GOOGLE_PROJECT_ID',
  gcsServiceAccountJsonKey: 'GOOGLE_SERVICE_ACCOUNT_JSON_KEY',
} as const;

/** Exit codes of the archiver. PostgreSQL treats any code from 1 to 125 as "try again / not there". */
export const EXIT_CODES = {
  ok: 0,
  /** Any failure: nothing was reported as stored. PostgreSQL retries `archive_command`. */
  error: 1,
  /** The command line or the configuration is wrong; the message names the flag or variable. */
  usage: 2,
  /**
   * `wal-fetch`: the file is not in the archive (wal-g uses the same code). A normal event: a
   * standby asks for the next segment before the primary has archived it, and archive recovery
   * ends when the next segment does not exist.
   */
  notFound: 74,
} as const;

/**
 * Who owns the spool's markers and prefetched files: the archive location they were made for.
 * The launcher (a POSIX sh script) builds the same string from its environment without forking,
 * `"$ARCHIVER_REPOSITORY|${ARCHIVER_S3_ENDPOINT:-}"`, and trusts the spool only when it matches
 * the spool's `.owner` file: after a configuration change, nothing done for the old location is
 * taken as done for the new one.
 */
export function spoolOwner(repository: string, s3Endpoint: string | undefined): string {
  return `${repository}|${s3Endpoint ?? ''}`;
}

/** Where the archiver is installed inside the PostgreSQL container (an emptyDir the init container fills). */
export const ARCHIVER_INSTALL_DIR = '/opt/archiver';

/** The archiver image's own copy, which its `install` command copies into ARCHIVER_INSTALL_DIR. */
export const ARCHIVER_IMAGE_HOME = '/archiver';

/** The launcher PostgreSQL runs; a POSIX shell script that answers the fast paths without starting Node. */
export function archiverLauncher(installDir: string = ARCHIVER_INSTALL_DIR): string {
  return `${installDir}/bin/archiver`;
}

/** The command the init container runs to copy the archiver (launcher, Node runtime, bundle) into the shared volume. */
export function archiverInstallCommand(installDir: string = ARCHIVER_INSTALL_DIR): string[] {
  return [`${ARCHIVER_IMAGE_HOME}/bin/node`, `${ARCHIVER_IMAGE_HOME}/lib/archiver.cjs`, 'install', installDir];
}

/** The `archiver` sidecar's command: the background archiver, in the foreground, from the image. */
export function archiverDaemonCommand(): string[] {
  return [`${ARCHIVER_IMAGE_HOME}/bin/node`, `${ARCHIVER_IMAGE_HOME}/lib/archiver.cjs`, 'daemon'];
}

/**
 * `archive_command`. `%p` is the segment's path relative to the data directory, which is the
 * working directory PostgreSQL runs the command in.
 */
export function renderArchiveCommand(installDir: string = ARCHIVER_INSTALL_DIR): string {
  return `${archiverLauncher(installDir)} wal-push %p`;
}

/** `restore_command`. `%f` is the file name wanted, `%p` the path to restore it to. */
export function renderRestoreCommand(installDir: string = ARCHIVER_INSTALL_DIR): string {
  return `${archiverLauncher(installDir)} wal-fetch %f %p`;
}

/**
 * The archive location of one database, KubeDB's layout:
 * `{bucket}/{prefix}/kubedb/{namespace}/{name}/archive`. Returns the path inside the bucket.
 */
export function archivePath(prefix: string | undefined, namespace: string, name: string): string {
  const parts = [prefix, 'kubedb', namespace, name, 'archive'].filter((p): p is string => !!p);
  return parts.map((p) => p.replace(/^\/+|\/+$/g, '')).filter((p) => p.length > 0).join('/');
}

/** `s3://bucket/path` / `gs://bucket/path`: the value of ARCHIVER_REPOSITORY. */
export function repositoryUrl(scheme: 's3' | 'gs', bucket: string, path: string): string {
  return `${scheme}://${bucket}/${path}`;
}
