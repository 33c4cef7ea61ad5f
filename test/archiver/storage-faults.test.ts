import { ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../archiver/src/storage/open';
import { StorageError } from '../../archiver/src/errors';
import { Storage } from '../../archiver/src/storage/storage';
import { bytesQueuedAt } from '../../testkit/doubles';
import { GcsEmulator, startGcsEmulator } from '../../testkit/gcs-emulator';
import { freePort } from '../../testkit/ports';
import { S3Server, startS3Server } from '../../testkit/s3-server';

/**
 * Failures the archiver must survive: hung servers, servers that die mid-push, crashes of the
 * archiver itself, endpoints where nothing listens. Every operation must end, with a StorageError
 * that names the location, within about maxAttempts × requestMs.
 *
 * A SIGSTOPped server is the hung server: the kernel still completes TCP handshakes (backlog) and
 * buffers what is sent, but nothing answers.
 */

const MiB = 1024 * 1024;
/** Small deadlines so that the tests are quick: each attempt gets 1 s, two attempts. */
const FAST = { timeouts: { connectMs: 500, requestMs: 1_000 }, maxAttempts: 2 } as const;

const opened: Storage[] = [];
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((storage) => storage.close()));
});

async function timed(operation: Promise<unknown>): Promise<{ error: unknown; elapsedMs: number }> {
  const start = Date.now();
  const error = await operation.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  return { error, elapsedMs: Date.now() - start };
}

describe('s3 storage against a failing s3rver', () => {
  let server: S3Server;
  let root = 0;

  beforeAll(async () => {
    server = await startS3Server();
  });

  afterAll(async () => {
    await server?.stop();
  });

  async function open(options: { timeouts?: { connectMs: number; requestMs: number }; maxAttempts?: number } = FAST): Promise<Storage> {
    const storage = await openStorage({
      kind: 's3',
      bucket: 'test',
      prefix: `faults-${++root}`,
      endpoint: server.endpoint,
      accessKeyId: server.accessKeyId,
      secretAccessKey: server.secretAccessKey,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      ...options,
    });
    opened.push(storage);
    return storage;
  }

  it('fails a put to a hung (SIGSTOPped) server with a StorageError within maxAttempts × requestMs', async () => {
    const storage = await open();
    await storage.put('warm-up', Buffer.from('keeps a pooled keep-alive connection open'));
    server.pause();
    try {
      const { error, elapsedMs } = await timed(storage.put('wal/000000010000000000000001', randomBytes(16 * MiB)));
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).message).toContain(`wal/000000010000000000000001 at ${storage.location}`);
      // 2 attempts × 1 s request timeout, plus backoff and slack; never the 60 s default, never forever.
      expect(elapsedMs).toBeGreaterThanOrEqual(900);
      expect(elapsedMs).toBeLessThan(4_500);
    } finally {
      server.resume();
    }
    await storage.put('after', Buffer.from('the server answers again'));
    expect((await storage.get('after')).toString()).toBe('the server answers again');
  });

  it('fails reads and listings of a hung server within the same bound', async () => {
    const storage = await open();
    await storage.put('x', Buffer.from('x'));
    server.pause();
    try {
      const outcomes = await Promise.all([
        timed(storage.get('x')),
        timed(storage.getStream('x')),
        timed(storage.stat('x')),
        timed(storage.list('')),
        timed(storage.delete(['x'])),
      ]);
      for (const { error, elapsedMs } of outcomes) {
        expect(error).toBeInstanceOf(StorageError);
        expect(elapsedMs).toBeLessThan(4_500);
      }
    } finally {
      server.resume();
    }
  });

  it('fails a put when the server dies mid-request; once it is back, a retry stores the object intact', async () => {
    const storage = await open();
    const body = randomBytes(16 * MiB);
    // Hung first, and crashed only once the request's bytes have reached it: surely mid-request.
    server.pause();
    const put = timed(storage.put('wal/segment', body));
    await waitFor(() => bytesQueuedAt(server.port) > 0, 5_000);
    await server.crash();
    const { error, elapsedMs } = await put;
    expect(error).toBeInstanceOf(StorageError);
    expect(elapsedMs).toBeLessThan(4_500);

    await server.restart();
    expect(await storage.stat('wal/segment')).toBeUndefined();
    await storage.put('wal/segment', body);
    expect(sha256(await storage.get('wal/segment'))).toBe(sha256(body));
  });

  it('fails a multipart putStream when the server dies between parts; a retry after restart succeeds', async () => {
    const storage = await open({ timeouts: { connectMs: 500, requestMs: 5_000 }, maxAttempts: 2 });
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    async function* slowSource(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(20 * MiB, 1); // parts 1 and 2 (8 MiB each) go out at once
      await released;
      yield Buffer.alloc(4 * MiB, 2);
    }
    const putStream = timed(storage.putStream('base/base.tar', Readable.from(slowSource())));
    // s3rver writes PART.md5 once a part is stored.
    await waitFor(() => fs.readdirSync(server.directory, { recursive: true }).some((name) => String(name).endsWith('.md5')), 5_000);
    await server.crash();
    release();
    const { error } = await putStream;
    expect(error).toBeInstanceOf(StorageError);

    await server.restart();
    expect(await storage.stat('base/base.tar')).toBeUndefined();
    const body = Buffer.concat([Buffer.alloc(20 * MiB, 1), Buffer.alloc(4 * MiB, 2)]);
    await storage.putStream('base/base.tar', Readable.from([body]));
    expect(sha256(await storage.get('base/base.tar'))).toBe(sha256(body));
  });

  it('fails fast, naming the location, when nothing listens at the endpoint', async () => {
    const port = await freePort();
    const storage = await openStorage({
      kind: 's3',
      bucket: 'archive',
      prefix: 'cluster-a',
      endpoint: `http://127.0.0.1:${port}`,
      accessKeyId: 'any',
      secretAccessKey: 'secret-that-must-not-leak',
      ...FAST,
    });
    opened.push(storage);
    const { error, elapsedMs } = await timed(storage.put('wal/1', Buffer.from('x')));
    expect(error).toBeInstanceOf(StorageError);
    const message = (error as StorageError).message;
    expect(message).toContain(`storage put wal/1 at s3://archive/cluster-a (endpoint http://127.0.0.1:${port}) failed`);
    expect(message).not.toContain('secret-that-must-not-leak');
    expect(elapsedMs).toBeLessThan(2_000);
  });
});

describe('gcs storage against a failing emulator', () => {
  let emulator: GcsEmulator;
  let root = 0;

  beforeAll(async () => {
    emulator = await startGcsEmulator();
  });

  afterAll(async () => {
    await emulator?.stop();
  });

  async function open(): Promise<Storage> {
    const storage = await openStorage({
      kind: 'gcs',
      bucket: 'test',
      prefix: `faults-${++root}`,
      apiEndpoint: emulator.apiEndpoint,
      projectId: emulator.projectId,
      ...FAST,
    });
    opened.push(storage);
    return storage;
  }

  it('fails a put to a hung (SIGSTOPped) emulator with a StorageError within a bounded time', async () => {
    const storage = await open();
    await storage.put('warm-up', Buffer.from('x'));
    emulator.pause();
    try {
      const { error, elapsedMs } = await timed(storage.put('wal/1', randomBytes(16 * MiB)));
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).message).toContain(`wal/1 at ${storage.location}`);
      // 2 attempts × 1 s, with the library's 1 s backoff between them.
      expect(elapsedMs).toBeLessThan(6_500);
    } finally {
      emulator.resume();
    }
  });

  it('fails a putStream and a getStream that stall on a hung emulator', async () => {
    const storage = await open();
    await storage.put('small', Buffer.from('x'));
    emulator.pause();
    try {
      const upload = await timed(storage.putStream('base/base.tar', Readable.from(chunks(40 * MiB))));
      expect(upload.error).toBeInstanceOf(StorageError);
      expect(upload.elapsedMs).toBeLessThan(6_500);
      const download = await timed(storage.getStream('small'));
      expect(download.error).toBeInstanceOf(StorageError);
      expect(download.elapsedMs).toBeLessThan(6_500);
    } finally {
      emulator.resume();
    }
    await storage.put('after', Buffer.from('ok'));
    expect((await storage.get('after')).toString()).toBe('ok');
  });

  it('fails, naming the location, when nothing listens at the endpoint', async () => {
    const port = await freePort();
    const storage = await openStorage({ kind: 'gcs', bucket: 'archive', apiEndpoint: `http://127.0.0.1:${port}`, projectId: 'p', ...FAST });
    opened.push(storage);
    const { error, elapsedMs } = await timed(storage.put('wal/1', Buffer.from('x')));
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).message).toContain(`storage put wal/1 at gs://archive (endpoint http://127.0.0.1:${port}) failed`);
    expect(elapsedMs).toBeLessThan(4_000);
  });
});

describe('local storage when the archiver is killed', () => {
  let base: string;
  let child: ChildProcess | undefined;

  beforeAll(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'storage-faults-'));
  });

  afterAll(() => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('leaves no object under the key when killed (SIGKILL) during a 200 MiB putStream', async () => {
    const root = path.join(base, 'archive');
    const script = `
      const { Readable } = require('node:stream');
      const { openStorage } = require('./archiver/src/storage/open');
      async function* source() {
        const chunk = Buffer.alloc(1024 * 1024, 7);
        for (let i = 0; i < 200; i++) {
          if (i === 20) process.stdout.write('writing\\n');
          yield chunk;
          // From then on slowly (~1 s to go): the kill lands mid-put even on a loaded machine.
          await new Promise((resolve) => (i >= 20 ? setTimeout(resolve, 5) : setImmediate(resolve)));
        }
      }
      openStorage({ kind: 'local', root: ${JSON.stringify(root)} })
        .then((storage) => storage.putStream('base/base.tar', Readable.from(source())))
        .then(() => process.stdout.write('done\\n'));
    `;
    child = spawn(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: path.resolve(__dirname, '../..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const output = child.stdout;
    await new Promise<void>((resolve, reject) => {
      output?.on('data', (data: Buffer) => {
        if (data.toString().includes('writing')) {
          resolve();
        } else if (data.toString().includes('done')) {
          reject(new Error('the put finished before it could be killed'));
        }
      });
      child?.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
    const exited = new Promise((resolve) => child?.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;

    const directory = path.join(root, 'base');
    const left = fs.readdirSync(directory);
    // Killed mid-write: a partial temp file, nothing under the final name.
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^\.tmp-/);
    expect(fs.statSync(path.join(directory, left[0])).size).toBeGreaterThan(0);
    const storage = await openStorage({ kind: 'local', root });
    expect(await storage.stat('base/base.tar')).toBeUndefined();
    expect(await storage.list('')).toEqual([]);
    // The next archiver run is not disturbed by the leftover.
    await storage.putStream('base/base.tar', Readable.from([Buffer.from('complete')]));
    expect((await storage.get('base/base.tar')).toString()).toBe('complete');
  });
});

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function* chunks(total: number): Generator<Buffer> {
  const chunk = Buffer.alloc(256 * 1024, 3);
  for (let sent = 0; sent < total; sent += chunk.length) {
    yield chunk;
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) {
      throw new Error(`condition not met within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
