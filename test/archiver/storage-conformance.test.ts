import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../archiver/src/storage/open';
import { InvalidKeyError, ObjectExistsError, ObjectNotFoundError, StorageError } from '../../archiver/src/errors';
import { Storage } from '../../archiver/src/storage/storage';
import { GcsEmulator, startGcsEmulator } from '../../testkit/gcs-emulator';
import { S3Server, startS3Server } from '../../testkit/s3-server';

/**
 * One conformance suite, run against every backend (as wal-g's storage.RunFolderTest).
 *
 * A backend under test is a `ConformanceTarget`: it opens storages rooted at a fresh prefix (or
 * directory) per test, so tests share a server but never see each other's objects.
 */
interface ConformanceTarget {
  /** A storage rooted at `root` (a prefix in the bucket, or a directory). */
  open(root: string, tunables?: { readonly listPageSize?: number }): Promise<Storage>;
  /**
   * What a put with ifAbsent does when the object exists:
   * - 'refused': ObjectExistsError, the old object is kept (the contract);
   * - 'replaced': the server ignores the precondition (s3rver ignores If-None-Match, the GCS
   *   emulator ignores ifGenerationMatch), the put succeeds and replaces the object.
   */
  readonly ifAbsentWhenExists: 'refused' | 'replaced';
}

const MiB = 1024 * 1024;
let rootCounter = 0;

function describeStorageConformance(name: string, target: ConformanceTarget): void {
  describe(`${name} storage conformance`, () => {
    const opened: Storage[] = [];
    const open = async (tunables?: { readonly listPageSize?: number }, root = `conformance-${++rootCounter}`): Promise<Storage> => {
      const storage = await target.open(root, tunables);
      opened.push(storage);
      return storage;
    };
    afterAll(async () => {
      await Promise.all(opened.map((storage) => storage.close()));
    });

    describe('get, getStream, stat', () => {
      it('fails with ObjectNotFoundError for get of a missing key', async () => {
        const storage = await open();
        const failure = await storage.get('wal/missing').catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(ObjectNotFoundError);
        expect(failure).toMatchObject({ key: 'wal/missing', location: storage.location });
      });

      it('fails with ObjectNotFoundError for getStream of a missing key, before returning a stream', async () => {
        const storage = await open();
        await expect(storage.getStream('wal/missing')).rejects.toBeInstanceOf(ObjectNotFoundError);
      });

      it('stat of a missing key is undefined', async () => {
        const storage = await open();
        expect(await storage.stat('wal/missing')).toBeUndefined();
      });

      it('a key that is only a prefix of other keys is not an object', async () => {
        const storage = await open();
        await storage.put('dir/file', Buffer.from('x'));
        await expect(storage.get('dir')).rejects.toBeInstanceOf(ObjectNotFoundError);
        expect(await storage.stat('dir')).toBeUndefined();
      });

      it('stat gives size and modification time', async () => {
        const storage = await open();
        const before = Date.now();
        await storage.put('wal/segment', randomBytes(1234));
        const info = await storage.stat('wal/segment');
        expect(info?.key).toBe('wal/segment');
        expect(info?.size).toBe(1234);
        // Server clocks and whole-second resolution: a generous window around the put.
        expect(info?.lastModified.getTime()).toBeGreaterThan(before - 60_000);
        expect(info?.lastModified.getTime()).toBeLessThan(Date.now() + 60_000);
      });
    });

    describe('put', () => {
      it('stores bytes that get returns identically', async () => {
        const storage = await open();
        const body = Buffer.from('a WAL segment, in short');
        await storage.put('wal/000000010000000000000001', body);
        expect((await storage.get('wal/000000010000000000000001')).equals(body)).toBe(true);
      });

      it('stores a 0-byte object', async () => {
        const storage = await open();
        await storage.put('empty', Buffer.alloc(0));
        expect((await storage.get('empty')).length).toBe(0);
        expect((await storage.stat('empty'))?.size).toBe(0);
      });

      it('stores a 16 MiB random object (a WAL segment) intact', async () => {
        const storage = await open();
        const body = randomBytes(16 * MiB);
        await storage.put('wal/big', body);
        const back = await storage.get('wal/big');
        expect(back.length).toBe(body.length);
        expect(sha256(back)).toBe(sha256(body));
      });

      it('replaces an existing object when ifAbsent is not set', async () => {
        const storage = await open();
        await storage.put('k', Buffer.from('first'));
        await storage.put('k', Buffer.from('second'));
        expect((await storage.get('k')).toString()).toBe('second');
      });

      it('with ifAbsent, creates an absent object', async () => {
        const storage = await open();
        await storage.put('k', Buffer.from('only'), { ifAbsent: true });
        expect((await storage.get('k')).toString()).toBe('only');
      });

      it('with ifAbsent, on an existing object: refused where the server enforces it, else replaced (documented)', async () => {
        const storage = await open();
        await storage.put('k', Buffer.from('first'));
        const second = storage.put('k', Buffer.from('second'), { ifAbsent: true });
        if (target.ifAbsentWhenExists === 'refused') {
          await expect(second).rejects.toBeInstanceOf(ObjectExistsError);
          expect((await storage.get('k')).toString()).toBe('first');
        } else {
          await second;
          expect((await storage.get('k')).toString()).toBe('second');
        }
      });
    });

    describe('putStream and getStream', () => {
      it('round-trip 40 MiB generated on the fly, without holding it in memory', async () => {
        const storage = await open();
        const size = 40 * MiB;
        const written = createHash('sha256');
        await storage.putStream('base/base.tar', Readable.from(pseudoRandomChunks(size, 7, written)));
        const read = createHash('sha256');
        let readBytes = 0;
        for await (const chunk of await storage.getStream('base/base.tar')) {
          read.update(chunk as Buffer);
          readBytes += (chunk as Buffer).length;
        }
        expect(readBytes).toBe(size);
        expect(read.digest('hex')).toBe(written.digest('hex'));
        expect((await storage.stat('base/base.tar'))?.size).toBe(size);
      });

      it('stores short and empty streams', async () => {
        const storage = await open();
        await storage.putStream('short', Readable.from([Buffer.from('ab'), Buffer.from('cd')]));
        await storage.putStream('empty', Readable.from([]));
        expect((await storage.get('short')).toString()).toBe('abcd');
        expect((await storage.get('empty')).length).toBe(0);
      });

      it('fails when the source stream fails, and leaves no object under the key', async () => {
        const storage = await open();
        async function* failing(): AsyncGenerator<Buffer> {
          yield randomBytes(MiB);
          yield randomBytes(MiB);
          throw new Error('source broke');
        }
        await expect(storage.putStream('broken', Readable.from(failing()))).rejects.toBeInstanceOf(StorageError);
        expect(await storage.stat('broken')).toBeUndefined();
        expect(await storage.list('')).toEqual([]);
      });

      it('with ifAbsent, on an existing object: refused where the server enforces it, else replaced (documented)', async () => {
        const storage = await open();
        await storage.put('k', Buffer.from('first'));
        const second = storage.putStream('k', Readable.from([Buffer.from('second')]), { ifAbsent: true });
        if (target.ifAbsentWhenExists === 'refused') {
          await expect(second).rejects.toBeInstanceOf(ObjectExistsError);
          expect((await storage.get('k')).toString()).toBe('first');
        } else {
          await second;
          expect((await storage.get('k')).toString()).toBe('second');
        }
      });
    });

    describe('list', () => {
      it('is [] for an absent prefix (and for an empty storage)', async () => {
        const storage = await open();
        expect(await storage.list('')).toEqual([]);
        expect(await storage.list('nothing/here/')).toEqual([]);
      });

      it('lists recursively, sorted by key, with sizes', async () => {
        const storage = await open();
        const keys = ['wal/b', 'base/1/data', 'wal/a', 'wal/sub/deep/c', 'a', 'wal/A', 'wal/a.partial'];
        for (const key of keys) {
          await storage.put(key, Buffer.from(key));
        }
        const listed = await storage.list('');
        expect(listed.map((info) => info.key)).toEqual([...keys].sort());
        for (const info of listed) {
          expect(info.size).toBe(Buffer.byteLength(info.key));
          expect(info.lastModified).toBeInstanceOf(Date);
        }
      });

      it('filters by prefix, including a partial last segment', async () => {
        const storage = await open();
        for (const key of ['wal/000000010000000000000001', 'wal/000000010000000000000002', 'wal/000000020000000000000001', 'walrus', 'other/wal/x']) {
          await storage.put(key, Buffer.from('x'));
        }
        expect((await storage.list('wal/')).map((info) => info.key)).toEqual([
          'wal/000000010000000000000001',
          'wal/000000010000000000000002',
          'wal/000000020000000000000001',
        ]);
        expect((await storage.list('wal/00000001')).map((info) => info.key)).toEqual([
          'wal/000000010000000000000001',
          'wal/000000010000000000000002',
        ]);
        expect((await storage.list('wal')).map((info) => info.key)).toEqual([
          'wal/000000010000000000000001',
          'wal/000000010000000000000002',
          'wal/000000020000000000000001',
          'walrus',
        ]);
      });

      it('sees only its own root: keys are relative to it, siblings are not listed', async () => {
        const root = `conformance-${++rootCounter}`;
        const storage = await open(undefined, root);
        const sibling = await open(undefined, `${root}-sibling`);
        const nested = await open(undefined, `${root}/nested`);
        await storage.put('mine', Buffer.from('1'));
        await sibling.put('theirs', Buffer.from('2'));
        await nested.put('deeper', Buffer.from('3'));
        expect((await storage.list('')).map((info) => info.key)).toEqual(['mine', 'nested/deeper']);
        expect((await nested.list('')).map((info) => info.key)).toEqual(['deeper']);
        expect(storage.location).not.toBe(sibling.location);
      });

      it('follows pagination (page size forced to 7 where the backend has pages)', async () => {
        const storage = await open({ listPageSize: 7 });
        const keys = Array.from({ length: 30 }, (_, i) => `p/${String(i).padStart(3, '0')}`);
        await Promise.all(keys.map((key) => storage.put(key, Buffer.from(key))));
        expect((await storage.list('p/')).map((info) => info.key)).toEqual(keys);
        expect((await storage.list('p/01')).map((info) => info.key)).toEqual(keys.slice(10, 20));
      });

      // S3: two ListObjectsV2 pages of 1000 and two DeleteObjects batches; GCS: two pages of 1000;
      // local: no pages, but the same order and completeness.
      it('lists and deletes more than 1000 objects (the servers\' page and batch size)', async () => {
        const storage = await open();
        const count = 1001;
        const keys = Array.from({ length: count }, (_, i) => `many/${String(i).padStart(5, '0')}`);
        await putAll(storage, keys);
        const listed = await storage.list('many/');
        expect(listed.length).toBe(count);
        expect(listed.map((info) => info.key)).toEqual(keys);
        await storage.delete(keys);
        expect(await storage.list('many/')).toEqual([]);
      });
    });

    describe('delete', () => {
      it('removes objects and is idempotent: absent keys are not an error', async () => {
        const storage = await open();
        await storage.put('a', Buffer.from('a'));
        await storage.put('d/b', Buffer.from('b'));
        await storage.put('keep', Buffer.from('k'));
        await storage.delete(['a', 'd/b', 'never-existed']);
        await storage.delete(['a', 'd/b']);
        await storage.delete([]);
        expect((await storage.list('')).map((info) => info.key)).toEqual(['keep']);
        await expect(storage.get('a')).rejects.toBeInstanceOf(ObjectNotFoundError);
      });
    });

    describe('keys', () => {
      const invalid = ['', '/abs', 'a/../b', '..', 'a//b', 'trailing/', './x', 'a/./b', 'nul\0'];

      it.each(invalid)('fails with InvalidKeyError for key %j, before any I/O', async (key) => {
        const storage = await open();
        await expect(storage.get(key)).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(storage.getStream(key)).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(storage.stat(key)).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(storage.put(key, Buffer.from('x'))).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(storage.putStream(key, Readable.from([]))).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(storage.delete(['fine', key])).rejects.toBeInstanceOf(InvalidKeyError);
      });

      it('fails with InvalidKeyError for list prefixes that leave the root', async () => {
        const storage = await open();
        for (const prefix of ['/abs', '../x', 'a/../', 'a//']) {
          await expect(storage.list(prefix)).rejects.toBeInstanceOf(InvalidKeyError);
        }
      });

      it('accepts keys with spaces, unicode and characters URLs must escape', async () => {
        const storage = await open();
        const keys = ['with space', 'ünïcødé/ключ', 'q?x=1&y=2#frag', 'plus+percent%20'];
        for (const key of keys) {
          await storage.put(key, Buffer.from(key));
          expect((await storage.get(key)).toString()).toBe(key);
        }
        expect((await storage.list('')).map((info) => info.key)).toEqual([...keys].sort());
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------

let s3: S3Server | undefined;
let gcs: GcsEmulator | undefined;
let localBase: string;

describeStorageConformance('local', {
  open: (root) => openStorage({ kind: 'local', root: path.join(localBase, root) }),
  ifAbsentWhenExists: 'refused',
});

describeStorageConformance('s3 (s3rver)', {
  open: (root, tunables) =>
    openStorage({
      kind: 's3',
      bucket: 'test',
      prefix: root,
      endpoint: started(s3).endpoint,
      accessKeyId: started(s3).accessKeyId,
      secretAccessKey: started(s3).secretAccessKey,
      // s3rver mishandles the SDK's default checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      listPageSize: tunables?.listPageSize,
      timeouts: { connectMs: 2_000, requestMs: 20_000 },
    }),
  // s3rver 3.7.1 ignores If-None-Match.
  ifAbsentWhenExists: 'replaced',
});

// The production default (ARCHIVER_S3_CHECKSUMS unset): the SDK's request checksums,
// WHEN_SUPPORTED. s3rver takes them for the archiver's requests, whose bodies are all Buffers of a
// known length (put, and putStream's parts): the CRC-32 travels in a header, never in the
// aws-chunked trailer s3rver would store verbatim. (That the checksums are sent, and right, is
// pinned against a stricter test double in storage/s3.test.ts.)
describeStorageConformance('s3 (s3rver, default request checksums)', {
  open: (root, tunables) =>
    openStorage({
      kind: 's3',
      bucket: 'test',
      prefix: `default-checksums/${root}`,
      endpoint: started(s3).endpoint,
      accessKeyId: started(s3).accessKeyId,
      secretAccessKey: started(s3).secretAccessKey,
      listPageSize: tunables?.listPageSize,
      timeouts: { connectMs: 2_000, requestMs: 20_000 },
    }),
  ifAbsentWhenExists: 'replaced',
});

describeStorageConformance('gcs (firebase emulator)', {
  open: (root, tunables) =>
    openStorage({
      kind: 'gcs',
      bucket: 'test',
      prefix: root,
      apiEndpoint: started(gcs).apiEndpoint,
      projectId: started(gcs).projectId,
      listPageSize: tunables?.listPageSize,
      timeouts: { requestMs: 20_000 },
    }),
  // The firebase emulator ignores ifGenerationMatch.
  ifAbsentWhenExists: 'replaced',
});

function started<T>(server: T | undefined): T {
  if (server === undefined) {
    throw new Error('test server not started (see beforeAll)');
  }
  return server;
}

beforeAll(async () => {
  localBase = fs.mkdtempSync(path.join(os.tmpdir(), 'storage-conformance-'));
  [s3, gcs] = await Promise.all([startS3Server(), startGcsEmulator()]);
});

afterAll(async () => {
  await Promise.allSettled([s3?.stop(), gcs?.stop()]);
  if (localBase !== undefined) {
    fs.rmSync(localBase, { recursive: true, force: true });
  }
});

describe('s3 storage over TLS (s3rver with a self-signed certificate)', () => {
  let tlsServer: S3Server | undefined;

  beforeAll(async () => {
    tlsServer = await startS3Server({ tls: true });
  });

  afterAll(async () => {
    await tlsServer?.stop();
  });

  const openTls = (tlsRejectUnauthorized?: boolean): Promise<Storage> =>
    openStorage({
      kind: 's3',
      bucket: 'test',
      endpoint: started(tlsServer).endpoint,
      accessKeyId: started(tlsServer).accessKeyId,
      secretAccessKey: started(tlsServer).secretAccessKey,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      tlsRejectUnauthorized,
      maxAttempts: 1,
    });

  it('serves https on 127.0.0.1 with a certificate for that IP', () => {
    expect(started(tlsServer).endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(fs.readFileSync(started(tlsServer).certificateFile ?? '', 'utf8')).toContain('BEGIN CERTIFICATE');
  });

  it('stores and reads back when certificate verification is off (tlsRejectUnauthorized: false)', async () => {
    const storage = await openTls(false);
    await storage.put('tls/object', Buffer.from('over TLS'));
    expect((await storage.get('tls/object')).toString()).toBe('over TLS');
    await storage.close();
  });

  it('fails with a StorageError by default: the self-signed certificate is not trusted', async () => {
    const storage = await openTls();
    const failure = await storage.put('tls/refused', Buffer.from('x')).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StorageError);
    expect((failure as StorageError).message).toMatch(/self[- ]signed certificate/i);
    await storage.close();
  });
});

describe('local storage specifics', () => {
  it('never lists its temp files and refuses keys that look like them', async () => {
    const root = path.join(localBase, `specifics-${++rootCounter}`);
    const storage = await openStorage({ kind: 'local', root });
    await storage.put('wal/x', Buffer.from('x'));
    fs.writeFileSync(path.join(root, 'wal', '.tmp-leftover-of-a-crash'), 'partial');
    expect((await storage.list('')).map((info) => info.key)).toEqual(['wal/x']);
    await expect(storage.put('wal/.tmp-x', Buffer.from('x'))).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it('leaves no temp file behind after puts, failed ifAbsent puts included', async () => {
    const root = path.join(localBase, `specifics-${++rootCounter}`);
    const storage = await openStorage({ kind: 'local', root });
    await storage.put('a/b', Buffer.from('1'));
    await expect(storage.put('a/b', Buffer.from('2'), { ifAbsent: true })).rejects.toBeInstanceOf(ObjectExistsError);
    await storage.putStream('a/c', Readable.from([Buffer.from('3')]));
    expect(fs.readdirSync(path.join(root, 'a')).sort()).toEqual(['b', 'c']);
  });

  it('names the directory in its location', async () => {
    const storage = await openStorage({ kind: 'local', root: path.join(localBase, 'named') });
    expect(storage.location).toBe(`file://${path.join(localBase, 'named')}`);
  });
});

describe('openStorage', () => {
  it('loads only the SDK of the backend in use', async () => {
    const script = `
      const { openStorage } = require('./archiver/src/storage/open');
      const loaded = () => {
        const files = Object.keys(require.cache);
        return { aws: files.some((f) => f.includes('@aws-sdk')), gcs: files.some((f) => f.includes('@google-cloud/storage')) };
      };
      (async () => {
        const steps = {};
        await (await openStorage({ kind: 'local', root: ${JSON.stringify(localBase)} })).close();
        steps.local = loaded();
        await (await openStorage({ kind: 's3', bucket: 'b', endpoint: 'http://127.0.0.1:1' })).close();
        steps.s3 = loaded();
        await (await openStorage({ kind: 'gcs', bucket: 'b', apiEndpoint: 'http://127.0.0.1:1' })).close();
        steps.gcs = loaded();
        process.stdout.write(JSON.stringify(steps));
      })();
    `;
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: path.resolve(__dirname, '../..'),
    });
    expect(JSON.parse(stdout)).toEqual({
      local: { aws: false, gcs: false },
      s3: { aws: true, gcs: false },
      gcs: { aws: true, gcs: true },
    });
    // No NodeVersionSupportWarning (or anything else) on stderr: it would land in PostgreSQL's log.
    expect(stderr).toBe('');
  });

  it('names bucket and prefix in the location, never credentials', async () => {
    const storage = await openStorage({
      kind: 's3',
      bucket: 'archive',
      prefix: '/cluster-a/',
      endpoint: 'http://user:pass@127.0.0.1:9000',
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG',
    });
    expect(storage.location).toBe('s3://archive/cluster-a (endpoint http://127.0.0.1:9000)');
    await storage.close();
  });

  it('fails for an unknown kind', async () => {
    await expect(openStorage({ kind: 'ftp' } as never)).rejects.toThrow(/unknown storage kind "ftp"/);
  });
});

// ---------------------------------------------------------------------------------------------

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `size` bytes in 64 KiB chunks, made on demand from a seed (cheap, incompressible enough), hashed into `hash`. */
async function* pseudoRandomChunks(size: number, seed: number, hash: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  const chunkSize = 64 * 1024;
  let state = seed >>> 0 || 1;
  for (let offset = 0; offset < size; offset += chunkSize) {
    const chunk = Buffer.allocUnsafe(Math.min(chunkSize, size - offset));
    for (let i = 0; i + 4 <= chunk.length; i += 4) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      chunk.writeUInt32LE(state >>> 0, i);
    }
    hash.update(chunk);
    yield chunk;
  }
}

async function putAll(storage: Storage, keys: readonly string[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < keys.length) {
        const key = keys[next++];
        await storage.put(key, Buffer.from(key));
      }
    }),
  );
}
