import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Codecs, decodeObject, encodeWalFile } from '../../archiver/src/wal-object';
import { COMPRESSION_NAMES, CompressionName, loadCodec } from '../../archiver/src/compression';
import { HEADER_SIZE, TRAILER_SIZE, checksum, decodeHeader, decodeStream, decodeTrailer, encodeHeader, encodeStream } from '../../archiver/src/envelope';
import { CorruptObjectError, UnsupportedObjectError } from '../../archiver/src/errors';

describe('the archived object header', () => {
  const header = { compression: 'zstd' as const, size: 16 * 1024 * 1024, checksum: checksum(Buffer.from('segment')) };

  it('round-trips compression, size and checksum in a 56-byte zstd/lz4 skippable frame', () => {
    const encoded = encodeHeader(header);
    expect(encoded.length).toBe(HEADER_SIZE);
    expect(HEADER_SIZE).toBe(56);
    expect(encoded.readUInt32LE(0)).toBe(0x184d2a50);
    expect(encoded.readUInt32LE(4)).toBe(48);
    expect(encoded.subarray(8, 12).toString('latin1')).toBe('PGWA');
    expect(decodeHeader(Buffer.concat([encoded, Buffer.from('payload')]), 'x')).toStrictEqual(header);
  });

  it('tells an object that is not ours (never replaced) from one of ours cut short (damaged)', () => {
    expect(() => decodeHeader(Buffer.from('not an archived object at all, no magic here......................'), 'wal/X at s3://b')).toThrow(
      new UnsupportedObjectError('wal/X at s3://b is not an archiver object (no PGWA header): it was not written by this archiver'),
    );
    expect(() => decodeHeader(Buffer.alloc(10), 'short')).toThrow(UnsupportedObjectError);
    const whole = encodeHeader(header);
    for (const length of [0, 3, 12, 13, 30, HEADER_SIZE - 1]) {
      expect(() => decodeHeader(whole.subarray(0, length), 'wal/X')).toThrow(new CorruptObjectError(`wal/X is truncated: ${length} bytes, shorter than the ${HEADER_SIZE}-byte header it starts with`));
    }
  });

  it('records CRC-32 of the original bytes', () => {
    expect(checksum(Buffer.from('123456789'))).toBe('cbf43926'); // the CRC-32 check value
    expect(encodeHeader(header).readUInt8(14)).toBe(1);
  });

  it('fails on a newer format version and an unknown compression', () => {
    const newer = encodeHeader(header);
    newer.writeUInt8(2, 12);
    expect(() => decodeHeader(newer, 'x')).toThrow(new UnsupportedObjectError('x has format version 2; this archiver reads version 1: upgrade the archiver'));
    const unknown = encodeHeader(header);
    unknown.writeUInt8(9, 13);
    expect(() => decodeHeader(unknown, 'x')).toThrow(new UnsupportedObjectError('x names an unknown compression (id 9): upgrade the archiver'));
  });
});

// ---------------------------------------------------------------------------------------------

/** `data` cut into pieces of uneven sizes, some smaller than the header or the trailer. */
function unevenPieces(data: Buffer): Buffer[] {
  const sizes = [1, 7, 55, 3, 24, 4093, 65_539, 13, 200_003];
  const pieces: Buffer[] = [];
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const size = sizes[i % sizes.length];
    pieces.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

async function through(transform: Transform, pieces: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      out.push(chunk);
      done();
    },
  });
  await pipeline(Readable.from(pieces), transform, sink);
  return Buffer.concat(out);
}

const codecFor = (name: CompressionName) => loadCodec(name);
const encode = (name: CompressionName, data: Buffer) => through(encodeStream(loadCodec(name)), unevenPieces(data));
const decode = (object: Buffer) => through(decodeStream('base/base.tar at file:///archive', codecFor), unevenPieces(object));

/** Compressible but not trivial bytes: runs of a pattern and random stretches. */
function sample(size: number): Buffer {
  const data = Buffer.alloc(size);
  for (let offset = 0; offset < size; offset += 8192) {
    if ((offset / 8192) % 2 === 0) randomBytes(Math.min(4096, size - offset)).copy(data, offset);
    else data.fill(`page ${offset} `, offset, Math.min(offset + 8192, size));
  }
  return data;
}

describe('framed streams (encodeStream, decodeStream)', () => {
  const data = sample(3 * 1024 * 1024 + 17);

  it.each(COMPRESSION_NAMES)('round-trips %s, fed in uneven pieces, with the size and CRC-32 in the trailer', async (name) => {
    const object = await encode(name, data);
    expect(decodeHeader(object, 'x')).toStrictEqual({ compression: name, size: 0, checksum: '00000000', trailer: true });
    expect(decodeTrailer(object.subarray(object.length - TRAILER_SIZE), 'x')).toStrictEqual({ size: data.length, checksum: checksum(data) });
    expect((await decode(object)).equals(data)).toBe(true);
  });

  it.each(COMPRESSION_NAMES)('an unchecked %s stream (a base backup part) records its size, no CRC-32, and still round-trips', async (name) => {
    const object = await through(encodeStream(loadCodec(name), { checksum: false }), unevenPieces(data));
    expect(decodeHeader(object, 'x')).toStrictEqual({ compression: name, size: 0, checksum: '00000000', trailer: true, unchecked: true });
    expect(decodeTrailer(object.subarray(object.length - TRAILER_SIZE), 'x')).toStrictEqual({ size: data.length, checksum: '00000000' });
    expect((await decode(object)).equals(data)).toBe(true);
  });

  it('an unchecked stream is still refused when its size does not match, and is never taken for a WAL object', async () => {
    const object = await through(encodeStream(loadCodec('none'), { checksum: false }), [data]);
    const shortened = Buffer.concat([object.subarray(0, HEADER_SIZE + 100), object.subarray(object.length - TRAILER_SIZE)]);
    await expect(decode(shortened)).rejects.toThrow(/is corrupted: .*expected 3145745 bytes/);
    await expect(decodeObject(object, 'wal/000000010000000000000001', new Codecs())).rejects.toThrow(new UnsupportedObjectError('wal/000000010000000000000001 carries no checksum of its own (a base backup\'s part, framed for its manifest\'s checksums): it is not a WAL object'));
  });

  it('refuses FLAG_UNCHECKED without FLAG_TRAILER (an older archiver refuses it altogether: unknown flag)', () => {
    const odd = encodeHeader({ compression: 'none', size: 1, checksum: '00000000' });
    odd.writeUInt8(0x02, 15);
    expect(() => decodeHeader(odd, 'x')).toThrow(new UnsupportedObjectError('x has unknown flags (0x2): upgrade the archiver'));
  });

  it('round-trips an empty stream', async () => {
    for (const name of COMPRESSION_NAMES) expect((await decode(await encode(name, Buffer.alloc(0)))).length).toBe(0);
  });

  it('writes a zstd object that the zstd tool decodes as it is (header and trailer are skippable frames)', async () => {
    const tool = spawnSync('zstd', ['--version']);
    expect(tool.status, 'the zstd tool must be installed (scripts/system-deps.sh installs it)').toBe(0);
    const object = await encode('zstd', data);
    const decoded = spawnSync('zstd', ['-d', '-c'], { input: object, maxBuffer: 64 * 1024 * 1024 });
    expect(decoded.stderr.toString()).toBe('');
    expect(decoded.status).toBe(0);
    expect(decoded.stdout.equals(data)).toBe(true);
  });

  it.each(COMPRESSION_NAMES)('decodeStream reads a whole %s object (size and CRC-32 in the header, no trailer)', async (name) => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'envelope-test-'));
    try {
      const file = path.join(directory, '000000010000000000000001');
      fs.writeFileSync(file, data);
      const { body } = await encodeWalFile(file, loadCodec(name));
      expect(decodeHeader(body, 'x').trailer).toBeUndefined();
      expect((await decode(body)).equals(data)).toBe(true);
      // Damage must change what decodes for the CRC-32 to have something to catch: a flipped match
      // offset in compressible data may copy equal bytes from elsewhere (harmless, and a flaky
      // test). Incompressible bytes are stored as literals, so a flipped body byte always changes
      // the output.
      const incompressible = randomBytes(data.length);
      fs.writeFileSync(file, incompressible);
      const damaged = Buffer.from((await encodeWalFile(file, loadCodec(name))).body);
      damaged[damaged.length - 1 - Math.floor((damaged.length - HEADER_SIZE) / 2)] ^= 0x40;
      await expect(decode(damaged)).rejects.toBeInstanceOf(CorruptObjectError);
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  const damages: [string, CompressionName, (object: Buffer) => Buffer][] = [
    ['truncated in its body (zstd)', 'zstd', (object) => object.subarray(0, Math.floor(object.length / 2))],
    ['truncated in its body (none)', 'none', (object) => object.subarray(0, Math.floor(object.length / 2))],
    ['truncated just before its trailer (none)', 'none', (object) => object.subarray(0, object.length - TRAILER_SIZE)],
    ['truncated inside its header', 'zstd', (object) => object.subarray(0, 30)],
    ['with a flipped body byte (zstd: its frame checksum)', 'zstd', (object) => flip(object, Math.floor(object.length / 2))],
    ['with a flipped body byte (none: only the trailer\'s CRC-32)', 'none', (object) => flip(object, Math.floor(object.length / 2))],
    ['with a damaged trailer magic', 'none', (object) => flip(object, object.length - TRAILER_SIZE + 9)],
    ['with a damaged CRC-32 in its trailer', 'none', (object) => flip(object, object.length - 1)],
    ['with a damaged size in its trailer', 'zstd', (object) => flip(object, object.length - 6)],
  ];

  it.each(damages)('fails decodeStream with CorruptObjectError for an object %s', async (what, name, damage) => {
    // A flipped byte in compressible data may turn one match into an equal one (see above): flip
    // bodies of incompressible bytes, whose every byte is a literal.
    const object = damage(await encode(name, what.includes('flipped body') ? randomBytes(data.length) : data));
    await expect(decode(object)).rejects.toBeInstanceOf(CorruptObjectError);
  });

  it('keeps memory bounded: a 256 MiB stream through encodeStream and decodeStream grows rss by far less', async () => {
    const total = 256 * 1024 * 1024;
    const chunk = 1024 * 1024;
    // Warm up the codec so that its buffers are in the baseline.
    await decode(await encode('zstd', randomBytes(4 * chunk)));
    const baseline = process.memoryUsage.rss();
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
    let crcIn = 0;
    let crcOut = 0;
    let bytesOut = 0;
    // Incompressible (the compressed stream is as large as the input), from a few buffers reused
    // so that the test's own garbage does not blur the measure; zstd's window (level 1) is shorter
    // than the cycle, so repeats do not compress either.
    const pool = Array.from({ length: 4 }, () => randomBytes(chunk));
    async function* source(): AsyncGenerator<Buffer> {
      for (let sent = 0, i = 0; sent < total; sent += chunk, i++) {
        const piece = pool[i % pool.length];
        crcIn = crc32(piece, crcIn);
        yield piece;
      }
    }
    try {
      await pipeline(
        Readable.from(source(), { highWaterMark: 2 }),
        encodeStream(loadCodec('zstd')),
        decodeStream('base/base.tar', codecFor),
        new Writable({
          write: (piece: Buffer, _encoding, done) => {
            crcOut = crc32(piece, crcOut);
            bytesOut += piece.length;
            peak = Math.max(peak, process.memoryUsage.rss());
            done();
          },
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    expect(bytesOut).toBe(total);
    expect(crcOut).toBe(crcIn);
    // Measured: 25-50 MiB (buffers awaiting the garbage collector); holding the stream would be
    // more than 256 MiB.
    expect(peak - baseline).toBeLessThan((total * 3) / 8);
  });
});

function flip(object: Buffer, at: number): Buffer {
  const damaged = Buffer.from(object);
  damaged[at] ^= 0xff;
  return damaged;
}
