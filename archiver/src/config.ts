/**
 * The archiver's configuration, read from the environment the constructs render (the variable
 * names live in contract/environment.ts). Every problem names its variable; credentials never
 * appear in messages, and a URL that carries credentials is refused (it would reach logs,
 * `archiver check` and the spool).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ARCHIVER_ENV,
  BACKUP_FROM,
  BackupFrom,
  DAEMON_MODES,
  DATA_DIRECTORY_MARKER,
  DEFAULT_AWS_REGION,
  DEFAULT_RECOVERY_DEADLINE_SECONDS,
  DaemonMode,
  PGDATA_ENV,
  SILENCE_LIMIT_SECONDS,
  SPOOL_DEFAULT_FROM_DATA_DIRECTORY,
  checkArchivePrefix,
  checkS3Endpoint,
  spoolOwner,
} from '../../contract';
import { CompressionName, parseCompressionName } from './compression';
import { DURATION_SYNTAX, durationMs } from '../../contract';
import { ConfigError } from './errors';
import type { GcsServiceAccountKey, StorageOptions } from './storage/storage';

export type { BackupFrom, DaemonMode };

export interface ArchiverConfig {
  /** ARCHIVER_REPOSITORY as given, for messages. */
  readonly repository: string;
  readonly storage: StorageOptions;
  readonly compression: CompressionName;
  readonly compressionLevel: number | undefined;
  /**
   * The spool directory, or undefined when there is none: ARCHIVER_SPOOL is unset and neither the
   * working directory nor $PGDATA is a data directory (a command run by hand elsewhere). Without
   * a spool a call works alone: no background archiver, no push-ahead, no prefetch.
   */
  readonly spool: string | undefined;
  /**
   * PostgreSQL's data directory: the working directory when it is one (PostgreSQL runs the
   * commands there), else $PGDATA; undefined with neither. Its signal files say whether
   * restore_command runs in archive recovery (recovery.ts).
   */
  readonly dataDirectory: string | undefined;
  /** The archive location, as the spool records its owner (contract `spoolOwner`). */
  readonly spoolOwner: string;
  readonly pushConcurrency: number;
  /** Worker threads of the background archiver for hashing and (de)compression. */
  readonly workers: number;
  readonly prefetch: number;
  readonly prefetchConcurrency: number;
  /**
   * `on`: a call starts the background archiver when none answers; `external`: one is run by
   * someone else (the pod's archiver sidecar), used when it answers, never started by a call;
   * `off`: every call works alone.
   */
  readonly daemon: DaemonMode;
  /** 0: never exits when idle (the sidecar). */
  readonly daemonIdleSeconds: number;
  /** How long a call waits for a word from the background archiver before it works alone. */
  readonly daemonSilenceSeconds: number;
  /** Where a background archiver started by a call logs; undefined: the call's stderr. */
  readonly daemonLog: string | undefined;
  /** Archive recovery: how long `wal-fetch` retries an archive it cannot read before it stops recovery. */
  readonly recoveryDeadlineSeconds: number;
  readonly logLevel: 'debug' | 'info' | 'warn';
}

type Env = Readonly<Record<string, string | undefined>>;

/** The levels each codec accepts (compression/*.ts). */
const LEVELS: Readonly<Record<CompressionName, readonly [number, number] | undefined>> = {
  zstd: [-7, 22],
  gzip: [1, 9],
  brotli: [0, 11],
  lz4: undefined,
  none: undefined,
};

function integer(env: Env, variable: string, fallback: number, min: number, max: number): number {
  const raw = env[variable];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(variable, `${JSON.stringify(raw)} is not a whole number from ${min} to ${max}`);
  }
  return value;
}

function choice<T extends string>(env: Env, variable: string, choices: readonly T[], fallback: T): T {
  const raw = env[variable];
  if (raw === undefined || raw === '') return fallback;
  const found = choices.find((c) => c === raw.toLowerCase());
  if (!found) throw new ConfigError(variable, `${JSON.stringify(raw)} is not one of ${choices.join(', ')}`);
  return found;
}

/** Bucket names of S3 and GCS: lowercase letters, digits, '.', '-' (and '_' on GCS). */
const BUCKET = /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/;

/** Splits `s3://bucket/some/prefix` into bucket and prefix. */
function bucketAndPrefix(url: string, scheme: string): { bucket: string; prefix: string | undefined } {
  const rest = url.slice(scheme.length + 3);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
  if (!bucket) throw new ConfigError(ARCHIVER_ENV.repository, `${JSON.stringify(url)} has no bucket: write ${scheme}://BUCKET/PATH`);
  if (bucket.includes('@')) {
    throw new ConfigError(ARCHIVER_ENV.repository, `contains credentials (value not shown): write ${scheme}://BUCKET/PATH and give the credentials through the storage Secret`);
  }
  if (!BUCKET.test(bucket)) {
    throw new ConfigError(ARCHIVER_ENV.repository, `${JSON.stringify(url)}: ${JSON.stringify(bucket)} is not a bucket name (lowercase letters, digits, '.', '-', '_')`);
  }
  const problem = prefix ? checkArchivePrefix(prefix) : undefined;
  if (problem) throw new ConfigError(ARCHIVER_ENV.repository, `${JSON.stringify(url)}: its path ${problem}`);
  return { bucket, prefix: prefix || undefined };
}

function storageOptions(env: Env, timeouts: { connectMs: number; requestMs: number }, maxAttempts: number): StorageOptions {
  const repository = env[ARCHIVER_ENV.repository];
  if (!repository) {
    throw new ConfigError(ARCHIVER_ENV.repository, 'is not set: give the archive location, e.g. s3://bucket/prefix/kubedb/demo/wal-postgres/archive, gs://bucket/path or file:///var/lib/archive');
  }
  if (repository.startsWith('s3://')) {
    const { bucket, prefix } = bucketAndPrefix(repository, 's3');
    const accessKeyId = env[ARCHIVER_ENV.awsAccessKeyId] || undefined;
    const secretAccessKey = env[ARCHIVER_ENV.awsSecretAccessKey] || undefined;
    if (!!accessKeyId !== !!secretAccessKey) {
      const missing = accessKeyId ? ARCHIVER_ENV.awsSecretAccessKey : ARCHIVER_ENV.awsAccessKeyId;
      throw new ConfigError(missing, `is not set but ${accessKeyId ? ARCHIVER_ENV.awsAccessKeyId : ARCHIVER_ENV.awsSecretAccessKey} is: set both (the storage Secret's keys) or neither (the SDK's default credentials)`);
    }
    const endpoint = env[ARCHIVER_ENV.s3Endpoint] || undefined;
    if (endpoint !== undefined) {
      const problem = checkS3Endpoint(endpoint);
      if (problem) throw new ConfigError(ARCHIVER_ENV.s3Endpoint, problem);
    }
    const pathStyle = choice(env, ARCHIVER_ENV.s3ForcePathStyle, ['true', 'false'] as const, endpoint && !/\.amazonaws\.com(:\d+)?\/?$/.test(endpoint) ? 'true' : 'false');
    const checksums = choice(env, ARCHIVER_ENV.s3Checksums, ['when_supported', 'when_required'] as const, 'when_supported');
    return {
      kind: 's3',
      bucket,
      prefix,
      endpoint,
      region: env[ARCHIVER_ENV.awsRegion] || DEFAULT_AWS_REGION,
      forcePathStyle: pathStyle === 'true',
      accessKeyId,
      secretAccessKey,
      requestChecksumCalculation: checksums === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
      timeouts,
      maxAttempts,
    };
  }
  if (repository.startsWith('gs://')) {
    const { bucket, prefix } = bucketAndPrefix(repository, 'gs');
    // @google-cloud/storage reads this variable itself and needs the scheme.
    const emulator = env[ARCHIVER_ENV.gcsEmulatorHost] || undefined;
    if (emulator !== undefined && !/^https?:\/\//.test(emulator)) {
      throw new ConfigError(ARCHIVER_ENV.gcsEmulatorHost, `${JSON.stringify(emulator)} needs its scheme, e.g. http://127.0.0.1:9199`);
    }
    if (emulator !== undefined && /\/\/[^/]*@/.test(emulator)) throw new ConfigError(ARCHIVER_ENV.gcsEmulatorHost, 'contains credentials (value not shown)');
    return {
      kind: 'gcs',
      bucket,
      prefix,
      ...gcsCredentials(env),
      // After the key's project_id, which the client would read from a key file by itself.
      ...(env[ARCHIVER_ENV.gcsProjectId] ? { projectId: env[ARCHIVER_ENV.gcsProjectId] } : {}),
      apiEndpoint: emulator,
      timeouts,
      maxAttempts,
    };
  }
  if (repository.startsWith('file://') || repository.startsWith('/')) {
    let root = repository;
    if (repository.startsWith('file://')) {
      let url: URL | undefined;
      try {
        url = new URL(repository);
      } catch {
        url = undefined;
      }
      if (!url || url.username || url.password || repository.includes('@')) {
        throw new ConfigError(ARCHIVER_ENV.repository, `${repository.includes('@') ? 'contains credentials (value not shown)' : `${JSON.stringify(repository)} is not a file URL`}: write file:///PATH`);
      }
      root = decodeURIComponent(url.pathname);
    }
    return { kind: 'local', root: path.resolve(root) };
  }
  if (repository.includes('@')) throw new ConfigError(ARCHIVER_ENV.repository, 'is not a supported location (value not shown: it may hold credentials): use s3://BUCKET/PATH, gs://BUCKET/PATH, file:///PATH or an absolute path');
  throw new ConfigError(ARCHIVER_ENV.repository, `${JSON.stringify(repository)} is not a supported location: use s3://BUCKET/PATH, gs://BUCKET/PATH, file:///PATH or an absolute path`);
}

/** Whether `directory` is a PostgreSQL data directory. */
function isDataDirectory(directory: string): boolean {
  return fs.existsSync(path.join(directory, DATA_DIRECTORY_MARKER));
}

/**
 * The data directory: the working directory when it is one (archive_command and restore_command
 * run there), else $PGDATA, else none. The launcher applies the same rule (archiver/bin/archiver).
 */
export function resolveDataDirectory(env: Env, cwd: string, dataDirectoryTest: (directory: string) => boolean = isDataDirectory): string | undefined {
  if (dataDirectoryTest(cwd)) return path.resolve(cwd);
  const pgdata = env[PGDATA_ENV];
  return pgdata ? path.resolve(cwd, pgdata) : undefined;
}

/**
 * The spool: ARCHIVER_SPOOL (relative to the working directory); else beside the data directory
 * (resolveDataDirectory); else none. The launcher applies the same rule (archiver/bin/archiver).
 */
export function resolveSpool(env: Env, cwd: string, dataDirectoryTest: (directory: string) => boolean = isDataDirectory): string | undefined {
  const spool = env[ARCHIVER_ENV.spool];
  if (spool) return path.resolve(cwd, spool);
  const dataDirectory = resolveDataDirectory(env, cwd, dataDirectoryTest);
  return dataDirectory === undefined ? undefined : path.resolve(dataDirectory, SPOOL_DEFAULT_FROM_DATA_DIRECTORY);
}

/**
 * Reads the configuration. `cwd` is the working directory: PostgreSQL's data directory when
 * PostgreSQL runs the command.
 */
export function readConfig(env: Env = process.env, cwd: string = process.cwd(), dataDirectoryTest?: (directory: string) => boolean): ArchiverConfig {
  const timeoutSeconds = integer(env, ARCHIVER_ENV.timeoutSeconds, 60, 1, 3600);
  const maxAttempts = integer(env, ARCHIVER_ENV.maxAttempts, 3, 1, 20);
  const storage = storageOptions(env, { connectMs: Math.min(5000, timeoutSeconds * 1000), requestMs: timeoutSeconds * 1000 }, maxAttempts);
  const compression = parseCompressionName(env[ARCHIVER_ENV.compression], ARCHIVER_ENV.compression);
  const levelRaw = env[ARCHIVER_ENV.compressionLevel];
  let compressionLevel: number | undefined;
  if (levelRaw !== undefined && levelRaw !== '') {
    const range = LEVELS[compression];
    if (!range) throw new ConfigError(ARCHIVER_ENV.compressionLevel, `${compression} compression has no levels: unset it or choose zstd, gzip or brotli`);
    compressionLevel = integer(env, ARCHIVER_ENV.compressionLevel, 0, range[0], range[1]);
  }
  return {
    repository: env[ARCHIVER_ENV.repository]!,
    storage,
    compression,
    compressionLevel,
    spool: resolveSpool(env, cwd, dataDirectoryTest),
    dataDirectory: resolveDataDirectory(env, cwd, dataDirectoryTest),
    spoolOwner: spoolOwner(env[ARCHIVER_ENV.repository]!, env[ARCHIVER_ENV.s3Endpoint] || undefined),
    pushConcurrency: integer(env, ARCHIVER_ENV.pushConcurrency, 8, 1, 64),
    workers: integer(env, ARCHIVER_ENV.workers, Math.max(1, Math.min(4, os.availableParallelism())), 0, 64),
    prefetch: integer(env, ARCHIVER_ENV.prefetch, 8, 0, 256),
    prefetchConcurrency: integer(env, ARCHIVER_ENV.prefetchConcurrency, 2, 1, 64),
    daemon: choice(env, ARCHIVER_ENV.daemon, DAEMON_MODES, 'on'),
    daemonIdleSeconds: integer(env, ARCHIVER_ENV.daemonIdleSeconds, 300, 0, 7 * 24 * 3600),
    daemonSilenceSeconds: integer(env, ARCHIVER_ENV.daemonSilenceSeconds, SILENCE_LIMIT_SECONDS, 3, 3600),
    daemonLog: env[ARCHIVER_ENV.daemonLog] || undefined,
    recoveryDeadlineSeconds: integer(env, ARCHIVER_ENV.recoveryDeadlineSeconds, DEFAULT_RECOVERY_DEADLINE_SECONDS, 0, 7 * 24 * 3600),
    logLevel: choice(env, ARCHIVER_ENV.logLevel, ['debug', 'info', 'warn'] as const, 'info'),
  };
}

/**
 * The sidecar's own base backups (backup-scheduler.ts): who takes them, when, and what retention
 * follows. Read apart from readConfig: only the sidecar's background archiver (and `check`) reads
 * them, so that a mistake here never fails a WAL call.
 */
export interface BackupSettings {
  /** POD_NAME: `<statefulset>-<ordinal>`; undefined when unset (then the sidecar takes no backups). */
  readonly podName: string | undefined;
  /** The ordinal at the end of podName. */
  readonly ordinal: number | undefined;
  /** ARCHIVER_BACKUP_AT_READY: a first backup of each new database and timeline. */
  readonly atReady: boolean;
  /**
   * ARCHIVER_BACKUP_SCHEDULE as given (five fields, UTC); undefined: no scheduled backups. Its
   * grammar is checked by backup-schedule.ts's parseBackupSchedule, in the scheduler's bundle (the
   * cron library stays out of the WAL calls' bundle); here only its shape.
   */
  readonly schedule: string | undefined;
  /** ARCHIVER_BACKUP_FROM. */
  readonly from: BackupFrom;
  /** ARCHIVER_BACKUP_RETAIN: `delete retain N` after each scheduled backup. */
  readonly retain: number | undefined;
  /** ARCHIVER_BACKUP_WINDOW: `delete --window` after each scheduled backup, in milliseconds. */
  readonly windowMs: number | undefined;
}

/** A StatefulSet pod's name: a DNS label ending in `-<ordinal>`. */
const POD_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?-(0|[1-9]\d{0,5})$/;

/** The ordinal of a StatefulSet pod's name (`db-2`: 2), or undefined when it is not one. */
export function podOrdinal(podName: string): number | undefined {
  const match = POD_NAME.exec(podName);
  return match && podName.length <= 63 ? Number(match[2]) : undefined;
}

/** Reads ARCHIVER_BACKUP_* and POD_NAME; every problem is a ConfigError naming the variable and the fix. */
export function readBackupSettings(env: Env = process.env): BackupSettings {
  const podName = env[ARCHIVER_ENV.podName] || undefined;
  const ordinal = podName === undefined ? undefined : podOrdinal(podName);
  if (podName !== undefined && ordinal === undefined) {
    throw new ConfigError(ARCHIVER_ENV.podName, `${JSON.stringify(podName)} is not a StatefulSet pod's name (<name>-<ordinal>, e.g. db-0): render it from the downward API (fieldRef metadata.name)`);
  }
  const scheduleRaw = env[ARCHIVER_ENV.backupSchedule]?.trim().replace(/\s+/g, ' ') || undefined;
  if (scheduleRaw !== undefined) {
    const fields = scheduleRaw.split(' ').length;
    if (fields !== 5) {
      const hint = fields === 6 ? ' (a seconds field is not accepted)' : '';
      throw new ConfigError(ARCHIVER_ENV.backupSchedule, `${JSON.stringify(scheduleRaw)} has ${fields} field(s)${hint}: write five, minute hour day-of-month month day-of-week, in UTC (e.g. "0 2 * * *" for 02:00 UTC daily)`);
    }
  }
  const retainRaw = env[ARCHIVER_ENV.backupRetain];
  let retain: number | undefined;
  if (retainRaw !== undefined && retainRaw.trim() !== '') {
    retain = Number(retainRaw.trim());
    if (!/^\d+$/.test(retainRaw.trim()) || !Number.isSafeInteger(retain) || retain < 1) {
      throw new ConfigError(ARCHIVER_ENV.backupRetain, `${JSON.stringify(retainRaw)} is not a whole number of at least 1: the count of complete backups to keep (delete retain N), or unset for no count rule`);
    }
  }
  const windowRaw = env[ARCHIVER_ENV.backupWindow];
  let windowMs: number | undefined;
  if (windowRaw !== undefined && windowRaw.trim() !== '') {
    windowMs = durationMs(windowRaw);
    if (windowMs === undefined || windowMs <= 0) {
      throw new ConfigError(ARCHIVER_ENV.backupWindow, `${JSON.stringify(windowRaw)} is not ${windowMs === 0 ? 'longer than 0' : DURATION_SYNTAX}: the recovery window to keep (delete --window), or unset for no window rule`);
    }
  }
  return {
    podName,
    ordinal,
    atReady: choice(env, ARCHIVER_ENV.backupAtReady, ['on', 'off'] as const, 'on') === 'on',
    schedule: scheduleRaw,
    from: choice(env, ARCHIVER_ENV.backupFrom, BACKUP_FROM, 'primary'),
    retain,
    windowMs,
  };
}

/**
 * ARCHIVER_METRICS_PORT: the port of the sidecar's metrics, or undefined when unset (no metrics).
 * Read apart from readConfig, as the backup settings are: a mistake here never fails a WAL call.
 */
export function readMetricsPort(env: Env = process.env): number | undefined {
  const raw = env[ARCHIVER_ENV.metricsPort]?.trim();
  if (raw === undefined || raw === '') return undefined;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65535) {
    throw new ConfigError(ARCHIVER_ENV.metricsPort, `${JSON.stringify(raw)} is not a TCP port (1 to 65535): the port the sidecar serves its metrics on, or unset for none`);
  }
  return port;
}

/** The configuration as safe to print: credentials replaced by whether they are set. */
export function describeConfig(config: ArchiverConfig): Record<string, unknown> {
  const storage: Record<string, unknown> = { ...config.storage };
  for (const secret of ['accessKeyId', 'secretAccessKey', 'sessionToken']) {
    if (secret in storage) storage[secret] = storage[secret] ? '(set)' : '(not set)';
  }
  if (config.storage.kind === 'gcs' && config.storage.credentials) {
    storage.credentials = `(the key of ${config.storage.credentials.client_email}, from ${ARCHIVER_ENV.gcsCredentialsJson})`;
  }
  return { ...config, storage, spool: config.spool ?? null };
}

/**
 * GCS's service-account key: the JSON itself from gcsCredentialsJson (a container that unsets it
 * before it starts PostgreSQL), else the file gcsCredentialsFile names (the sidecar's mount), else
 * neither (Application Default Credentials). The JSON is never quoted in an error: it holds the
 * private key.
 */
function gcsCredentials(env: Env): { credentials?: GcsServiceAccountKey; keyFilename?: string; projectId?: string } {
  const json = env[ARCHIVER_ENV.gcsCredentialsJson];
  if (!json) return { keyFilename: env[ARCHIVER_ENV.gcsCredentialsFile] || undefined };
  const refuse = (why: string) => new ConfigError(ARCHIVER_ENV.gcsCredentialsJson, `${why} (value not shown): put the service account's JSON key, as the Cloud console downloads it, under the storage Secret's key ${ARCHIVER_ENV.gcsCredentialsJson}`);
  let key: unknown;
  try {
    key = JSON.parse(json);
  } catch {
    throw refuse('is not JSON');
  }
  const { client_email: clientEmail, private_key: privateKey, project_id: projectId } = (key ?? {}) as Record<string, unknown>;
  if (typeof clientEmail !== 'string' || clientEmail === '' || typeof privateKey !== 'string' || !privateKey.includes('PRIVATE KEY')) {
    throw refuse('is not a service-account key: it needs client_email and private_key');
  }
  return { credentials: { client_email: clientEmail, private_key: privateKey }, ...(typeof projectId === 'string' && projectId !== '' ? { projectId } : {}) };
}
