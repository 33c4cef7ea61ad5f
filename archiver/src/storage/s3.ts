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
import {
  compareKeys,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  normalizeRootPrefix,
  ObjectExistsError,
  ObjectInfo,
  ObjectNotFoundError,
  PutOptions,
  S3StorageOptions,
  Storage,
  StorageError,
  StorageOperation,
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
/** Time allowed per attempt for the SDK's backoff between retries, in the overall deadline. */
const BACKOFF_ALLOWANCE_MS = 1_000;

/** The SDK's logger, silenced: failures reach the caller as errors, never as console output. */
const SILENT_LOGGER = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/**
 * An S3 (or S3-compatible: MinIO, Ceph RGW, s3rver) bucket + prefix.
 *
 * Deadlines: every request has a connect timeout (`connectMs`), a request timeout (`requestMs`:
 * until the response head, body included) and a socket inactivity timeout (`requestMs`: also
 * covers response bodies, so a server that stops mid-download fails the stream). The SDK retries
 * timeouts, connection errors, 5xx and throttling up to `maxAttempts` with exponential backoff; on
 * top of that each operation is aborted after maxAttempts × (requestMs + 1 s), should anything
 * in the SDK not honour its timeouts.
 */
export class S3Storage implements Storage {
  public readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly root: string;
  private readonly deadlineMs: number;
  private readonly listPageSize: number;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly partChecksums: boolean;

  constructor(options: S3StorageOptions) {
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
    const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.deadlineMs = maxAttempts * (requestMs + BACKOFF_ALLOWANCE_MS);
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
      region: options.region ?? 'us-east-1',
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      credentials:
        options.accessKeyId !== undefined && options.secretAccessKey !== undefined
          ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey, sessionToken: options.sessionToken }
          : undefined,
      requestChecksumCalculation,
      maxAttempts,
      logger: SILENT_LOGGER,
      requestHandler: new NodeHttpHandler({
        connectionTimeout: connectMs,
        requestTimeout: requestMs,
        throwOnRequestTimeout: true,
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

  async get(key: string): Promise<Buffer> {
    const objectKey = this.objectKey(key);
    return this.run('get', key, async (abortSignal) => {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal });
      const bytes = await bodyOf(response).transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    });
  }

  async getStream(key: string): Promise<NodeJS.ReadableStream> {
    const objectKey = this.objectKey(key);
    // The deadline ends with the response head; the body is guarded by the socket inactivity timeout.
    const response = await this.run('getStream', key, (abortSignal) =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal }),
    );
    return bodyOf(response) as unknown as Readable;
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const objectKey = this.objectKey(key);
    try {
      const head = await this.run('stat', key, (abortSignal) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal }),
      );
      return { key, size: head.ContentLength ?? 0, lastModified: head.LastModified ?? new Date(0) };
    } catch (error) {
      if (error instanceof ObjectNotFoundError) {
        return undefined;
      }
      throw error;
    }
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    await this.putObject('put', key, this.objectKey(key), body, options);
  }

  /**
   * Streams shorter than two parts go in one PutObject; longer ones in a multipart upload of
   * `partSizeBytes` parts, `partConcurrency` at a time (memory: (partConcurrency + 1) × partSize),
   * aborted on failure. S3 makes the object visible only on CompleteMultipartUpload.
   */
  async putStream(key: string, body: NodeJS.ReadableStream, options: PutOptions = {}): Promise<void> {
    const objectKey = this.objectKey(key);
    const parts = readParts(body, this.partSize);
    try {
      const first = await parts.next();
      if (first.done === true) {
        return await this.putObject('putStream', key, objectKey, Buffer.alloc(0), options);
      }
      const second = await parts.next();
      if (second.done === true) {
        return await this.putObject('putStream', key, objectKey, first.value, options);
      }
      await this.multipartUpload(key, objectKey, [first.value, second.value], parts, options);
    } catch (error) {
      if (error instanceof StorageError || error instanceof ObjectExistsError) {
        throw error;
      }
      throw new StorageError({ operation: 'putStream', location: this.location, key, cause: error });
    } finally {
      // Stops reading (and destroys) the body when the upload ended early.
      await parts.return(undefined);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    const fullPrefix = this.root === '' ? prefix : `${this.root}/${prefix}`;
    const found: ObjectInfo[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.run('list', prefix, (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: fullPrefix,
            MaxKeys: this.listPageSize,
            ContinuationToken: continuationToken,
          }),
          { abortSignal },
        ),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || object.Key.endsWith('/')) {
          continue; // "directory markers" made by consoles are not objects
        }
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

  async delete(keys: readonly string[]): Promise<void> {
    const objectKeys = keys.map((key) => this.objectKey(key));
    for (let start = 0; start < objectKeys.length; start += DELETE_BATCH) {
      const batch = objectKeys.slice(start, start + DELETE_BATCH);
      const result = await this.run('delete', keys[start], (abortSignal) =>
        this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
          { abortSignal },
        ),
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

  private async putObject(operation: 'put' | 'putStream', key: string, objectKey: string, body: Buffer, options: PutOptions): Promise<void> {
    await this.run(operation, key, (abortSignal) =>
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

  private async multipartUpload(
    key: string,
    objectKey: string,
    firstParts: readonly Buffer[],
    rest: AsyncGenerator<Buffer>,
    options: PutOptions,
  ): Promise<void> {
    const checksum = this.partChecksums ? ({ ChecksumAlgorithm: 'CRC32' } as const) : {};
    const created = await this.run('putStream', key, (abortSignal) =>
      this.client.send(
        new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, ContentType: 'application/octet-stream', ...checksum }),
        { abortSignal },
      ),
    );
    const uploadId = created.UploadId;
    if (uploadId === undefined) {
      throw new StorageError({ operation: 'putStream', location: this.location, key, cause: new Error('CreateMultipartUpload returned no UploadId') });
    }
    const completed: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let partNumber = 0;
    const startPart = (data: Buffer): void => {
      const number = ++partNumber;
      if (number > MAX_PARTS) {
        throw new Error(`stream too large: more than ${MAX_PARTS} parts of ${this.partSize} bytes (raise partSizeBytes)`);
      }
      const task: Promise<void> = this.run('putStream', key, (abortSignal) =>
        this.client.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: objectKey,
            UploadId: uploadId,
            PartNumber: number,
            Body: data,
            ContentLength: data.length,
            ...checksum,
          }),
          { abortSignal },
        ),
      )
        .then(
          (part) => {
            completed[number - 1] = { PartNumber: number, ETag: part.ETag, ChecksumCRC32: part.ChecksumCRC32 };
          },
          (error: unknown) => {
            failure ??= { error };
          },
        )
        .finally(() => inFlight.delete(task));
      inFlight.add(task);
    };

    try {
      firstParts.forEach(startPart);
      for (;;) {
        while (inFlight.size >= this.partConcurrency && failure === undefined) {
          await Promise.race(inFlight);
        }
        if (failure !== undefined) {
          break;
        }
        const next = await rest.next();
        if (next.done === true) {
          break;
        }
        startPart(next.value);
      }
      await Promise.all(inFlight);
      if (failure !== undefined) {
        throw failure.error;
      }
      await this.run('putStream', key, (abortSignal) =>
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
      );
    } catch (error) {
      await Promise.all(inFlight); // they never reject
      // Best effort: the parts of an upload never completed are invisible but billed until aborted
      // (or a lifecycle rule removes them). s3rver answers 405 here.
      await this.run('putStream', key, (abortSignal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }), { abortSignal }),
      ).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Runs one SDK call under the operation's overall deadline, mapping its errors: 404 on a read →
   * ObjectNotFoundError, 412 on a write → ObjectExistsError, anything else → StorageError.
   */
  private async run<T>(operation: StorageOperation, key: string | undefined, call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort(new Error(`no answer within the deadline of ${this.deadlineMs} ms (maxAttempts × (requestMs + 1 s))`));
    }, this.deadlineMs);
    try {
      return await call(controller.signal);
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const name = (error as Error | undefined)?.name;
      const reads = operation === 'get' || operation === 'getStream' || operation === 'stat';
      if (key !== undefined && reads && (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket'))) {
        throw new ObjectNotFoundError(key, this.location);
      }
      if (key !== undefined && (operation === 'put' || operation === 'putStream') && (status === 412 || name === 'PreconditionFailed')) {
        throw new ObjectExistsError(key, this.location);
      }
      throw new StorageError({
        operation,
        location: this.location,
        key,
        cause: controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason : error,
      });
    } finally {
      clearTimeout(timer);
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
