/**
 * Deadlines and retries (archiver/src/storage/resilient.ts), the wrapper every backend is opened
 * with: these are the wrapper's own rules, so they are shown on a scripted backend (a test double,
 * below) that fails, stalls or answers exactly when the test says.
 */
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { InvalidKeyError, ObjectExistsError, ObjectNotFoundError, StorageError, StorageOperation } from '../../../archiver/src/errors';
import { DeadlineError, RetryPolicy, RetryPolicyProps, resilient } from '../../../archiver/src/storage/resilient';
import { ObjectInfo, OperationOptions, PutOptions, Storage } from '../../../archiver/src/storage/storage';
import { within } from '../../../testkit/doubles';

interface Attempt {
  readonly op: StorageOperation;
  readonly key: string;
  readonly signal: AbortSignal;
  readonly at: number;
}

/**
 * A test double of a storage backend: each call is one attempt, whose outcome `script(number,
 * signal)` decides (a value, a thrown error, or a promise that never settles). Like every
 * backend, it gives an attempt up when its signal aborts, rejecting with the signal's reason.
 * Every attempt is recorded with the signal it was given.
 */
class ScriptedBackend implements Storage {
  public readonly location = 'scripted://backend';
  public readonly attempts: Attempt[] = [];

  constructor(private readonly script: (attempt: number, signal: AbortSignal) => unknown) {}

  get(key: string, options?: OperationOptions): Promise<Buffer> {
    return this.attempt('get', key, options);
  }
  getStream(key: string, options?: OperationOptions): Promise<NodeJS.ReadableStream> {
    return this.attempt('getStream', key, options);
  }
  stat(key: string, options?: OperationOptions): Promise<ObjectInfo | undefined> {
    return this.attempt('stat', key, options);
  }
  put(key: string, _body: Buffer, options?: PutOptions): Promise<void> {
    return this.attempt('put', key, options);
  }
  putStream(key: string, _body: NodeJS.ReadableStream, options?: PutOptions): Promise<void> {
    return this.attempt('putStream', key, options);
  }
  list(prefix: string, options?: OperationOptions): Promise<ObjectInfo[]> {
    return this.attempt('list', prefix, options);
  }
  delete(keys: readonly string[], options?: OperationOptions): Promise<void> {
    return this.attempt('delete', keys.join(','), options);
  }
  async close(): Promise<void> {}

  private attempt<T>(op: StorageOperation, key: string, options: OperationOptions = {}): Promise<T> {
    const signal = options.signal ?? new AbortController().signal;
    const number = this.attempts.push({ op, key, signal, at: Date.now() });
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      Promise.resolve()
        .then(() => this.script(number, signal))
        .then((value) => resolve(value as T), reject)
        .finally(() => signal.removeEventListener('abort', onAbort));
    });
  }
}

const never = () => new Promise<never>(() => undefined);
const transient = (n = 0) => new StorageError({ operation: 'get', location: 'scripted://backend', key: 'k', cause: new Error(`HTTP 503 (attempt ${n})`), transient: true });

function wrap(script: (attempt: number, signal: AbortSignal) => unknown, props: RetryPolicyProps) {
  const backend = new ScriptedBackend(script);
  return { backend, storage: resilient(backend, new RetryPolicy(props)) };
}

async function failureOf(operation: Promise<unknown>, what = 'the operation'): Promise<unknown> {
  return within(
    operation.then(
      () => {
        throw new Error(`${what} succeeded`);
      },
      (error: unknown) => error,
    ),
    20_000,
    what,
  );
}

describe('resilient storage: retries', () => {
  it('retries a transient failure after a backoff that doubles, and succeeds on a later attempt', async () => {
    const { backend, storage } = wrap((n) => (n < 3 ? Promise.reject(transient(n)) : Buffer.from('at last')), { attempts: 3, backoffMs: 60, attemptTimeoutMs: 10_000 });
    expect((await within(storage.get('k'), 20_000, 'get')).toString()).toBe('at last');
    expect(backend.attempts).toHaveLength(3);
    const [first, second, third] = backend.attempts.map((attempt) => attempt.at);
    // Lower bounds only: a loaded machine makes timers late, never early (1 ms of rounding aside).
    expect(second - first).toBeGreaterThanOrEqual(60 - 2);
    expect(third - second).toBeGreaterThanOrEqual(120 - 2);
  });

  it('fails after `attempts` attempts of a transient failure, with a StorageError naming the operation, key and attempts', async () => {
    const { backend, storage } = wrap((n) => Promise.reject(transient(n)), { attempts: 3, backoffMs: 5, attemptTimeoutMs: 10_000 });
    const error = await failureOf(storage.stat('wal/000000010000000000000001'));
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ operation: 'stat', key: 'wal/000000010000000000000001', location: 'scripted://backend', transient: true });
    expect((error as Error).message).toMatch(/^storage stat wal\/000000010000000000000001 at scripted:\/\/backend failed: .*\(after 3 attempts\)$/);
    expect(backend.attempts).toHaveLength(3);
  });

  it('retries network failures (ECONNRESET), and fails other errors at once as non-transient StorageErrors', async () => {
    const reset = wrap((n) => (n === 1 ? Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })) : Buffer.from('ok')), { attempts: 3, backoffMs: 5 });
    expect((await reset.storage.get('k')).toString()).toBe('ok');
    expect(reset.backend.attempts).toHaveLength(2);
    const bug = wrap(() => Promise.reject(new TypeError('a bug, not the network')), { attempts: 3, backoffMs: 5 });
    const error = await failureOf(bug.storage.get('k'));
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ transient: false });
    expect(bug.backend.attempts).toHaveLength(1);
  });

  const answers: [string, () => Error][] = [
    ['ObjectNotFoundError', () => new ObjectNotFoundError('k', 'scripted://backend')],
    ['ObjectExistsError', () => new ObjectExistsError('k', 'scripted://backend')],
    ['InvalidKeyError', () => new InvalidKeyError('k', 'refused')],
    ['a non-transient StorageError', () => new StorageError({ operation: 'put', location: 'scripted://backend', key: 'k', cause: new Error('403 Forbidden'), transient: false })],
  ];

  it.each(answers)('never retries an answer: %s passes through at once, unchanged', async (_what, answer) => {
    const given = answer();
    const { backend, storage } = wrap(() => Promise.reject(given), { attempts: 5, backoffMs: 5 });
    expect(await failureOf(storage.put('k', Buffer.from('x'), { ifAbsent: true }))).toBe(given);
    expect(backend.attempts).toHaveLength(1);
  });

  it('fails at once with the caller\'s reason, without retrying, when the caller\'s signal aborts', async () => {
    const caller = new AbortController();
    const reason = new Error('the caller gave up');
    const { backend, storage } = wrap(() => never(), { attempts: 5, backoffMs: 5, attemptTimeoutMs: 10_000 });
    const operation = storage.get('k', { signal: caller.signal });
    setTimeout(() => caller.abort(reason), 50);
    expect(await failureOf(operation)).toBe(reason);
    expect(backend.attempts).toHaveLength(1);
    expect(backend.attempts[0].signal.aborted).toBe(true);
  });
});

describe('resilient storage: deadlines', () => {
  it('aborts an attempt at its deadline through the signal given to the backend, then retries', async () => {
    const { backend, storage } = wrap(() => never(), { attempts: 2, backoffMs: 5, attemptTimeoutMs: 200 });
    const started = Date.now();
    const error = await failureOf(storage.get('k'));
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).cause).toBeInstanceOf(DeadlineError);
    expect((error as Error).message).toContain('no answer within 200 ms (after 2 attempts)');
    expect(backend.attempts).toHaveLength(2);
    for (const attempt of backend.attempts) {
      expect(attempt.signal.aborted).toBe(true);
      expect(attempt.signal.reason).toBeInstanceOf(DeadlineError);
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(2 * 200 - 2);
  });

  it('fails a getStream body that stalls within about attemptTimeoutMs, aborting the backend\'s request', async () => {
    const body = new PassThrough();
    const { backend, storage } = wrap(() => body, { attempts: 3, backoffMs: 5, attemptTimeoutMs: 300 });
    const stream = await storage.getStream('base/base.tar');
    body.write(Buffer.alloc(1000, 1)); // then nothing more
    const started = Date.now();
    const error = await failureOf(pipeline(stream as Readable, new Writable({ write: (_chunk, _encoding, done) => done() })), 'reading the stalled body');
    expect((error as Error).message).toContain('transfer stalled: no progress for 300 ms');
    expect(Date.now() - started).toBeLessThan(300 * 10);
    expect(backend.attempts).toHaveLength(1);
    expect(backend.attempts[0].signal.aborted).toBe(true);
  });

  // A body that fails after the opening reaches the reader as the Storage contract's StorageError
  // (storage.ts: StorageError for everything else), not as the bare cause.
  it('fails a getStream body that stalls with a StorageError naming getStream, the location and the key', async () => {
    const body = new PassThrough();
    const { storage } = wrap(() => body, { attempts: 1, attemptTimeoutMs: 200 });
    const stream = await storage.getStream('base/base.tar');
    body.write(Buffer.alloc(10, 1));
    const error = await failureOf(pipeline(stream as Readable, new Writable({ write: (_chunk, _encoding, done) => done() })), 'reading the stalled body');
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ operation: 'getStream', location: 'scripted://backend', key: 'base/base.tar' });
  });

  // The same for a connection reset in the middle of the body.
  it('fails a getStream body that breaks mid-way (connection reset) with a StorageError naming getStream, the location and the key', async () => {
    const body = new PassThrough();
    const { storage } = wrap(() => body, { attempts: 1, attemptTimeoutMs: 5_000 });
    const stream = await storage.getStream('base/base.tar');
    body.write(Buffer.alloc(10, 1));
    setImmediate(() => body.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })));
    const error = await failureOf(pipeline(stream as Readable, new Writable({ write: (_chunk, _encoding, done) => done() })), 'reading the broken body');
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ operation: 'getStream', location: 'scripted://backend', key: 'base/base.tar' });
  });

  it('lets a getStream body that keeps moving take longer than attemptTimeoutMs', async () => {
    const body = new PassThrough();
    const { storage } = wrap(() => body, { attempts: 1, attemptTimeoutMs: 600 });
    const stream = await storage.getStream('base/base.tar');
    let sent = 0;
    const feeder = setInterval(() => {
      if (++sent <= 15) body.write(Buffer.alloc(1000, sent));
      else {
        clearInterval(feeder);
        body.end();
      }
    }, 100);
    let received = 0;
    // ~1.6 s in all, never more than a tenth of a second (times the machine's load) without data.
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        received += chunk.length;
        done();
      },
    });
    await within(pipeline(stream as Readable, sink), 20_000, 'the moving body');
    expect(received).toBe(15 * 1000);
  });

  it('retries the opening of a getStream (until the response head)', async () => {
    const { backend, storage } = wrap((n) => (n === 1 ? Promise.reject(transient(n)) : Readable.from([Buffer.from('body')])), { attempts: 3, backoffMs: 5 });
    const chunks: Buffer[] = [];
    for await (const chunk of await storage.getStream('k')) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('body');
    expect(backend.attempts).toHaveLength(2);
  });

  it('fails a putStream after one attempt (a consumed stream cannot be replayed)', async () => {
    const { backend, storage } = wrap((n) => Promise.reject(transient(n)), { attempts: 3, backoffMs: 5 });
    expect(await failureOf(storage.putStream('base/base.tar', Readable.from([Buffer.from('x')])))).toBeInstanceOf(StorageError);
    expect(backend.attempts).toHaveLength(1);
  });
});
