/**
 * Deadlines and retries, as one wrapper around any backend (wal-g wraps a storage folder for such
 * cross-cutting behaviour instead of writing it into each backend).
 *
 * - Whole-object operations (get, stat, put, list, delete) run as attempts: each attempt is
 *   aborted at `attemptTimeoutMs` through the backend's `signal`; a transient failure (a
 *   StorageError with `transient`, a timeout, a refused connection) is retried after an
 *   exponential backoff with jitter, up to `attempts` in all. Answers are never retried:
 *   ObjectNotFoundError, ObjectExistsError, InvalidKeyError and non-transient StorageErrors pass
 *   through at once. A put retried after a lost success finds the object (ObjectExistsError with
 *   `ifAbsent`), which the archive compares: the archiver's writes are idempotent.
 * - getStream retries the opening (until the response head); the body then fails as soon as it
 *   stops moving for `attemptTimeoutMs` while the reader wants data (a stall), however long
 *   a moving transfer takes.
 * - putStream cannot replay a consumed stream: one attempt, failed when the upload stops taking
 *   data for `attemptTimeoutMs`. Backends that upload a stream in parts retry each part with the
 *   same policy (`RetryPolicy.run`).
 */
import { PassThrough, Readable, Transform, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidKeyError, ObjectExistsError, ObjectNotFoundError, StorageError, StorageOperation } from '../errors';
import { ObjectInfo, OperationOptions, PutOptions, Storage } from './storage';

export interface RetryPolicyProps {
  /**
   * Attempts per operation, the first included.
   * @default 3
   */
  readonly attempts?: number;
  /**
   * Deadline of one attempt in milliseconds; for streams, the longest pause without progress.
   * 0: no deadline (local storage).
   * @default 60000
   */
  readonly attemptTimeoutMs?: number;
  /**
   * The first backoff in milliseconds; each later one doubles, up to `maxBackoffMs`, each with
   * up to half of it added at random (so that many clients do not retry in step).
   * @default 200
   */
  readonly backoffMs?: number;
  /** @default 4000 */
  readonly maxBackoffMs?: number;
}

/** Attempts, deadlines and backoff: the one implementation every storage operation goes through. */
export class RetryPolicy {
  public readonly attempts: number;
  public readonly attemptTimeoutMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(props: RetryPolicyProps = {}) {
    this.attempts = Math.max(1, props.attempts ?? 3);
    this.attemptTimeoutMs = Math.max(0, props.attemptTimeoutMs ?? 60_000);
    this.backoffMs = props.backoffMs ?? 200;
    this.maxBackoffMs = props.maxBackoffMs ?? 4_000;
  }

  /** The longest an operation can take: every attempt at its deadline plus the backoffs between. */
  get worstCaseMs(): number {
    let total = this.attempts * this.attemptTimeoutMs;
    for (let attempt = 1; attempt < this.attempts; attempt++) total += this.backoff(attempt) * 1.5;
    return total;
  }

  /**
   * Runs `attempt` until it succeeds, fails with an answer, or the attempts are spent. Each call
   * gets a signal that aborts at the attempt's deadline (and when `outer` aborts).
   */
  async run<T>(what: Target, attempt: (signal: AbortSignal) => Promise<T>, outer?: AbortSignal): Promise<T> {
    let lastError: unknown;
    for (let number = 1; number <= this.attempts; number++) {
      outer?.throwIfAborted();
      const controller = new AbortController();
      const onOuterAbort = () => controller.abort(outer!.reason);
      outer?.addEventListener('abort', onOuterAbort, { once: true });
      const timer =
        this.attemptTimeoutMs > 0
          ? setTimeout(() => controller.abort(new DeadlineError(`no answer within ${this.attemptTimeoutMs} ms`)), this.attemptTimeoutMs)
          : undefined;
      try {
        return await attempt(controller.signal);
      } catch (error) {
        const cause = controller.signal.aborted && controller.signal.reason instanceof Error && !outer?.aborted ? controller.signal.reason : error;
        if (isAnswer(error) || outer?.aborted) throw error;
        lastError = cause;
        if (number < this.attempts && isTransient(cause)) {
          await sleep(this.backoff(number) * (1 + Math.random() / 2), outer);
          continue;
        }
        // A backend's own StorageError on the first attempt says it all.
        if (number === 1 && cause === error && error instanceof StorageError) throw error;
        throw new StorageError({
          operation: what.operation,
          location: what.location,
          key: what.key,
          cause,
          transient: isTransient(cause),
          detail: number > 1 ? `after ${number} attempts` : undefined,
        });
      } finally {
        clearTimeout(timer);
        outer?.removeEventListener('abort', onOuterAbort);
      }
    }
    /* c8 ignore next */
    throw lastError;
  }

  private backoff(attempt: number): number {
    return Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (attempt - 1));
  }
}

/** What an attempt works on, for messages. */
export interface Target {
  readonly operation: StorageOperation;
  readonly location: string;
  readonly key?: string;
}

/** An attempt that ran out of time. */
export class DeadlineError extends Error {
  public override readonly name = 'DeadlineError';
}

/** The backend's answer, not a failure: never retried. */
function isAnswer(error: unknown): boolean {
  return error instanceof ObjectNotFoundError || error instanceof ObjectExistsError || error instanceof InvalidKeyError;
}

const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET']);

/** Whether another attempt may succeed. */
export function isTransient(error: unknown): boolean {
  if (error instanceof StorageError) return error.transient;
  if (error instanceof DeadlineError) return true;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  return error instanceof Error && /socket hang up|ECONNRESET|ECONNREFUSED|timed? ?out/i.test(error.message);
}

/**
 * A backend's failure of one attempt as a StorageError: the abort's reason when `signal` cut it
 * short, transient when aborted, without an HTTP status (the network), or with a status another
 * attempt may not get (408, 429, 5xx).
 */
export function attemptFailure(props: { operation: StorageOperation; location: string; key?: string; error: unknown; status: number | undefined; signal: AbortSignal | undefined; alsoTransient?: boolean }): StorageError {
  const aborted = props.signal?.aborted === true;
  const { status } = props;
  return new StorageError({
    operation: props.operation,
    location: props.location,
    key: props.key,
    cause: aborted && props.signal!.reason instanceof Error ? props.signal!.reason : props.error,
    transient: aborted || status === undefined || status === 408 || status === 429 || status >= 500 || props.alsoTransient === true,
  });
}

/** Waits `ms`; rejects when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `storage` with the policy's deadlines and retries on every operation. The backend underneath
 * makes one attempt per call and honours the signal it is given.
 */
export function resilient(storage: Storage, policy: RetryPolicy): Storage {
  return new ResilientStorage(storage, policy);
}

class ResilientStorage implements Storage {
  constructor(
    private readonly backend: Storage,
    private readonly policy: RetryPolicy,
  ) {}

  get location(): string {
    return this.backend.location;
  }

  get(key: string, options: OperationOptions = {}): Promise<Buffer> {
    return this.policy.run(this.target('get', key), (signal) => this.backend.get(key, { signal }), options.signal);
  }

  async getStream(key: string, options: OperationOptions = {}): Promise<NodeJS.ReadableStream> {
    // The opening is retried; the body is watched for stalls.
    let opened: AbortController | undefined;
    const stream = await this.policy.run(
      this.target('getStream', key),
      (signal) => {
        // The signal of a successful attempt stays in force for the body: abort it on a stall.
        opened = new AbortController();
        const both = AbortSignal.any([signal, opened.signal]);
        return this.backend.getStream(key, { signal: both });
      },
      options.signal,
    );
    const watchdog = new StallWatchdog('download', this.policy.attemptTimeoutMs, (error) => {
      opened?.abort(error);
      (stream as Readable).destroy(error);
    });
    // The reader gets the Storage contract's StorageError (operation, location, key), not the
    // socket's or the watchdog's own error: `out` is destroyed here, never by a pipeline.
    const out = new PassThrough();
    pipeline(stream as Readable, watchdog).catch((error: unknown) => {
      out.destroy(error instanceof StorageError ? error : new StorageError({ operation: 'getStream', location: this.location, key, cause: error }));
    });
    watchdog.pipe(out);
    // A reader that gives up early stops the download.
    out.once('close', () => {
      if (!watchdog.readableEnded) (stream as Readable).destroy();
    });
    return out;
  }

  stat(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    return this.policy.run(this.target('stat', key), (signal) => this.backend.stat(key, { signal }), options.signal);
  }

  put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    return this.policy.run(this.target('put', key), (signal) => this.backend.put(key, body, { ...options, signal }), options.signal);
  }

  async putStream(key: string, body: NodeJS.ReadableStream, options: PutOptions = {}): Promise<void> {
    const controller = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
    const watchdog = new StallWatchdog('upload', this.policy.attemptTimeoutMs, (error) => controller.abort(error));
    (body as Readable).on('error', (error) => watchdog.destroy(error));
    (body as Readable).pipe(watchdog);
    try {
      await this.backend.putStream(key, watchdog as unknown as NodeJS.ReadableStream, { ...options, signal });
    } catch (error) {
      if (isAnswer(error)) throw error;
      const cause = controller.signal.aborted ? controller.signal.reason : error;
      if (error instanceof StorageError && !controller.signal.aborted) throw error;
      throw new StorageError({ operation: 'putStream', location: this.location, key, cause });
    } finally {
      watchdog.destroy();
    }
  }

  list(prefix: string, options: OperationOptions = {}): Promise<ObjectInfo[]> {
    return this.policy.run(this.target('list', prefix), (signal) => this.backend.list(prefix, { signal }), options.signal);
  }

  delete(keys: readonly string[], options: OperationOptions = {}): Promise<void> {
    return this.policy.run(this.target('delete', keys[0]), (signal) => this.backend.delete(keys, { signal }), options.signal);
  }

  close(): Promise<void> {
    return this.backend.close();
  }

  private target(operation: StorageOperation, key: string | undefined): Target {
    return { operation, location: this.location, key };
  }
}

/**
 * A pass-through that fails a transfer which stopped moving, without limiting how long a moving
 * transfer takes and without blaming the far side for a slow near side:
 * - 'upload' (the network consumes what this emits): a stall is data waiting here, unread, for
 *   stallMs; a slow source is not a stall.
 * - 'download' (the network produces what this receives): a stall is this wanting data (its
 *   buffer below the high-water mark) and none arriving for stallMs; a slow consumer is not a stall.
 * On a stall, `onStall` gets an Error naming the time. stallMs 0: never.
 */
export class StallWatchdog extends Transform {
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
    if (this.stallMs <= 0 || this.destroyed || this.readableEnded) return;
    const stalled = this.mode === 'upload' ? this.readableLength > 0 : !this.sourceEnded && this.readableLength < this.readableHighWaterMark;
    if (stalled) {
      this.timer = setTimeout(() => this.onStall(new DeadlineError(`transfer stalled: no progress for ${this.stallMs} ms`)), this.stallMs);
    }
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
