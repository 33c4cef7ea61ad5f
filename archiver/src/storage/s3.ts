import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
// A dependency of @aws-sdk/client-s3 (same major), hoisted to the project's node_modules.
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { DEFAULT_AWS_REGION } from '../../../contract';
import { ObjectExistsError, ObjectNotFoundError, StorageError, StorageOperation } from '../errors';
import { Limiter } from '../limiter';
import { readBody } from './read-body';
import { RetryPolicy, attemptFailure } from './resilient';
import {
  compareKeys,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  normalizeRootPrefix,
  ObjectInfo,
  OperationOptions,
  PutOptions,
  S3StorageOptions,
  Storage,
  validateKey,
  validatePrefix,
} from './storage';

// The SDK warns on every client construction under node < 22 (NodeVersionSupportWarning, on
// stderr, which the archiver shares with PostgreSQL's log). The check runs when a client is
// constructed, so setting the variable here, before any S3Client exists, is enough.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Sockets per agent: the archiver pushes segments in parallel and putStream uploads parts in parallel. */
const MAX_SOCKETS = 32;
/** S3's limit of keys per DeleteObjects request. */
const DELETE_BATCH = 1000;
/** S3's limit of parts per multipart upload. */
const MAX_PARTS = 10_000;
const MIN_PART_SIZE = 5 * 1024 * 1024;
const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
const DEFAULT_PART_CONCURRENCY = 4;

/** The SDK's logger, silenced: failures reach the caller as errors, never as console output. */
const SILENT_LOGGER = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/**
 * An S3 (or S3-compatible: MinIO, Ceph RGW, s3rver) bucket + prefix.
 *
 * One attempt per call, given up when the caller's signal aborts; deadlines and retries come from
 * the wrapper (resilient.ts). The transport has its own two guards: a connect timeout
 * (`connectMs`) and a socket inactivity timeout (`requestMs`), which also fails a response body
 * that stops arriving. Streams longer than one part are uploaded in parts, `partConcurrency` at a
 * time through the project's Limiter, each part retried by the same RetryPolicy.
 */
export class S3Storage implements Storage {
  public readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly root: string;
  private readonly listPageSize: number;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly partChecksums: boolean;

  constructor(
    options: S3StorageOptions,
    /** Retries of the parts of a streamed upload (whole operations are retried by the wrapper). */
    private readonly policy: RetryPolicy = new RetryPolicy({ attempts: 1, attemptTimeoutMs: 0 }),
  ) {
    if (typeof options.bucket !== 'string' || options.bucket === '') {
      throw new Error(`s3 storage: bucket must be a bucket name, got ${JSON.stringify(options.bucket)}`);
    }
    if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined)) {
      throw new Error('s3 storage: set both accessKeyId and secretAccessKey, or neither (to use the default credential chain)');
    }
    this.bucket = options.bucket;
    this.root = normalizeRootPrefix(options.prefix);
    const connectMs = options.timeouts?.connectMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const requestMs = options.timeouts?.requestMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.listPageSize = Math.min(options.listPageSize ?? 1000, 1000);
    this.partSize = options.partSizeBytes ?? DEFAULT_PART_SIZE;
    if (this.partSize < MIN_PART_SIZE) {
      throw new Error(`s3 storage: partSizeBytes must be at least ${MIN_PART_SIZE} (S3's minimum), got ${this.partSize}`);
    }
    this.partConcurrency = Math.max(1, options.partConcurrency ?? DEFAULT_PART_CONCURRENCY);
    const requestChecksumCalculation = options.requestChecksumCalculation ?? 'WHEN_SUPPORTED';
    this.partChecksums = requestChecksumCalculation === 'WHEN_SUPPORTED';
    const endpoint = options.endpoint === undefined ? '' : ` (endpoint ${withoutUserInfo(options.endpoint)})`;
    this.location = `s3://${this.bucket}${this.root === '' ? '' : `/${this.root}`}${endpoint}`;

    const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS };
    this.client = new S3Client({
      region: options.region ?? DEFAULT_AWS_REGION,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      credentials:
        options.accessKeyId !== undefined && options.secretAccessKey !== undefined
          ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey, sessionToken: options.sessionToken }
          : undefined,
      requestChecksumCalculation,
      // Retries are the wrapper's (resilient.ts): one attempt per call here.
      maxAttempts: 1,
      logger: SILENT_LOGGER,
      requestHandler: new NodeHttpHandler({
        connectionTimeout: connectMs,
        socketTimeout: requestMs,
        httpAgent: new http.Agent(agentOptions),
        httpsAgent: new https.Agent({ ...agentOptions, rejectUnauthorized: options.tlsRejectUnauthorized ?? true }),
        logger: SILENT_LOGGER,
      }),
    });
    if (options.endpoint === undefined || options.endpoint.startsWith('https:')) {
      // SigV4 signs a SHA-256 of every body by default: ~8 ms of the main thread per 16 MiB
      // segment. Over TLS the transport protects the body and S3 accepts an unsigned payload;
      // integrity end to end is the archive's own checksum (and the SDK's CRC with WHEN_SUPPORTED).
      this.client.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { headers?: Record<string, string> };
          if (request.headers && !request.headers['x-amz-content-sha256']) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
          return next(args);
        },
        { step: 'build', name: 'archiverUnsignedPayload' },
      );
    }
  }

  async get(key: string, options: OperationOptions = {}): Promise<Buffer> {
    const objectKey = this.objectKey(key);
    return this.call('get', key, options.signal, async (abortSignal) => {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal });
      // Not transformToByteArray(): it copies every object twice (read-body.ts).
      return readBody(bodyOf(response) as unknown as AsyncIterable<Uint8Array>, response.ContentLength);
    });
  }

  async getStream(key: string, options: OperationOptions = {}): Promise<NodeJS.ReadableStream> {
    const objectKey = this.objectKey(key);
    // The signal stays in force for the body: aborting it ends the download.
    const response = await this.call('getStream', key, options.signal, (abortSignal) =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal }),
    );
    return bodyOf(response) as unknown as Readable;
  }

  async stat(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    const objectKey = this.objectKey(key);
    try {
      const head = await this.call('stat', key, options.signal, (abortSignal) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal }),
      );
      return { key, size: head.ContentLength ?? 0, lastModified: head.LastModified ?? new Date(0) };
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return undefined;
      throw error;
    }
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    await this.putObject('put', key, this.objectKey(key), body, options, options.signal);
  }

  /**
   * Streams shorter than two parts go in one PutObject; longer ones in a multipart upload of
   * `partSizeBytes` parts, `partConcurrency` at a time (memory: (partConcurrency + 1) × partSize),
   * aborted on failure. S3 makes the object visible only on CompleteMultipartUpload.
   *
   * Our own engine rather than @aws-sdk/lib-storage's `Upload`: measured faster against s3rver
   * (bench/multipart.ts, 2026-11-30: 128 MiB in 8 MiB parts, 4 at once, 5 alternating rounds:
   * 44 MiB/s, range 36–47, against Upload's 33, range 31–42), and it retries each part with the
   * archive's RetryPolicy and bounds concurrency with the project's Limiter, not a second mechanism.
   */
  async putStream(key: string, body: NodeJS.ReadableStream, options: PutOptions = {}): Promise<void> {
    const objectKey = this.objectKey(key);
    const parts = readParts(body, this.partSize);
    try {
      const first = await parts.next();
      if (first.done === true) return await this.putObject('putStream', key, objectKey, Buffer.alloc(0), options, options.signal);
      const second = await parts.next();
      if (second.done === true) return await this.putObject('putStream', key, objectKey, first.value, options, options.signal);
      await this.multipartUpload(key, objectKey, [first.value, second.value], parts, options);
    } catch (error) {
      if (error instanceof StorageError || error instanceof ObjectExistsError) throw error;
      throw new StorageError({ operation: 'putStream', location: this.location, key, cause: error });
    } finally {
      // Stops reading (and destroys) the body when the upload ended early.
      await parts.return(undefined);
    }
  }

  async list(prefix: string, options: OperationOptions = {}): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    const fullPrefix = this.root === '' ? prefix : `${this.root}/${prefix}`;
    const found: ObjectInfo[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.call('list', prefix, options.signal, (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: fullPrefix, MaxKeys: this.listPageSize, ContinuationToken: continuationToken }),
          { abortSignal },
        ),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || object.Key.endsWith('/')) continue; // "directory markers" made by consoles are not objects
        found.push({
          key: this.root === '' ? object.Key : object.Key.slice(this.root.length + 1),
          size: object.Size ?? 0,
          lastModified: object.LastModified ?? new Date(0),
        });
      }
      continuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (continuationToken !== undefined);
    return found.sort((a, b) => compareKeys(a.key, b.key));
  }

  async delete(keys: readonly string[], options: OperationOptions = {}): Promise<void> {
    const objectKeys = keys.map((key) => this.objectKey(key));
    for (let start = 0; start < objectKeys.length; start += DELETE_BATCH) {
      const batch = objectKeys.slice(start, start + DELETE_BATCH);
      const result = await this.call('delete', keys[start], options.signal, (abortSignal) =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }), { abortSignal }),
      );
      const failed = (result.Errors ?? []).filter((error) => error.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const first = failed[0];
        const key = first.Key !== undefined && this.root !== '' ? first.Key.slice(this.root.length + 1) : first.Key;
        throw new StorageError({
          operation: 'delete',
          location: this.location,
          key,
          cause: new Error(`${failed.length} of ${batch.length} keys not deleted, first: ${first.Code}: ${first.Message}`),
        });
      }
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private objectKey(key: string): string {
    validateKey(key);
    return this.root === '' ? key : `${this.root}/${key}`;
  }

  private async putObject(operation: 'put' | 'putStream', key: string, objectKey: string, body: Buffer, options: PutOptions, signal: AbortSignal | undefined): Promise<void> {
    await this.call(operation, key, signal, (abortSignal) =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          Body: body,
          ContentLength: body.length,
          ContentType: 'application/octet-stream',
          IfNoneMatch: options.ifAbsent === true ? '*' : undefined,
        }),
        { abortSignal },
      ),
    );
  }

  private async multipartUpload(key: string, objectKey: string, firstParts: readonly Buffer[], rest: AsyncGenerator<Buffer>, options: PutOptions): Promise<void> {
    const checksum = this.partChecksums ? ({ ChecksumAlgorithm: 'CRC32' } as const) : {};
    const outer = options.signal;
    const target = { operation: 'putStream' as const, location: this.location, key };
    const created = await this.policy.run(
      target,
      (signal) => this.call('putStream', key, signal, (abortSignal) =>
        this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, ContentType: 'application/octet-stream', ...checksum }), { abortSignal }),
      ),
      outer,
    );
    const uploadId = created.UploadId;
    if (uploadId === undefined) {
      throw new StorageError({ operation: 'putStream', location: this.location, key, cause: new Error('CreateMultipartUpload returned no UploadId'), transient: false });
    }
    const completed: CompletedPart[] = [];
    const limiter = new Limiter(this.partConcurrency);
    const uploads: Promise<void>[] = [];
    const pending = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let partNumber = 0;
    const startPart = (data: Buffer): void => {
      const number = ++partNumber;
      if (number > MAX_PARTS) throw new Error(`stream too large: more than ${MAX_PARTS} parts of ${this.partSize} bytes (raise partSizeBytes)`);
      const upload = limiter
        .run(() =>
          failure
            ? Promise.resolve()
            : this.policy.run(
                target,
                (signal) => this.call('putStream', key, signal, (abortSignal) =>
                  this.client.send(
                    new UploadPartCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId, PartNumber: number, Body: data, ContentLength: data.length, ...checksum }),
                    { abortSignal },
                  ),
                ),
                outer,
              ).then((part) => {
                completed[number - 1] = { PartNumber: number, ETag: part.ETag, ChecksumCRC32: part.ChecksumCRC32 };
              }),
        )
        .catch((error: unknown) => {
          failure ??= { error };
        })
        .finally(() => pending.delete(upload));
      uploads.push(upload);
      pending.add(upload);
    };

    try {
      firstParts.forEach(startPart);
      for (;;) {
        // Bounded memory: read the next part only when a slot is free (one part waits, read ahead).
        while (limiter.queued > 0 && failure === undefined) await Promise.race(pending);
        if (failure !== undefined) break;
        const next = await rest.next();
        if (next.done === true) break;
        startPart(next.value);
      }
      await Promise.all(uploads);
      if (failure !== undefined) throw failure.error;
      await this.policy.run(
        target,
        (signal) => this.call('putStream', key, signal, (abortSignal) =>
          this.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key: objectKey,
              UploadId: uploadId,
              MultipartUpload: { Parts: completed },
              IfNoneMatch: options.ifAbsent === true ? '*' : undefined,
            }),
            { abortSignal },
          ),
        ),
        outer,
      );
    } catch (error) {
      failure ??= { error };
      await Promise.all(uploads); // they never reject
      // Best effort: the parts of an upload never completed are invisible but billed until aborted
      // (or a lifecycle rule removes them). s3rver answers 405 here.
      await this.call('putStream', key, undefined, (abortSignal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }), { abortSignal }),
      ).catch(() => undefined);
      throw error;
    }
  }

  /**
   * One SDK call, given up when `signal` aborts, its errors mapped: 404 on a read →
   * ObjectNotFoundError, 412 on a write → ObjectExistsError, anything else → StorageError (transient
   * for network failures, timeouts, 408, 429 and 5xx).
   */
  private async call<T>(operation: StorageOperation, key: string | undefined, signal: AbortSignal | undefined, send: (abortSignal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    try {
      signal?.throwIfAborted();
      return await send(signal);
    } catch (error) {
      if (error instanceof ObjectNotFoundError || error instanceof ObjectExistsError || error instanceof StorageError) throw error;
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const name = (error as Error | undefined)?.name;
      const reads = operation === 'get' || operation === 'getStream' || operation === 'stat';
      if (key !== undefined && reads && (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket'))) {
        throw new ObjectNotFoundError(key, this.location);
      }
      if (key !== undefined && (operation === 'put' || operation === 'putStream') && (status === 412 || name === 'PreconditionFailed')) {
        throw new ObjectExistsError(key, this.location);
      }
      throw attemptFailure({ operation, location: this.location, key, error, status, signal, alsoTransient: /Throttl|SlowDown|RequestTimeout/.test(name ?? '') });
    }
  }
}

function bodyOf(response: GetObjectCommandOutput): NonNullable<GetObjectCommandOutput['Body']> {
  if (response.Body === undefined) {
    throw new Error('GetObject returned no body');
  }
  return response.Body;
}

/** Cuts a stream into Buffers of exactly `partSize` bytes, the last one shorter (none for an empty stream). */
async function* readParts(body: NodeJS.ReadableStream, partSize: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer | string>) {
    let data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    while (pendingBytes + data.length >= partSize) {
      const take = partSize - pendingBytes;
      pending.push(data.subarray(0, take));
      yield Buffer.concat(pending, partSize);
      pending = [];
      pendingBytes = 0;
      data = data.subarray(take);
    }
    if (data.length > 0) {
      pending.push(data);
      pendingBytes += data.length;
    }
  }
  if (pendingBytes > 0) {
    yield Buffer.concat(pending, pendingBytes);
  }
}

/** The endpoint for messages: credentials in the URL's user info are dropped. */
function withoutUserInfo(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    return '(unparsable endpoint)';
  }
}
