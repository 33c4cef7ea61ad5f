/**
 * S3Storage's side of what S3 enforces and s3rver does not: a 412 answer to `If-None-Match: *`,
 * and the request checksums of the production default (`requestChecksumCalculation:
 * 'WHEN_SUPPORTED'`). Both against a tiny in-memory S3 test double (testkit/doubles.ts) that
 * answers as S3 does; everything else about the backend is the conformance suite's, against
 * s3rver (storage-conformance.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectExistsError } from '../../../archiver/src/errors';
import { openStorage } from '../../../archiver/src/storage/open';
import { S3StorageOptions, Storage } from '../../../archiver/src/storage/storage';
import { TinyS3Server, s3Crc32, startTinyS3Server } from '../../../testkit/doubles';

const MiB = 1024 * 1024;

let server: TinyS3Server;
const opened: Storage[] = [];
beforeEach(async () => {
  server = await startTinyS3Server();
});
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((storage) => storage.close()));
  await server.close();
});

async function open(options: Partial<S3StorageOptions> = {}): Promise<Storage> {
  const storage = await openStorage({
    kind: 's3',
    bucket: 'archive',
    prefix: 'cluster',
    endpoint: server.endpoint,
    accessKeyId: 'test',
    secretAccessKey: 'test',
    maxAttempts: 1,
    partSizeBytes: 5 * MiB,
    ...options,
  });
  opened.push(storage);
  return storage;
}

/** Source of a putStream in uneven chunks. */
function chunked(data: Buffer, size = 777_777): Readable {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += size) pieces.push(data.subarray(offset, offset + size));
  return Readable.from(pieces);
}

describe('S3Storage when the server enforces If-None-Match: *', () => {
  it('fails a put with ifAbsent with ObjectExistsError on the server\'s 412, and the object stays', async () => {
    const storage = await open();
    await storage.put('wal/000000010000000000000001', Buffer.from('first'));
    const failure = await storage.put('wal/000000010000000000000001', Buffer.from('second'), { ifAbsent: true }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ObjectExistsError);
    expect(failure).toMatchObject({ key: 'wal/000000010000000000000001', location: storage.location });
    expect(server.requests.filter((r) => r.method === 'PUT').map((r) => [r.headers['if-none-match'], r.status])).toEqual([
      [undefined, 200],
      ['*', 412],
    ]);
    expect(server.objects.get('archive/cluster/wal/000000010000000000000001')?.toString()).toBe('first');
  });

  it('fails a multipart putStream with ifAbsent with ObjectExistsError on the server\'s 412 at completion', async () => {
    const storage = await open();
    await storage.put('base/base.tar', Buffer.from('first'));
    await expect(storage.putStream('base/base.tar', chunked(randomBytes(11 * MiB)), { ifAbsent: true })).rejects.toBeInstanceOf(ObjectExistsError);
    expect(server.objects.get('archive/cluster/base/base.tar')?.toString()).toBe('first');
  });

  it('creates an absent object with ifAbsent', async () => {
    const storage = await open();
    await storage.put('wal/000000010000000000000001', Buffer.from('only'), { ifAbsent: true });
    expect((await storage.get('wal/000000010000000000000001')).toString()).toBe('only');
  });
});

describe('S3Storage with the default request checksums (WHEN_SUPPORTED)', () => {
  it('sends the CRC-32 of a put\'s body, which the server verifies', async () => {
    const storage = await open();
    const body = randomBytes(100_000);
    await storage.put('wal/000000010000000000000001', body);
    const [put] = server.requests.filter((r) => r.method === 'PUT');
    expect(put.headers['x-amz-checksum-crc32']).toBe(s3Crc32(body));
    expect(put.status).toBe(200);
    expect((await storage.get('wal/000000010000000000000001')).equals(body)).toBe(true);
  });

  it('uploads a multipart putStream with CRC32 named at creation, carried by every part, and listed for every part at completion', async () => {
    const storage = await open();
    const data = randomBytes(12 * MiB); // parts of 5, 5 and 2 MiB
    await storage.putStream('base/base.tar', chunked(data));

    const create = server.requests.filter((r) => r.method === 'POST' && r.query.has('uploads'));
    expect(create).toHaveLength(1);
    expect(create[0].headers['x-amz-checksum-algorithm']).toBe('CRC32');

    // Parts go out in parallel: compare them in part order.
    const parts = server.requests.filter((r) => r.method === 'PUT' && r.query.has('partNumber')).sort((a, b) => Number(a.query.get('partNumber')) - Number(b.query.get('partNumber')));
    expect(parts.map((r) => [Number(r.query.get('partNumber')), r.body.length])).toEqual([
      [1, 5 * MiB],
      [2, 5 * MiB],
      [3, 2 * MiB],
    ]);
    for (const part of parts) {
      expect(part.headers['x-amz-checksum-crc32']).toBe(s3Crc32(part.body));
      expect(part.status).toBe(200);
    }

    const complete = server.requests.filter((r) => r.method === 'POST' && r.query.has('uploadId'));
    expect(complete).toHaveLength(1);
    const listed = [...complete[0].body.toString('utf8').matchAll(/<Part>[\s\S]*?<ChecksumCRC32>([^<]+)<\/ChecksumCRC32>[\s\S]*?<PartNumber>(\d+)<\/PartNumber>[\s\S]*?<\/Part>/g)].map((m) => [Number(m[2]), m[1]]);
    const expected = [1, 2, 3].map((n) => [n, s3Crc32(data.subarray((n - 1) * 5 * MiB, Math.min(n * 5 * MiB, data.length)))]);
    expect(listed).toEqual(expected);
    expect(complete[0].status).toBe(200);
    expect(server.objects.get('archive/cluster/base/base.tar')?.equals(data)).toBe(true);
  });
});
