/**
 * The archive's contract (archiver/src/archive.ts), on the real local backend, and on S3 (s3rver)
 * and GCS (the firebase emulator) where a server's behaviour matters: a push is stored once and
 * compared afterwards, a different file or another cluster's file is refused, a damaged object is
 * replaced while an unreadable one is kept, and a fetch hands over only verified bytes.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Archive } from '../../archiver/src/archive';
import { Codecs, encodeWalFile } from '../../archiver/src/wal-object';
import { COMPRESSION_NAMES, CompressionName } from '../../archiver/src/compression';
import { ArchiveConflictError, CorruptObjectError, ForeignArchiveError, StorageError, UnsupportedObjectError, WalNotFoundError } from '../../archiver/src/errors';
import { openStorage } from '../../archiver/src/storage/open';
import { Storage, StorageOptions } from '../../archiver/src/storage/storage';
import { WorkerPool } from '../../archiver/src/worker-pool';
import { ROOT, fakeDataDirectory, makeSegment } from '../../testkit/archiver';
import { bytesQueuedAt, capturingLogger, startTinyS3Server } from '../../testkit/doubles';
import { GcsEmulator, startGcsEmulator } from '../../testkit/gcs-emulator';
import { S3Server, startS3Server } from '../../testkit/s3-server';

const SYSID = 7311676708303809017n;
const OTHER_SYSID = 7311676708303809999n;
const SEGMENT_SIZE = 1 << 20;
const NAME = '000000010000000000000001';
const NAME_2 = '000000010000000000000002';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'archive-test-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const archives: Archive[] = [];
afterEach(async () => {
  await Promise.allSettled(archives.splice(0).map((archive) => archive.close()));
});

let cases = 0;
/** A fresh data directory and a fresh local archive. */
async function localCase(compression: CompressionName = 'zstd') {
  const base = fs.mkdtempSync(path.join(scratch, `case-${++cases}-`));
  const repo = path.join(base, 'repo');
  const storage = await openStorage({ kind: 'local', root: repo });
  const { log, lines } = capturingLogger();
  const archive = new Archive({ storage, compression, log });
  archives.push(archive);
  return { base, repo, storage, archive, lines, pg: fakeDataDirectory(base), objectPath: (name: string) => path.join(repo, 'wal', name) };
}

/** A data directory whose global/pg_control starts with `systemIdentifier` (uint64, little-endian). */
function withControlFile(base: string, systemIdentifier: bigint): ReturnType<typeof fakeDataDirectory> {
  const pg = fakeDataDirectory(base);
  const control = Buffer.alloc(8192);
  control.writeBigUInt64LE(systemIdentifier, 0);
  fs.mkdirSync(path.join(pg.dataDir, 'global'));
  fs.writeFileSync(path.join(pg.dataDir, 'global', 'pg_control'), control);
  return pg;
}

function identityOf(repo: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(repo, 'archive.json'), 'utf8'));
}

describe('Archive (local backend)', () => {
  describe.each(COMPRESSION_NAMES)('with %s compression', (compression) => {
    it('restores a pushed segment byte for byte', async () => {
      const { archive, pg } = await localCase(compression);
      const segment = makeSegment(SYSID, 1, SEGMENT_SIZE);
      expect(await archive.push(pg.addReady(NAME, segment))).toMatchObject({ name: NAME, status: 'stored', bytes: SEGMENT_SIZE });
      const destination = path.join(pg.walDir, 'RECOVERYXLOG');
      expect(await archive.fetch(NAME, destination)).toMatchObject({ name: NAME, bytes: SEGMENT_SIZE });
      expect(fs.readFileSync(destination).equals(segment)).toBe(true);
    });
  });

  it('succeeds when identical content is pushed again, leaving the archived object as it was', async () => {
    const { archive, pg, objectPath } = await localCase();
    const file = pg.addReady(NAME, makeSegment(SYSID, 1, SEGMENT_SIZE));
    await archive.push(file);
    const stored = fs.readFileSync(objectPath(NAME));
    expect(await archive.push(file)).toMatchObject({ status: 'already-archived', bytes: SEGMENT_SIZE });
    expect(fs.readFileSync(objectPath(NAME)).equals(stored)).toBe(true);
  });

  it('fails with ArchiveConflictError for a different file under an archived name, and keeps the archived object', async () => {
    const { archive, pg, objectPath, base } = await localCase();
    const original = makeSegment(SYSID, 1, SEGMENT_SIZE);
    await archive.push(pg.addReady(NAME, original));
    const stored = fs.readFileSync(objectPath(NAME));
    // Same name, same size, same cluster: only the bytes differ.
    const failure = await archive.push(pg.addReady(NAME, makeSegment(SYSID, 2, SEGMENT_SIZE))).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ArchiveConflictError);
    expect((failure as Error).message).toContain(`${NAME} is already archived at ${archive.location} with different contents`);
    expect(fs.readFileSync(objectPath(NAME)).equals(stored)).toBe(true);
    await archive.fetch(NAME, path.join(base, 'restored'));
    expect(fs.readFileSync(path.join(base, 'restored')).equals(original)).toBe(true);
  });

  it('fails with ForeignArchiveError for a segment of another cluster, storing nothing', async () => {
    const { archive, pg, repo, objectPath } = await localCase();
    await archive.push(pg.addReady(NAME, makeSegment(SYSID, 1, SEGMENT_SIZE)));
    expect(identityOf(repo)).toMatchObject({ systemIdentifier: SYSID.toString(), walSegmentSize: SEGMENT_SIZE });
    const failure = await archive.push(pg.addReady(NAME_2, makeSegment(OTHER_SYSID, 2, SEGMENT_SIZE))).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ForeignArchiveError);
    expect((failure as Error).message).toContain(`belongs to another database cluster (system identifier ${SYSID}); this cluster is ${OTHER_SYSID}`);
    expect(fs.existsSync(objectPath(NAME_2))).toBe(false);
  });

  it('with a worker pool, gives each encoded object\'s memory back to the pool once its put has settled, stored or refused', async () => {
    const base = fs.mkdtempSync(path.join(scratch, `case-${++cases}-`));
    const repo = path.join(base, 'repo');
    const pool = new WorkerPool(path.join(ROOT, 'archiver/dist/lib/worker.cjs'), 2, 'zstd', undefined);
    const archive = new Archive({ storage: await openStorage({ kind: 'local', root: repo }), compression: 'zstd', log: capturingLogger().log, pool });
    archives.push(archive);
    const recycled = vi.spyOn(pool, 'recycle');
    const pg = fakeDataDirectory(base);
    const segments = [1, 2, 3].map((i) => makeSegment(SYSID, i, SEGMENT_SIZE));
    for (const [i, segment] of segments.entries()) {
      expect(await archive.push(pg.addReady(`00000001000000000000000${i + 1}`, segment))).toMatchObject({ status: 'stored', bytes: SEGMENT_SIZE });
    }
    expect(recycled).toHaveBeenCalledTimes(3);
    // Each body went to a worker (its memory detached here): nothing of it is left to read.
    for (const [body] of recycled.mock.calls) expect(body.length).toBe(0);
    for (const [i, segment] of segments.entries()) {
      const destination = path.join(base, `restored-${i}`);
      await archive.fetch(`00000001000000000000000${i + 1}`, destination);
      expect(fs.readFileSync(destination).equals(segment)).toBe(true);
    }
    // Refused (a segment of another cluster): the memory goes back all the same.
    await expect(archive.push(pg.addReady('000000010000000000000004', makeSegment(OTHER_SYSID, 4, SEGMENT_SIZE)))).rejects.toThrow(ForeignArchiveError);
    expect(recycled).toHaveBeenCalledTimes(4);
  });

  describe('files without a segment header take the system identifier from pg_control', () => {
    it('records the identifier of global/pg_control for a .history file pushed first', async () => {
      const { archive, repo, base } = await localCase();
      const pg = withControlFile(path.join(base, 'cluster-a'), SYSID);
      const history = pg.addReady('00000002.history', Buffer.from('1\t0/3000000\tno recovery target specified\n'));
      expect(await archive.push(history)).toMatchObject({ status: 'stored' });
      expect(identityOf(repo)).toMatchObject({ systemIdentifier: SYSID.toString() });
    });

    it('fails with ForeignArchiveError for a .history file from another cluster\'s data directory', async () => {
      const { archive, base, objectPath } = await localCase();
      const ours = withControlFile(path.join(base, 'cluster-a'), SYSID);
      await archive.push(ours.addReady(NAME, makeSegment(SYSID, 1, SEGMENT_SIZE)));
      const theirs = withControlFile(path.join(base, 'cluster-b'), OTHER_SYSID);
      const failure = await archive.push(theirs.addReady('00000003.history', Buffer.from('2\t0/5000000\tno recovery target specified\n'))).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(ForeignArchiveError);
      expect(fs.existsSync(objectPath('00000003.history'))).toBe(false);
      // The same cluster's history file is welcome.
      expect(await archive.push(ours.addReady('00000003.history', Buffer.from('2\t0/5000000\tno recovery target specified\n')))).toMatchObject({ status: 'stored' });
    });
  });

  describe('an object already under the name', () => {
    const damages: [string, (object: Buffer) => Buffer][] = [
      ['truncated to a few bytes (an upload cut short)', (object) => object.subarray(0, 20)],
      [
        'with body bytes flipped under a valid header',
        (object) => {
          const damaged = Buffer.from(object);
          for (let i = damaged.length - 200; i < damaged.length - 100; i++) damaged[i] ^= 0xa5;
          return damaged;
        },
      ],
    ];

    it.each(damages)('is replaced by a push of the local file when %s, with a warning in the log', async (_what, damage) => {
      const { archive, pg, objectPath, lines, base } = await localCase();
      const segment = makeSegment(SYSID, 1, SEGMENT_SIZE);
      const file = pg.addReady(NAME, segment);
      await archive.push(file);
      fs.writeFileSync(objectPath(NAME), damage(fs.readFileSync(objectPath(NAME))));
      expect(await archive.push(file)).toMatchObject({ status: 'stored', bytes: SEGMENT_SIZE });
      expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'replaced a damaged object with the local file', wal: NAME, location: archive.location }));
      await archive.fetch(NAME, path.join(base, 'restored'));
      expect(fs.readFileSync(path.join(base, 'restored')).equals(segment)).toBe(true);
    });

    const unreadable: [string, (object: Buffer) => Buffer][] = [
      [
        'of a newer format version',
        (object) => {
          const newer = Buffer.from(object);
          newer.writeUInt8(2, 12);
          return newer;
        },
      ],
      ['without a PGWA header (another tool\'s file)', () => Buffer.from('a file some other tool stored under this name, much longer than a header...')],
    ];

    it.each(unreadable)('fails with UnsupportedObjectError and is kept when it is %s', async (_what, replace) => {
      const { archive, pg, objectPath, lines } = await localCase();
      const file = pg.addReady(NAME, makeSegment(SYSID, 1, SEGMENT_SIZE));
      await archive.push(file);
      const foreign = replace(fs.readFileSync(objectPath(NAME)));
      fs.writeFileSync(objectPath(NAME), foreign);
      await expect(archive.push(file)).rejects.toBeInstanceOf(UnsupportedObjectError);
      expect(fs.readFileSync(objectPath(NAME)).equals(foreign)).toBe(true);
      expect(lines.filter((line) => line.level === 'warn')).toEqual([]);
    });
  });

  describe('fetch', () => {
    // Random bytes do not compress: brotli stores them in uncompressed meta-blocks, where a
    // flipped byte decodes without an error. Neither codec has a checksum of its own.
    it.each(['none', 'brotli'] as const)('fails with CorruptObjectError for a %s object with a flipped body byte, writing nothing', async (compression) => {
      const { archive, pg, objectPath } = await localCase(compression);
      const name = '00000002.history';
      await archive.push(pg.addReady(name, randomBytes(64 * 1024)));
      const object = fs.readFileSync(objectPath(name));
      object[Math.floor(object.length / 2)] ^= 0xff;
      fs.writeFileSync(objectPath(name), object);
      const destination = path.join(pg.walDir, 'RECOVERYHISTORY');
      const failure = await archive.fetch(name, destination).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(CorruptObjectError);
      expect((failure as Error).message).toContain('do not match the checksum recorded when it was archived');
      expect(fs.readdirSync(pg.walDir).filter((entry) => entry.startsWith('RECOVERY'))).toEqual([]);
    });

    it('fails with WalNotFoundError for a name the archive does not hold', async () => {
      const { archive, pg } = await localCase();
      await expect(archive.fetch(NAME, path.join(pg.walDir, 'RECOVERYXLOG'))).rejects.toBeInstanceOf(WalNotFoundError);
    });

    it('fails, leaving no temporary file behind, when the rename into place fails', async () => {
      const { archive, pg, base } = await localCase();
      await archive.push(pg.addReady(NAME, makeSegment(SYSID, 1, SEGMENT_SIZE)));
      const restoreDir = path.join(base, 'restore');
      // A non-empty directory where the file should go: rename() cannot replace it.
      const destination = path.join(restoreDir, 'RECOVERYXLOG');
      fs.mkdirSync(destination, { recursive: true });
      fs.writeFileSync(path.join(destination, 'occupied'), 'x');
      await expect(archive.fetch(NAME, destination)).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
      expect(fs.readdirSync(restoreDir)).toEqual(['RECOVERYXLOG']);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('Archive on every backend: the archiver\'s own byte comparison refuses (s3rver and the GCS emulator ignore conditional writes)', () => {
  let s3: S3Server | undefined;
  let gcs: GcsEmulator | undefined;
  beforeAll(async () => {
    [s3, gcs] = await Promise.all([startS3Server({ buckets: ['archive'] }), startGcsEmulator()]);
  });
  afterAll(async () => {
    await Promise.allSettled([s3?.stop(), gcs?.stop()]);
  });

  let prefixes = 0;
  const backends: [string, () => StorageOptions][] = [
    ['local', () => ({ kind: 'local', root: path.join(scratch, `backend-${++prefixes}`) })],
    ['s3 (s3rver)', () => ({ kind: 's3', bucket: 'archive', prefix: `backend-${++prefixes}`, endpoint: s3!.endpoint, accessKeyId: s3!.accessKeyId, secretAccessKey: s3!.secretAccessKey, maxAttempts: 1 })],
    ['gcs (emulator)', () => ({ kind: 'gcs', bucket: 'archive', prefix: `backend-${++prefixes}`, apiEndpoint: gcs!.apiEndpoint, projectId: gcs!.projectId, maxAttempts: 1 })],
  ];

  async function open(options: StorageOptions): Promise<{ archive: Archive; storage: Storage; pg: ReturnType<typeof fakeDataDirectory> }> {
    const storage = await openStorage(options);
    const archive = new Archive({ storage, compression: 'zstd', log: capturingLogger().log });
    archives.push(archive);
    return { archive, storage, pg: fakeDataDirectory(fs.mkdtempSync(path.join(scratch, 'backend-pg-'))) };
  }

  describe.each(backends)('%s', (_name, options) => {
    it('fails with ArchiveConflictError for a different file under an archived name, and keeps the archived object', async () => {
      const { archive, storage, pg } = await open(options());
      await archive.push(pg.addReady(NAME, makeSegment(SYSID, 1, SEGMENT_SIZE)));
      const stored = await storage.get(`wal/${NAME}`);
      await expect(archive.push(pg.addReady(NAME, makeSegment(SYSID, 2, SEGMENT_SIZE)))).rejects.toBeInstanceOf(ArchiveConflictError);
      expect((await storage.get(`wal/${NAME}`)).equals(stored)).toBe(true);
    });

    it('fails with ForeignArchiveError for a segment of another cluster, storing nothing', async () => {
      const { archive, storage, pg } = await open(options());
      await archive.push(pg.addReady(NAME, makeSegment(SYSID, 1, SEGMENT_SIZE)));
      await expect(archive.push(pg.addReady(NAME_2, makeSegment(OTHER_SYSID, 2, SEGMENT_SIZE)))).rejects.toBeInstanceOf(ForeignArchiveError);
      expect(await storage.stat(`wal/${NAME_2}`)).toBeUndefined();
      expect(JSON.parse((await storage.get('archive.json')).toString('utf8'))).toMatchObject({ systemIdentifier: SYSID.toString() });
    });
  });
});

describe('Archive with a worker pool when the S3 server hangs, then dies, mid-upload (s3rver)', () => {
  let s3: S3Server | undefined;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['archive'] });
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('fails the push with a StorageError, gives the body\'s memory back without an error anywhere, and a push after the restart stores the segment whole', async () => {
    const server = s3!;
    const storage = await openStorage({
      kind: 's3',
      bucket: 'archive',
      prefix: 'killed-mid-upload',
      endpoint: server.endpoint,
      accessKeyId: server.accessKeyId,
      secretAccessKey: server.secretAccessKey,
      timeouts: { connectMs: 500, requestMs: 1_000 },
      maxAttempts: 2,
    });
    const pool = new WorkerPool(path.join(ROOT, 'archiver/dist/lib/worker.cjs'), 2, 'zstd', undefined);
    const archive = new Archive({ storage, compression: 'zstd', log: capturingLogger().log, pool });
    archives.push(archive);
    const recycled = vi.spyOn(pool, 'recycle');
    const strays: unknown[] = [];
    const onStray = (error: unknown) => strays.push(error);
    process.on('unhandledRejection', onStray);
    process.on('uncaughtException', onStray);
    try {
      const pg = fakeDataDirectory(fs.mkdtempSync(path.join(scratch, 'killed-mid-upload-')));
      await archive.push(pg.addReady(NAME, makeSegment(SYSID, 1, SEGMENT_SIZE))); // archive.json, and a warm connection
      // Half random: ~8 MiB stored, more than the socket buffers take while the server is stopped.
      const segment = makeSegment(SYSID, 2, 16 << 20);
      const file = pg.addReady(NAME_2, segment);
      // Known absent from a listing (as the pusher does for a backlog): no HEAD before the PUT,
      // so the bytes that reach the stopped server are the upload's.
      await archive.preloadExistence([NAME_2]);
      server.pause();
      const push = archive.push(file).then(
        () => undefined,
        (error: unknown) => error,
      );
      const deadline = Date.now() + 10_000;
      while (bytesQueuedAt(server.port) === 0 && Date.now() < deadline) await sleep(20);
      expect(bytesQueuedAt(server.port)).toBeGreaterThan(0); // the upload is under way
      await server.crash();
      expect(await push).toBeInstanceOf(StorageError);
      expect(recycled).toHaveBeenCalledTimes(2);
      expect(recycled.mock.calls[1][0].length).toBe(0); // the failed upload's memory went to a worker

      await server.restart();
      expect(await archive.push(file)).toMatchObject({ status: 'stored', bytes: segment.length });
      const restored = path.join(pg.dataDir, 'restored');
      await archive.fetch(NAME_2, restored);
      expect(fs.readFileSync(restored).equals(segment)).toBe(true);
      await sleep(200); // time for a late failure of the abandoned upload to surface
      expect(strays).toEqual([]);
    } finally {
      process.off('unhandledRejection', onStray);
      process.off('uncaughtException', onStray);
    }
  }, 60_000);
});

describe('Archive on an S3 server that enforces If-None-Match (a test double: s3rver ignores it)', () => {
  // Another writer stores the name between the archiver's existence check (HEAD: absent) and its
  // PUT: the server answers 412, and the archiver compares instead of failing.
  async function racedPush(competing: Buffer, local: Buffer) {
    const base = fs.mkdtempSync(path.join(scratch, 'raced-'));
    const pg = fakeDataDirectory(base);
    const competitor = path.join(base, NAME);
    fs.writeFileSync(competitor, competing);
    const competingObject = (await encodeWalFile(competitor, new Codecs().get('zstd'))).body;
    const server = await startTinyS3Server({
      onRequest: (request, self) => {
        if (request.method === 'PUT' && request.key === `raced/wal/${NAME}` && !self.objects.has(`archive/raced/wal/${NAME}`)) {
          self.objects.set(`archive/raced/wal/${NAME}`, competingObject);
        }
      },
    });
    try {
      const storage = await openStorage({ kind: 's3', bucket: 'archive', prefix: 'raced', endpoint: server.endpoint, accessKeyId: 'test', secretAccessKey: 'test', maxAttempts: 1 });
      const archive = new Archive({ storage, compression: 'zstd', log: capturingLogger().log });
      archives.push(archive);
      const outcome = await archive.push(pg.addReady(NAME, local)).catch((error: unknown) => error);
      const refusedPuts = server.requests.filter((r) => r.method === 'PUT' && r.key === `raced/wal/${NAME}` && r.status === 412);
      return { outcome, refusedPuts: refusedPuts.length, stored: server.objects.get(`archive/raced/wal/${NAME}`), competingObject };
    } finally {
      await server.close();
    }
  }

  it('succeeds as already archived when the other writer stored identical content', async () => {
    const segment = makeSegment(SYSID, 1, SEGMENT_SIZE);
    const { outcome, refusedPuts } = await racedPush(segment, segment);
    expect(refusedPuts).toBe(1);
    expect(outcome).toMatchObject({ name: NAME, status: 'already-archived' });
  });

  it('fails with ArchiveConflictError when the other writer stored different content, which stays', async () => {
    const { outcome, refusedPuts, stored, competingObject } = await racedPush(makeSegment(SYSID, 2, SEGMENT_SIZE), makeSegment(SYSID, 1, SEGMENT_SIZE));
    expect(refusedPuts).toBe(1);
    expect(outcome).toBeInstanceOf(ArchiveConflictError);
    expect(stored?.equals(competingObject)).toBe(true);
  });
});
