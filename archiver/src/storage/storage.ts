/**
 * The archiver's storage interface: a flat namespace of immutable-by-convention objects under a
 * root (an S3 bucket + prefix, a GCS bucket + prefix, or a local directory).
 *
 * Every backend (local.ts, s3.ts, gcs.ts) implements `Storage` with the same contract and passes
 * the same conformance suite (test/archiver/storage-conformance.test.ts). Cross-cutting features
 * (compression, encryption, rate limits) wrap a `Storage`; they do not live in the backends.
 *
 * This module loads no SDK: it is safe to import from the archiver's entry point. Backends are
 * loaded by `openStorage()` (open.ts), only the one in use.
 *
 * Keys are '/'-separated and relative to the root (the archive's layout is in
 * contract/archive-layout.ts). See `validateKey` for the keys that are refused.
 *
 * Errors (all in ../errors.ts): `InvalidKeyError` for a refused key (before any I/O),
 * `ObjectNotFoundError` and `ObjectExistsError` where documented below, `StorageError` for
 * everything else, with `transient` set when another attempt may succeed.
 *
 * A backend makes one attempt per call and gives it up when `signal` aborts. Deadlines and
 * retries are not the backends' business: `resilient()` (resilient.ts) wraps any backend with
 * them, and `openStorage()` (open.ts) returns backends so wrapped: nothing waits forever on a hung
 * server.
 */
import { InvalidKeyError } from '../errors';

export interface ObjectInfo {
  /** The key, relative to the storage root. */
  readonly key: string;
  /** Size in bytes. */
  readonly size: number;
  /** When the object was last written, as the backend reports it. */
  readonly lastModified: Date;
}

/** Options every operation takes. */
export interface OperationOptions {
  /**
   * Gives the operation up: the backend stops its request and rejects (with the signal's reason
   * wrapped in a StorageError). The retry wrapper aborts an attempt at its deadline this way.
   * @default - the operation runs until it settles
   */
  readonly signal?: AbortSignal;
}

export interface PutOptions extends OperationOptions {
  /**
   * Refuse to replace an existing object: throw `ObjectExistsError`.
   *
   * Best effort where the server does not enforce it: backends send the precondition (S3
   * `If-None-Match: *`, GCS `ifGenerationMatch: 0`, local: link() which never replaces) and map the
   * server's 412 to `ObjectExistsError`. s3rver ignores If-None-Match and the GCS emulator ignores
   * ifGenerationMatch: there the put replaces. Callers that must not overwrite should still compare
   * contents first (wal-push does: "already archived, contents differ").
   * @default false - an existing object is replaced
   */
  readonly ifAbsent?: boolean;
}

export interface Storage {
  /** Where this storage points, for messages, e.g. "s3://bucket/prefix" (never credentials). */
  readonly location: string;

  /** The whole object. Throws `ObjectNotFoundError` when absent. */
  get(key: string, options?: OperationOptions): Promise<Buffer>;

  /**
   * A streaming read for large objects (base backups). Throws `ObjectNotFoundError` when absent,
   * before any data is emitted. A failure after that is emitted as an 'error' on the stream.
   * The caller must consume or destroy the stream.
   */
  getStream(key: string, options?: OperationOptions): Promise<NodeJS.ReadableStream>;

  /** Size and time, or `undefined` when absent. */
  stat(key: string, options?: OperationOptions): Promise<ObjectInfo | undefined>;

  /**
   * Store `body` under `key`. The object becomes visible under `key` only when complete (never a
   * partial object under the final name); resolves only once durably stored.
   */
  put(key: string, body: Buffer, options?: PutOptions): Promise<void>;

  /**
   * Store a stream with bounded memory (S3: multipart upload; GCS: one streamed request; local:
   * temp file). Same visibility and durability as `put`. If `body` fails, the put fails and no
   * object appears under `key`. The caller owns `body`: after a failure, destroy it if it is still
   * open (backends destroy it when they stop reading it mid-way, as stream.pipeline does).
   */
  putStream(key: string, body: NodeJS.ReadableStream, options?: PutOptions): Promise<void>;

  /**
   * Every object whose key starts with `prefix` (a plain string prefix, not only whole
   * directories; '' lists everything), recursively, sorted by key (UTF-8 byte order, the order S3
   * and GCS list in). Listing an absent prefix gives [], not an error. Pagination is handled here.
   */
  list(prefix: string, options?: OperationOptions): Promise<ObjectInfo[]>;

  /** Delete; absent keys are not an error. Batched where the API allows (S3 DeleteObjects ≤ 1000). */
  delete(keys: readonly string[], options?: OperationOptions): Promise<void>;

  /** Release sockets and handles. The storage must not be used afterwards. */
  close(): Promise<void>;
}

/** Deadlines of network operations. */
export interface Timeouts {
  /**
   * Time to establish a TCP (+TLS) connection. S3 only: @google-cloud/storage has no connect
   * timeout, requestMs covers connecting there.
   * @default 5000
   */
  readonly connectMs?: number;
  /**
   * Time for one request: sending its body and receiving the response head; for streamed bodies,
   * also the longest pause without progress. A 16 MiB WAL segment must fit on a slow link, hence the
   * generous default. A hung server makes an operation fail after about maxAttempts × requestMs.
   * @default 60000
   */
  readonly requestMs?: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Attempts per request (the first one included) for network backends. */
export const DEFAULT_MAX_ATTEMPTS = 3;

export interface LocalStorageOptions {
  readonly kind: 'local';
  /** The directory holding the objects; created on first put. */
  readonly root: string;
}

export interface S3StorageOptions {
  readonly kind: 's3';
  readonly bucket: string;
  /** Key prefix inside the bucket, without leading or trailing '/'.
   * @default - the bucket's root */
  readonly prefix?: string;
  /** e.g. `http://127.0.0.1:9000` for MinIO or s3rver.
   * @default - AWS S3 for `region` */
  readonly endpoint?: string;
  /** @default 'us-east-1' */
  readonly region?: string;
  /** Path-style URLs (`endpoint/bucket/key`) instead of virtual-hosted ones.
   * @default - true when `endpoint` is set, false otherwise */
  readonly forcePathStyle?: boolean;
  /** Static credentials; both or neither.
   * @default - the SDK's default chain (environment, shared files, IMDS, web identity) */
  readonly accessKeyId?: string;
  readonly secretAccessKey?: string;
  /** Session token for temporary static credentials.
   * @default - none */
  readonly sessionToken?: string;
  /**
   * When the SDK adds request checksums. WHEN_SUPPORTED keeps end-to-end integrity checks for real
   * S3; s3rver (and some other S3 clones) mishandle them: use WHEN_REQUIRED there.
   * @default 'WHEN_SUPPORTED'
   */
  readonly requestChecksumCalculation?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  /** @default - connectMs 5000, requestMs 60000 */
  readonly timeouts?: Timeouts;
  /** Attempts per request, the first included (retries use the SDK's exponential backoff).
   * @default 3 */
  readonly maxAttempts?: number;
  /** Verify the server's TLS certificate.
   * @default true */
  readonly tlsRejectUnauthorized?: boolean;
  /** Objects per ListObjectsV2 page (S3 caps it at 1000); smaller values only serve tests.
   * @default 1000 */
  readonly listPageSize?: number;
  /** Part size of multipart uploads in putStream (S3: 5 MiB minimum, 10000 parts at most; the
   * default allows streams up to ~78 GiB). Streams shorter than one part are sent in one PutObject.
   * @default 8 MiB */
  readonly partSizeBytes?: number;
  /** Parts uploaded at once by putStream; memory is bounded by (partConcurrency + 1) × partSizeBytes.
   * @default 4 */
  readonly partConcurrency?: number;
}

/** What the client needs of a service account's JSON key. */
export interface GcsServiceAccountKey {
  readonly client_email: string;
  readonly private_key: string;
}

export interface GcsStorageOptions {
  readonly kind: 'gcs';
  readonly bucket: string;
  /** Key prefix inside the bucket, without leading or trailing '/'.
   * @default - the bucket's root */
  readonly prefix?: string;
  /** @default - from the credentials or the environment */
  readonly projectId?: string;
  /** A service account key file.
   * @default - Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, metadata server) */
  readonly keyFilename?: string;
  /** A service account key itself; used before `keyFilename`.
   * @default - from `keyFilename` */
  readonly credentials?: GcsServiceAccountKey;
  /** e.g. the emulator's `http://127.0.0.1:PORT`. @google-cloud/storage also honours
   * STORAGE_EMULATOR_HOST. A custom endpoint is used without authentication.
   * @default - https://storage.googleapis.com */
  readonly apiEndpoint?: string;
  /** @default - connectMs 5000, requestMs 60000 */
  readonly timeouts?: Timeouts;
  /** Attempts per request, the first included.
   * @default 3 */
  readonly maxAttempts?: number;
  /** Objects per list page (GCS caps it at 1000); smaller values only serve tests.
   * @default 1000 */
  readonly listPageSize?: number;
}

/** Where the archive lives; `kind` picks the backend. */
export type StorageOptions = LocalStorageOptions | S3StorageOptions | GcsStorageOptions;

/**
 * Throws `InvalidKeyError` unless `key` is a usable object key: not empty, made of non-empty
 * '/'-separated segments (so no leading, trailing or doubled '/'), none of them '.' or '..', no NUL
 * character, at most 1024 bytes of UTF-8 (the S3 and GCS limit).
 */
export function validateKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new InvalidKeyError(String(key), 'a key must not be empty');
  }
  if (key.startsWith('/')) {
    throw new InvalidKeyError(key, "a key is relative to the storage root and must not start with '/'");
  }
  validateCommon(key);
  if (key.endsWith('/')) {
    throw new InvalidKeyError(key, "a key must not end with '/'");
  }
}

/**
 * Throws `InvalidKeyError` unless `prefix` can prefix keys: '' (everything), or a string that
 * does not start with '/' and has no empty, '.' or '..' segment before its last '/'. The part after
 * the last '/' may be partial ('wal/00000001' matches 'wal/000000010000…').
 */
export function validatePrefix(prefix: string): void {
  if (typeof prefix !== 'string') {
    throw new InvalidKeyError(String(prefix), 'a prefix must be a string');
  }
  if (prefix === '') {
    return;
  }
  if (prefix.startsWith('/')) {
    throw new InvalidKeyError(prefix, "a prefix is relative to the storage root and must not start with '/'");
  }
  validateCommon(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}

function validateCommon(value: string): void {
  if (value.includes('\0')) {
    throw new InvalidKeyError(value, 'NUL characters are not allowed');
  }
  if (Buffer.byteLength(value, 'utf8') > 1024) {
    throw new InvalidKeyError(value, 'longer than 1024 bytes of UTF-8');
  }
  for (const segment of value.split('/')) {
    if (segment === '') {
      throw new InvalidKeyError(value, "empty segment ('//')");
    }
    if (segment === '.' || segment === '..') {
      throw new InvalidKeyError(value, `'${segment}' segments are not allowed`);
    }
  }
}

/** Orders keys by their UTF-8 bytes, the order S3 and GCS list in. */
export function compareKeys(a: string, b: string): number {
  // UTF-8 byte order is code point order. UTF-16 code unit order differs from it only for
  // surrogates (code points >= U+10000) against U+E000..U+FFFF: move those two ranges past each other.
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      return codePointRank(x) - codePointRank(y);
    }
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) {
    return unit + 0x2000;
  }
  return unit >= 0xe000 ? unit - 0x800 : unit;
}

/** Validates and normalizes a backend prefix option: no leading or trailing '/'; '' for none. */
export function normalizeRootPrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (trimmed !== '') {
    validateKey(trimmed);
  }
  return trimmed;
}

/**
 * For backends: runs `task` for every item, at most `limit` at a time; once all started tasks have
 * settled, rejects with the first failure (no task is started after a failure).
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === undefined) {
      const index = next++;
      try {
        await task(items[index], index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) {
    throw failure.error;
  }
}
