import { PassThrough, pipeline, Readable, Transform, TransformCallback, Writable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { ApiError, Bucket, IdempotencyStrategy, RETRYABLE_ERR_FN_DEFAULT, Storage as GcsClient } from '@google-cloud/storage';
import {
  compareKeys,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  forEachLimited,
  GcsStorageOptions,
  normalizeRootPrefix,
  ObjectExistsError,
  ObjectInfo,
  ObjectNotFoundError,
  PutOptions,
  Storage,
  StorageError,
  StorageOperation,
  validateKey,
  validatePrefix,
} from './storage';

/** Time allowed per attempt for the library's backoff (1 s, then × 2) in the overall deadline. */
const BACKOFF_ALLOWANCE_MS = 2_000;
const DELETE_CONCURRENCY = 16;

/**
 * A Google Cloud Storage bucket + prefix, through @google-cloud/storage (JSON API).
 *
 * Deadlines and retries:
 * - Requests: `timeout` = requestMs per request (for uploads: until the response, body
 *   included; for downloads: until the response head), retried by the library up to
 *   `maxAttempts` with exponential backoff (timeouts, connection errors, 408/429/5xx; every
 *   operation is retried, writes included: the archiver's writes are idempotent, and with ifAbsent
 *   a retried write that had succeeded reports ObjectExistsError).
 * - Streams: the library has no inactivity timeout for response bodies and a whole-request one
 *   for uploads (unusable for a base backup of hours), so putStream/getStream/get run with a stall
 *   watchdog instead: they fail when no byte moves for requestMs while the other side is ready.
 * - Every promise-returning call also races an overall deadline of maxAttempts × (requestMs + 2 s).
 *   When that fires the operation fails, though the library may still hold the request.
 * - `connectMs` is not used: the library offers no connect timeout; requestMs covers connecting.
 *
 * Uploads are single requests (`resumable: false`): resumable sessions need more round trips per
 * WAL segment and the emulator cannot do chunked ones. Integrity: the library checks the
 * CRC32C/MD5 the server reports against the bytes sent and received.
 */
export class GcsStorage implements Storage {
  public readonly location: string;
  private readonly bucket: Bucket;
  /** The same bucket through a client without the whole-request timeout, for streamed uploads. */
  private readonly streamBucket: Bucket;
  private readonly root: string;
  private readonly requestMs: number;
  private readonly deadlineMs: number;
  private readonly listPageSize: number;

  constructor(options: GcsStorageOptions) {
    if (typeof options.bucket !== 'string' || options.bucket === '') {
      throw new Error(`gcs storage: bucket must be a bucket name, got ${JSON.stringify(options.bucket)}`);
    }
    this.root = normalizeRootPrefix(options.prefix);
    this.requestMs = options.timeouts?.requestMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    this.deadlineMs = maxAttempts * (this.requestMs + BACKOFF_ALLOWANCE_MS);
    this.listPageSize = Math.min(options.listPageSize ?? 1000, 1000);
    const endpoint = options.apiEndpoint === undefined ? '' : ` (endpoint ${options.apiEndpoint.replace(/\/\/[^/@]*@/, '//')})`;
    this.location = `gs://${options.bucket}${this.root === '' ? '' : `/${this.root}`}${endpoint}`;

    const clientOptions = {
      projectId: options.projectId,
      keyFilename: options.keyFilename,
      apiEndpoint: options.apiEndpoint,
      retryOptions: {
        autoRetry: maxAttempts > 1,
        maxRetries: maxAttempts - 1,
        retryDelayMultiplier: 2,
        maxRetryDelay: 8,
        totalTimeout: Math.ceil(this.deadlineMs / 1000),
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
        retryableErrorFn: isRetryable,
      },
    };
    this.bucket = new GcsClient({ ...clientOptions, timeout: this.requestMs }).bucket(options.bucket);
    this.streamBucket = new GcsClient({ ...clientOptions, timeout: 0 }).bucket(options.bucket);
  }

  async get(key: string): Promise<Buffer> {
    const stream = await this.openRead('get', key);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream) {
        chunks.push(chunk as Buffer);
      }
    } catch (error) {
      throw this.mapError('get', key, error);
    }
    return Buffer.concat(chunks);
  }

  async getStream(key: string): Promise<NodeJS.ReadableStream> {
    return this.openRead('getStream', key);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const file = this.bucket.file(this.objectKey(key));
    try {
      const [metadata] = await this.withDeadline(file.getMetadata());
      return {
        key,
        size: Number(metadata.size ?? 0),
        lastModified: new Date(metadata.updated ?? metadata.timeCreated ?? 0),
      };
    } catch (error) {
      if (statusOf(error) === 404) {
        return undefined;
      }
      throw this.mapError('stat', key, error);
    }
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    const file = this.bucket.file(this.objectKey(key));
    try {
      await this.withDeadline(
        file.save(body, {
          resumable: false,
          contentType: 'application/octet-stream',
          preconditionOpts: options.ifAbsent === true ? { ifGenerationMatch: 0 } : undefined,
        }),
      );
    } catch (error) {
      throw this.mapError('put', key, error);
    }
  }

  async putStream(key: string, body: NodeJS.ReadableStream, options: PutOptions = {}): Promise<void> {
    const file = this.streamBucket.file(this.objectKey(key));
    const upload = file.createWriteStream({
      resumable: false,
      contentType: 'application/octet-stream',
      preconditionOpts: options.ifAbsent === true ? { ifGenerationMatch: 0 } : undefined,
    });
    const watchdog = new StallWatchdog('upload', this.requestMs, (error) => upload.destroy(error));
    // Once the whole body is handed over, the server has requestMs to answer.
    let responseTimer: NodeJS.Timeout | undefined;
    watchdog.once('end', () => {
      responseTimer = setTimeout(() => {
        upload.destroy(new Error(`no response within ${this.requestMs} ms after the body was sent`));
      }, this.requestMs);
    });
    try {
      await pipelineAsync(body as Readable, watchdog, upload as Writable);
    } catch (error) {
      throw this.mapError('putStream', key, error);
    } finally {
      clearTimeout(responseTimer);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    const fullPrefix = this.root === '' ? prefix : `${this.root}/${prefix}`;
    const found: ObjectInfo[] = [];
    let pageToken: string | undefined;
    try {
      do {
        const [files, nextQuery] = await this.withDeadline(
          this.bucket.getFiles({ prefix: fullPrefix, autoPaginate: false, maxResults: this.listPageSize, pageToken }),
        );
        for (const file of files) {
          if (file.name.endsWith('/')) {
            continue; // "folder" placeholders made by consoles are not objects
          }
          found.push({
            key: this.root === '' ? file.name : file.name.slice(this.root.length + 1),
            size: Number(file.metadata.size ?? 0),
            lastModified: new Date(file.metadata.updated ?? file.metadata.timeCreated ?? 0),
          });
        }
        pageToken = (nextQuery as { pageToken?: string } | null | undefined)?.pageToken;
      } while (pageToken !== undefined);
    } catch (error) {
      throw this.mapError('list', prefix, error);
    }
    return found.sort((a, b) => compareKeys(a.key, b.key));
  }

  /** One request per key (the JSON API's batch endpoint is not exposed by the library), 16 at a time. */
  async delete(keys: readonly string[]): Promise<void> {
    const objectKeys = keys.map((key) => this.objectKey(key));
    await forEachLimited(objectKeys, DELETE_CONCURRENCY, async (objectKey, index) => {
      try {
        await this.withDeadline(this.bucket.file(objectKey).delete({ ignoreNotFound: true }));
      } catch (error) {
        throw this.mapError('delete', keys[index], error);
      }
    });
  }

  async close(): Promise<void> {
    // The library keeps no per-client sockets to release: it shares keep-alive agents whose idle
    // sockets do not keep the process alive.
  }

  private objectKey(key: string): string {
    validateKey(key);
    return this.root === '' ? key : `${this.root}/${key}`;
  }

  /**
   * Starts a download and resolves with its stream once the server answered 2xx; rejects with
   * ObjectNotFoundError on 404, StorageError on anything else or when the deadline passes.
   */
  private openRead(operation: 'get' | 'getStream', key: string): Promise<Readable> {
    const source = this.bucket.file(this.objectKey(key)).createReadStream();
    const watchdog = new StallWatchdog('download', this.requestMs, (error) => source.destroy(error));
    const out = new PassThrough();
    // Errors reach `out` (destroyed with the error); nothing else to do here.
    pipeline(source, watchdog, out, () => undefined);
    return new Promise<Readable>((resolve, reject) => {
      const settle = (error: unknown): void => {
        clearTimeout(deadline);
        out.off('error', settle);
        if (error === undefined) {
          resolve(out);
          return;
        }
        source.destroy();
        out.destroy();
        reject(this.mapError(operation, key, error));
      };
      const deadline = setTimeout(() => {
        settle(new Error(`no response within the deadline of ${this.deadlineMs} ms (maxAttempts × (requestMs + 2 s))`));
      }, this.deadlineMs);
      out.once('error', settle);
      source.once('response', (response: { statusCode?: number }) => {
        const status = response.statusCode ?? 0;
        if (status === 404) {
          settle(Object.assign(new Error('not found'), { code: 404 }));
        } else if (status >= 200 && status < 300) {
          settle(undefined);
        } // else: the library turns the response into an error on the stream
      });
    });
  }

  private async withDeadline<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`no answer within the deadline of ${this.deadlineMs} ms (maxAttempts × (requestMs + 2 s))`));
      }, this.deadlineMs);
    });
    try {
      return await Promise.race([promise, deadline]);
    } finally {
      clearTimeout(timer);
      promise.catch(() => undefined); // a late failure after the deadline is not unhandled
    }
  }

  private mapError(operation: StorageOperation, key: string, error: unknown): Error {
    if (error instanceof StorageError || error instanceof ObjectNotFoundError || error instanceof ObjectExistsError) {
      return error;
    }
    const status = statusOf(error);
    if (status === 404 && (operation === 'get' || operation === 'getStream')) {
      return new ObjectNotFoundError(key, this.location);
    }
    if (status === 412 && (operation === 'put' || operation === 'putStream')) {
      return new ObjectExistsError(key, this.location);
    }
    return new StorageError({ operation, location: this.location, key, cause: error });
  }
}

function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'number') {
    return code;
  }
  return typeof code === 'string' && /^\d{3}$/.test(code) ? Number(code) : undefined;
}

/** The library's list, plus timeouts and refused connections (a server restarting). */
function isRetryable(error: ApiError): boolean {
  if (RETRYABLE_ERR_FN_DEFAULT(error)) {
    return true;
  }
  const { code, type, message } = error as ApiError & { type?: string };
  return (
    (typeof code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(code)) ||
    type === 'request-timeout' ||
    /network timeout|socket hang up|ECONNREFUSED|ECONNRESET/i.test(message ?? '')
  );
}

/**
 * A pass-through that fails a transfer which stopped moving, without limiting how long a moving
 * transfer takes and without blaming the far side for a slow near side:
 * - 'upload' (the network consumes what this emits): a stall is data waiting here, unread, for
 *   stallMs; a slow source is not a stall.
 * - 'download' (the network produces what this receives): a stall is this wanting data (its
 *   buffer below the high-water mark) and none arriving for stallMs; a slow consumer is not a stall.
 * On a stall, `onStall` gets an Error naming the time; it should destroy the network stream.
 */
class StallWatchdog extends Transform {
  private timer: NodeJS.Timeout | undefined;
  private sourceEnded = false;

  constructor(
    private readonly mode: 'upload' | 'download',
    private readonly stallMs: number,
    private readonly onStall: (error: Error) => void,
  ) {
    super();
    this.once('end', () => this.disarm());
    this.once('close', () => this.disarm());
  }

  override read(size?: number): unknown {
    const chunk: unknown = super.read(size);
    this.rearm();
    return chunk;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.push(chunk);
    this.rearm();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.sourceEnded = true;
    this.rearm();
    callback();
  }

  private rearm(): void {
    this.disarm();
    if (this.destroyed || this.readableEnded) {
      return;
    }
    const stalled =
      this.mode === 'upload'
        ? this.readableLength > 0
        : !this.sourceEnded && this.readableLength < this.readableHighWaterMark;
    if (stalled) {
      this.timer = setTimeout(() => {
        this.onStall(new Error(`transfer stalled: no progress for ${this.stallMs} ms`));
      }, this.stallMs);
    }
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
