/**
 * The archiver's configuration, read from the environment the constructs render (the variable
 * names live in contract.ts). Every problem names its variable; values of credentials never
 * appear in messages.
 */
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { CompressionName, parseCompressionName } from './compression/codec';
import { ARCHIVER_ENV, spoolOwner } from '../../contract';
import { ConfigError } from './errors';
import type { StorageOptions } from './storage/storage';

export interface ArchiverConfig {
  /** ARCHIVER_REPOSITORY as given, for messages. */
  readonly repository: string;
  readonly storage: StorageOptions;
  readonly compression: CompressionName;
  readonly compressionLevel: number | undefined;
  readonly spool: string;
  /** The archive location, as the spool records its owner (contract.ts `spoolOwner`). */
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
  readonly logLevel: 'debug' | 'info' | 'warn';
  /**
   * A digest of everything that decides where and how objects are written (credentials
   * included, hashed): a background process serves only clients with the same configuration.
   * Not in it: `daemon`, `daemonIdleSeconds` and `logLevel`, which differ between the sidecar
   * and the calls it serves.
   */
  readonly fingerprint: string;
}

export type DaemonMode = 'on' | 'external' | 'off';

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

/** Splits `s3://bucket/some/prefix` into bucket and prefix. */
function bucketAndPrefix(url: string, scheme: string): { bucket: string; prefix: string | undefined } {
  const rest = url.slice(scheme.length + 3);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
  if (!bucket) throw new ConfigError(ARCHIVER_ENV.repository, `${JSON.stringify(url)} has no bucket: write ${scheme}://BUCKET/PATH`);
  if (prefix.split('/').some((s) => s === '..' || s === '.') || prefix.includes('//') || prefix.startsWith('/')) {
    throw new ConfigError(ARCHIVER_ENV.repository, `${JSON.stringify(url)} has an empty, '.' or '..' path segment`);
  }
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
      let url: URL | undefined;
      try {
        url = new URL(endpoint);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
        throw new ConfigError(ARCHIVER_ENV.s3Endpoint, `${JSON.stringify(endpoint)} is not an http(s) URL, e.g. http://minio.storage.svc:9000`);
      }
    }
    const pathStyle = choice(env, ARCHIVER_ENV.s3ForcePathStyle, ['true', 'false'] as const, endpoint && !/\.amazonaws\.com(:\d+)?\/?$/.test(endpoint) ? 'true' : 'false');
    const checksums = choice(env, ARCHIVER_ENV.s3Checksums, ['when_supported', 'when_required'] as const, 'when_supported');
    return {
      kind: 's3',
      bucket,
      prefix,
      endpoint,
      region: env[ARCHIVER_ENV.awsRegion] || 'us-east-1',
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
    const emulator = env.STORAGE_EMULATOR_HOST || undefined;
    if (emulator !== undefined && !/^https?:\/\//.test(emulator)) {
      throw new ConfigError('STORAGE_EMULATOR_HOST', `${JSON.stringify(emulator)} needs its scheme, e.g. http://127.0.0.1:9199`);
    }
    return {
      kind: 'gcs',
      bucket,
      prefix,
      projectId: env[ARCHIVER_ENV.gcsProjectId] || undefined,
      keyFilename: env[ARCHIVER_ENV.gcsCredentialsFile] || undefined,
      apiEndpoint: emulator,
      timeouts,
      maxAttempts,
    };
  }
  if (repository.startsWith('file://') || repository.startsWith('/')) {
    const root = repository.startsWith('file://') ? decodeURIComponent(new URL(repository).pathname) : repository;
    return { kind: 'local', root: path.resolve(root) };
  }
  throw new ConfigError(ARCHIVER_ENV.repository, `${JSON.stringify(repository)} is not a supported location: use s3://BUCKET/PATH, gs://BUCKET/PATH, file:///PATH or an absolute path`);
}

/**
 * Reads the configuration. `dataDirectory` is PostgreSQL's data directory (the working directory
 * of archive_command), used for the default spool.
 */
export function readConfig(env: Env = process.env, dataDirectory: string = process.cwd()): ArchiverConfig {
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
  const spool = path.resolve(dataDirectory, env[ARCHIVER_ENV.spool] || '../archiver-spool');
  const config = {
    repository: env[ARCHIVER_ENV.repository]!,
    storage,
    compression,
    compressionLevel,
    spool,
    spoolOwner: spoolOwner(env[ARCHIVER_ENV.repository]!, env[ARCHIVER_ENV.s3Endpoint] || undefined),
    pushConcurrency: integer(env, ARCHIVER_ENV.pushConcurrency, 8, 1, 64),
    workers: integer(env, ARCHIVER_ENV.workers, Math.max(1, Math.min(4, os.availableParallelism())), 0, 64),
    prefetch: integer(env, ARCHIVER_ENV.prefetch, 8, 0, 256),
    prefetchConcurrency: integer(env, ARCHIVER_ENV.prefetchConcurrency, 2, 1, 64),
    daemon: choice(env, ARCHIVER_ENV.daemon, ['on', 'external', 'off'] as const, 'on'),
    daemonIdleSeconds: integer(env, ARCHIVER_ENV.daemonIdleSeconds, 300, 0, 7 * 24 * 3600),
    logLevel: choice(env, ARCHIVER_ENV.logLevel, ['debug', 'info', 'warn'] as const, 'info'),
  };
  // Who starts the background archiver, when it stops and what it logs do not change the work:
  // the sidecar (external, never idle) and the PostgreSQL container's calls must agree.
  const { daemon: _daemon, daemonIdleSeconds: _idle, logLevel: _logLevel, ...work } = config;
  const fingerprint = createHash('sha256').update(JSON.stringify(work)).digest('hex').slice(0, 16);
  return { ...config, fingerprint };
}

/** The configuration as safe to print: credentials replaced by whether they are set. */
export function describeConfig(config: ArchiverConfig): Record<string, unknown> {
  const storage: Record<string, unknown> = { ...config.storage };
  for (const secret of ['accessKeyId', 'secretAccessKey', 'sessionToken']) {
    if (secret in storage) storage[secret] = storage[secret] ? '(set)' : '(not set)';
  }
  return { ...config, storage };
}
