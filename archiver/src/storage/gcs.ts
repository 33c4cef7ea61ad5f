import { PassThrough, pipeline, Readable, Writable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { Bucket, Storage as GcsClient } from '@google-cloud/storage';
import { ObjectExistsError, ObjectNotFoundError, StorageError, StorageOperation } from '../errors';
import { attemptFailure, isTransient } from './resilient';
import {
  compareKeys,
  DEFAULT_REQUEST_TIMEOUT_MS,
  forEachLimited,
  GcsStorageOptions,
  normalizeRootPrefix,
  ObjectInfo,
  OperationOptions,
  PutOptions,
  Storage,
  validateKey,
  validatePrefix,
} from './storage';

const DELETE_CONCURRENCY = 16;

/**
 * A Google Cloud Storage bucket + prefix, through @google-cloud/storage (JSON API).
 *
 * One attempt per call (the library's own retries are off), given up when the caller's signal
 * aborts; deadlines and retries come from the wrapper (resilient.ts). The library's `timeout`
 * (requestMs) also bounds each whole-object request. The library cannot cancel a promise-based
 * request: an aborted one is left to finish in the background and its result ignored; streams are
 * destroyed.
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
  private readonly listPageSize: number;

  constructor(options: GcsStorageOptions) {
    if (typeof options.bucket !== 'string' || options.bucket === '') {
      throw new Error(`gcs storage: bucket must be a bucket name, got ${JSON.stringify(options.bucket)}`);
    }
    this.root = normalizeRootPrefix(options.prefix);
    const requestMs = options.timeouts?.requestMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.listPageSize = Math.min(options.listPageSize ?? 1000, 1000);
    const endpoint = options.apiEndpoint === undefined ? '' : ` (endpoint ${options.apiEndpoint.replace(/\/\/[^/@]*@/, '//')})`;
    this.location = `gs://${options.bucket}${this.root === '' ? '' : `/${this.root}`}${endpoint}`;

    const clientOptions = {
      projectId: options.projectId,
      ...(options.credentials ? { credentials: { ...options.credentials } } : { keyFilename: options.keyFilename }),
      apiEndpoint: options.apiEndpoint,
      // Retries are the wrapper's (resilient.ts): one attempt per call here.
      retryOptions: { autoRetry: false, maxRetries: 0 },
    };
    this.bucket = new GcsClient({ ...clientOptions, timeout: requestMs }).bucket(options.bucket);
    this.streamBucket = new GcsClient({ ...clientOptions, timeout: 0 }).bucket(options.bucket);
  }

  async get(key: string, options: OperationOptions = {}): Promise<Buffer> {
    const stream = await this.openRead('get', key, options.signal);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream) chunks.push(chunk as Buffer);
    } catch (error) {
      throw this.mapError('get', key, error, options.signal);
    }
    return Buffer.concat(chunks);
  }

  async getStream(key: string, options: OperationOptions = {}): Promise<NodeJS.ReadableStream> {
    return this.openRead('getStream', key, options.signal);
  }

  async stat(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    const file = this.bucket.file(this.objectKey(key));
    try {
      const [metadata] = await abortable(file.getMetadata(), options.signal);
      return { key, size: Number(metadata.size ?? 0), lastModified: new Date(metadata.updated ?? metadata.timeCreated ?? 0) };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw this.mapError('stat', key, error, options.signal);
    }
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    const file = this.bucket.file(this.objectKey(key));
    try {
      await abortable(
        file.save(body, {
          resumable: false,
          contentType: 'application/octet-stream',
          preconditionOpts: options.ifAbsent === true ? { ifGenerationMatch: 0 } : undefined,
        }),
        options.signal,
      );
    } catch (error) {
      throw this.mapError('put', key, error, options.signal);
    }
  }

  async putStream(key: string, body: NodeJS.ReadableStream, options: PutOptions = {}): Promise<void> {
    const file = this.streamBucket.file(this.objectKey(key));
    const upload = file.createWriteStream({
      resumable: false,
      contentType: 'application/octet-stream',
      preconditionOpts: options.ifAbsent === true ? { ifGenerationMatch: 0 } : undefined,
    });
    const onAbort = () => upload.destroy(options.signal!.reason instanceof Error ? options.signal!.reason : new Error('aborted'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      options.signal?.throwIfAborted();
      await pipelineAsync(body as Readable, upload as Writable);
    } catch (error) {
      throw this.mapError('putStream', key, error, options.signal);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  async list(prefix: string, options: OperationOptions = {}): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    const fullPrefix = this.root === '' ? prefix : `${this.root}/${prefix}`;
    const found: ObjectInfo[] = [];
    let pageToken: string | undefined;
    try {
      do {
        const [files, nextQuery] = await abortable(
          this.bucket.getFiles({ prefix: fullPrefix, autoPaginate: false, maxResults: this.listPageSize, pageToken }),
          options.signal,
        );
        for (const file of files) {
          if (file.name.endsWith('/')) continue; // "folder" placeholders made by consoles are not objects
          found.push({
            key: this.root === '' ? file.name : file.name.slice(this.root.length + 1),
            size: Number(file.metadata.size ?? 0),
            lastModified: new Date(file.metadata.updated ?? file.metadata.timeCreated ?? 0),
          });
        }
        pageToken = (nextQuery as { pageToken?: string } | null | undefined)?.pageToken;
      } while (pageToken !== undefined);
    } catch (error) {
      throw this.mapError('list', prefix, error, options.signal);
    }
    return found.sort((a, b) => compareKeys(a.key, b.key));
  }

  /** One request per key (the JSON API's batch endpoint is not exposed by the library), 16 at a time. */
  async delete(keys: readonly string[], options: OperationOptions = {}): Promise<void> {
    const objectKeys = keys.map((key) => this.objectKey(key));
    await forEachLimited(objectKeys, DELETE_CONCURRENCY, async (objectKey, index) => {
      try {
        await abortable(this.bucket.file(objectKey).delete({ ignoreNotFound: true }), options.signal);
      } catch (error) {
        throw this.mapError('delete', keys[index], error, options.signal);
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
   * ObjectNotFoundError on 404, StorageError on anything else or when `signal` aborts (which also
   * ends a download in progress).
   */
  private openRead(operation: 'get' | 'getStream', key: string, signal: AbortSignal | undefined): Promise<Readable> {
    const source = this.bucket.file(this.objectKey(key)).createReadStream();
    const out = new PassThrough();
    // Errors reach `out` (destroyed with the error); nothing else to do here.
    pipeline(source, out, () => undefined);
    const onAbort = () => source.destroy(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    out.once('close', () => signal?.removeEventListener('abort', onAbort));
    return new Promise<Readable>((resolve, reject) => {
      const settle = (error: unknown): void => {
        out.off('error', settle);
        if (error === undefined) return resolve(out);
        source.destroy();
        out.destroy();
        reject(this.mapError(operation, key, error, signal));
      };
      if (signal?.aborted) return settle(signal.reason);
      out.once('error', settle);
      source.once('response', (response: { statusCode?: number }) => {
        const status = response.statusCode ?? 0;
        if (status === 404) settle(Object.assign(new Error('not found'), { code: 404 }));
        else if (status >= 200 && status < 300) settle(undefined);
        // else: the library turns the response into an error on the stream
      });
    });
  }

  private mapError(operation: StorageOperation, key: string, error: unknown, signal: AbortSignal | undefined): Error {
    if (error instanceof StorageError || error instanceof ObjectNotFoundError || error instanceof ObjectExistsError) return error;
    const status = statusOf(error);
    if (status === 404 && (operation === 'get' || operation === 'getStream')) return new ObjectNotFoundError(key, this.location);
    if (status === 412 && (operation === 'put' || operation === 'putStream')) return new ObjectExistsError(key, this.location);
    return attemptFailure({ operation, location: this.location, key, error, status, signal, alsoTransient: isTransient(error) });
  }
}

/**
 * `promise`, or a rejection with the signal's reason when `signal` aborts first. The library cannot
 * cancel its promise-based requests: an aborted one finishes in the background, ignored.
 */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  promise.catch(() => undefined); // a late failure after the abort is not unhandled
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'number') {
    return code;
  }
  return typeof code === 'string' && /^\d{3}$/.test(code) ? Number(code) : undefined;
}
