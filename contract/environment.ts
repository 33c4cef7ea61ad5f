/**
 * The environment variables the archiver reads, and the storage Secret keys the constructs map
 * onto them. The constructs render these names; the archiver's configuration (archiver/src/config.ts)
 * reads them; a contract test feeds the rendered environment to the real archiver.
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
  /** AWS region; S3-compatible servers usually accept any. Default: DEFAULT_AWS_REGION. */
  awsRegion: 'AWS_REGION',
  awsAccessKeyId: 'AWS_ACCESS_KEY_ID',
  awsSecretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  /** Google Cloud project of the GCS bucket. */
  gcsProjectId: 'GOOGLE_PROJECT_ID',
  /** Path of the mounted service-account JSON key file. */
  gcsCredentialsFile: 'GOOGLE_APPLICATION_CREDENTIALS',
  /**
   * The service-account JSON key itself (the storage Secret's key of the same name), for a
   * container that must forget its credentials before it runs anything else: a file cannot be
   * unmounted, a variable can be unset (STORAGE_CREDENTIAL_ENV). Read before gcsCredentialsFile.
   */
  gcsCredentialsJson: 'GOOGLE_SERVICE_ACCOUNT_JSON_KEY',
  /** The GCS emulator's address (read by @google-cloud/storage itself; tests only). */
  gcsEmulatorHost: 'STORAGE_EMULATOR_HOST',
  /**
   * A directory on the same filesystem as `pg_wal` where the archiver keeps its spool (spool.ts).
   * Default: SPOOL_DEFAULT_FROM_DATA_DIRECTORY from the data directory.
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
  /**
   * Seconds a call waits without a word from the background archiver (it says `wait` every
   * HEARTBEAT_SECONDS while it works) before taking it for frozen and working alone. Default:
   * SILENCE_LIMIT_SECONDS.
   */
  daemonSilenceSeconds: 'ARCHIVER_DAEMON_SILENCE_SECONDS',
  /** File for the log of a background archiver a call starts. Default: the call's stderr. */
  daemonLog: 'ARCHIVER_DAEMON_LOG',
  /** Deadline of one storage request in seconds (each is retried). Default 60. */
  timeoutSeconds: 'ARCHIVER_TIMEOUT_SECONDS',
  /** Attempts per storage request, the first included. Default 3. */
  maxAttempts: 'ARCHIVER_MAX_ATTEMPTS',
  /**
   * `wal-fetch` in archive recovery (recovery.signal without standby.signal): seconds it keeps
   * retrying an archive it cannot read before it stops recovery (exit EXIT_CODES.stopRecovery)
   * instead of letting PostgreSQL end it early. Default DEFAULT_RECOVERY_DEADLINE_SECONDS (60);
   * 0: stop at the first failure.
   */
  recoveryDeadlineSeconds: 'ARCHIVER_RECOVERY_DEADLINE_SECONDS',
  /** `debug`, `info` (default) or `warn`. */
  logLevel: 'ARCHIVER_LOG_LEVEL',
  /**
   * The directory of the ServiceAccount's `token` and `ca.crt` that `delete --only-when-gone` and
   * the sidecar's role label present to the Kubernetes API (and of the role label's `namespace`). Default SERVICE_ACCOUNT_DIR (contract/only-when-gone.ts), where
   * the kubelet mounts them; tests only.
   */
  serviceAccountDir: 'ARCHIVER_SERVICE_ACCOUNT_DIR',
  /**
   * `on` or `off` (default): the sidecar labels its own pod with its server's role (ROLE_LABEL,
   * contract/pod-role.ts) through the Kubernetes API, with the token of the ServiceAccount
   * directory. The constructs render `on` together with the token's volume, mounted in the sidecar
   * only.
   */
  roleLabel: 'ARCHIVER_ROLE_LABEL',

  // Base backups run by the `archiver` sidecar (its own scheduler: no operator, no CronJob).
  /**
   * The pod's name (`<statefulset>-<ordinal>`, from the downward API): the sidecar's role comes
   * from it, as the start script's does (ordinal 0 is the primary). The sidecar takes backups only
   * with it set: it names the member holding the backup lease (`basebackups/.lease`), and its
   * ordinal orders the standbys under ARCHIVER_BACKUP_FROM=standby. Whether a member is the
   * primary the sidecar asks its server (pg_is_in_recovery), not the ordinal.
   */
  podName: 'POD_NAME',
  /**
   * `on` (the sidecar's default) or `off`: as soon as the server accepts connections and the archive
   * holds no complete backup of its current timeline (a new database, or one just restored and
   * promoted), the member that takes backups takes one.
   */
  backupAtReady: 'ARCHIVER_BACKUP_AT_READY',
  /**
   * A five-field cron expression, in UTC (`0 2 * * *`), for scheduled base backups. Unset: none.
   * Minute hour day-of-month month day-of-week, as cron reads them (no seconds field, no `@daily`);
   * the archiver checks it with croner and the sidecar logs a mistake and takes no backups.
   */
  backupSchedule: 'ARCHIVER_BACKUP_SCHEDULE',
  /**
   * `primary` (default) or `standby`: which member takes the backups. `standby`: the standby of the
   * lowest ordinal that is streaming (the primary when there is none), as CloudNativePG prefers.
   * Each member sees only its own server: a streaming standby goes (ordinal − 1) minutes after the
   * tick, the primary at once when no standby streams from it, else 15 minutes after as a fallback;
   * the first to find the tick unserved takes the lease (archiver/src/backup/backup-duty.ts).
   */
  backupFrom: 'ARCHIVER_BACKUP_FROM',
  /** Retention after each scheduled backup: keep this many complete backups (`delete retain N`). Unset: no count rule. */
  backupRetain: 'ARCHIVER_BACKUP_RETAIN',
  /** Retention after each scheduled backup: keep a recovery window (`delete --window 30d`). Unset: no window rule. */
  backupWindow: 'ARCHIVER_BACKUP_WINDOW',

  /**
   * The port the sidecar serves its metrics on (Prometheus text format at METRICS_PATH, on every
   * address of the pod; contract/metrics.ts). Read only by a background archiver that is the pod's
   * sidecar; unset: no metrics. The constructs render METRICS_PORT.
   */
  metricsPort: 'ARCHIVER_METRICS_PORT',

  /**
   * The directory of the database's mounted ConfigMap (CONFIG_DIR in the pod). The sidecar looks
   * at its files every few seconds and, when the kubelet has updated them, reloads the server's
   * configuration (`pg_reload_conf()`) and logs what changed and what waits for a restart. Read
   * only by a background archiver that is the pod's sidecar, with POD_NAME; unset: no watch.
   */
  configDir: 'ARCHIVER_CONFIG_DIR',
  /**
   * The directory of the database's mounted kubernetes.io/tls Secret (TLS_DIR in the pod), when
   * it has one. The same watch as configDir's: a certificate renewed in place (cert-manager writes
   * the Secret, the kubelet swaps the mount) is loaded with a reload, as PostgreSQL reads its
   * certificate and key again only then. The files are hashed, never logged. Unset: no watch.
   */
  tlsDir: 'ARCHIVER_TLS_DIR',

  // What `archiver bootstrap` does with an empty data directory (pod 0's start script runs it).
  /**
   * `restore` (default): restore the newest complete backup of this database's own archive and
   * replay all its WAL; initdb when the archive is empty; refuse when it holds WAL but no backup.
   * `initdb`: initdb on an empty archive, refuse otherwise (the user restores by hand).
   */
  bootstrapMode: 'ARCHIVER_BOOTSTRAP',
  /**
   * Another database's archive (a repository URL in the same storage, same credentials) to
   * initialise from when this database's own archive is empty: KubeDB's `init.postgresWAL`,
   * CloudNativePG's `bootstrap.recovery`. Ignored once the own archive holds a backup.
   */
  bootstrapSource: 'ARCHIVER_BOOTSTRAP_SOURCE',
  /**
   * The recovery target of a bootstrap from `bootstrapSource`: `latest` (default), `immediate`,
   * `time:<ISO 8601 with a zone>`, `lsn:<X/Y>`, `xid:<n>` or `name:<restore point>`.
   */
  bootstrapTarget: 'ARCHIVER_BOOTSTRAP_TARGET',
  /** `true` (default) or `false`: recovery_target_inclusive of a bootstrap from a source. */
  bootstrapTargetInclusive: 'ARCHIVER_BOOTSTRAP_TARGET_INCLUSIVE',
  /** recovery_target_timeline of a bootstrap from a source: `latest` (default), `current` or a number. */
  bootstrapTargetTimeline: 'ARCHIVER_BOOTSTRAP_TARGET_TIMELINE',
} as const;

/** The values of ARCHIVER_BACKUP_FROM. */
export const BACKUP_FROM = ['primary', 'standby'] as const;
export type BackupFrom = (typeof BACKUP_FROM)[number];

/** The values of ARCHIVER_BOOTSTRAP. */
export const BOOTSTRAP_MODES = ['restore', 'initdb'] as const;
export type BootstrapMode = (typeof BOOTSTRAP_MODES)[number];

/**
 * What `archiver bootstrap <data directory>` prints on stdout when it exits 0: `initdb` (the archive
 * is empty: the start script runs initdb), `restored` (the directory holds a restored backup set to
 * recover and promote: the start script starts the server on it) or `present` (the directory
 * already holds a database: nothing done). A refusal exits EXIT_CODES.error with the reason in its
 * log line, and the directory untouched.
 */
export const BOOTSTRAP_OUTCOMES = ['initdb', 'restored', 'present'] as const;
export type BootstrapOutcome = (typeof BOOTSTRAP_OUTCOMES)[number];

export type ArchiverEnvName = (typeof ARCHIVER_ENV)[keyof typeof ARCHIVER_ENV];

/** The region used when none is given: S3-compatible servers usually accept any. */
export const DEFAULT_AWS_REGION = 'us-east-1';

/** Keys the archiver reads from the storage Secret named by `storageSecretName` (KubeDB's names). */
export const STORAGE_SECRET_KEYS = {
  awsAccessKeyId: 'AWS_ACCESS_KEY_ID',
  awsSecretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  gcsProjectId: 'GOOGLE_PROJECT_ID',
  gcsServiceAccountJsonKey: 'GOOGLE_SERVICE_ACCOUNT_JSON_KEY',
} as const;

/**
 * The environment variables that hold storage credentials (from the storage Secret): the pod's
 * PostgreSQL container unsets them before it starts PostgreSQL, so that no superuser session can
 * read them; only the archiver sidecar keeps them. The PostgreSQL container has GCS's key as a
 * variable for that reason, never as the mounted file (GOOGLE_APPLICATION_CREDENTIALS) the
 * sidecar reads.
 */
export const STORAGE_CREDENTIAL_ENV = [ARCHIVER_ENV.awsAccessKeyId, ARCHIVER_ENV.awsSecretAccessKey, ARCHIVER_ENV.gcsCredentialsJson] as const;

/** STORAGE_CREDENTIAL_ENV by storage backend: the ones a container reaching that backend has. */
export const STORAGE_CREDENTIAL_ENV_OF = {
  s3: [ARCHIVER_ENV.awsAccessKeyId, ARCHIVER_ENV.awsSecretAccessKey],
  gcs: [ARCHIVER_ENV.gcsCredentialsJson],
} as const;

/** The values of ARCHIVER_DAEMON. */
export const DAEMON_MODES = ['on', 'external', 'off'] as const;
export type DaemonMode = (typeof DAEMON_MODES)[number];
