/**
 * The CPU-heavy part of pushing and fetching, as pure functions of bytes: read a WAL file, hash
 * and compress it into an archived object; decompress an object and verify it. They run on
 * worker threads in the background archiver (worker-pool.ts) so that both cores compress while
 * the main thread talks to storage, and inline elsewhere.
 */
import * as fsSync from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { crc32 } from './crc32';
import { Allocate, Codec, CompressionName, loadCodec } from './compression';
import { HEADER_SIZE, TRAILER_SIZE, checksum, decodeHeader, decodeTrailer, encodeHeader, formatChecksum } from './envelope';
import { CorruptObjectError, UnsupportedObjectError } from './errors';
import { SegmentHeader, segmentHeaderOf } from './wal-names';

export interface EncodedFile {
  readonly size: number;
  /** CRC-32 of the original bytes (envelope.ts). */
  readonly checksum: string;
  /** The page header of a segment (system identifier, segment size); undefined for other files. */
  readonly segmentHeader: SegmentHeader | undefined;
  /** The archived object: envelope header, then the compressed file. */
  readonly body: Buffer;
}

/** Caches one codec per compression (a codec keeps its library's context between calls). */
export class Codecs {
  private readonly codecs = new Map<CompressionName, Codec>();

  get(name: CompressionName, level?: number): Codec {
    let codec = this.codecs.get(name);
    if (!codec) {
      codec = loadCodec(name, level === undefined ? {} : { level });
      this.codecs.set(name, codec);
    }
    return codec;
  }
}

/** Chunks small enough to stay in the CPU cache between the checksum and the compressor. */
const CHUNK_SIZE = 128 * 1024;

/**
 * Reads, hashes and compresses the WAL file at `file` into an archived object, whose body is
 * taken from `allocate` (a worker hands in reused memory: spare-buffers.ts).
 */
export async function encodeWalFile(file: string, codec: Codec, allocate: Allocate = Buffer.allocUnsafe): Promise<EncodedFile> {
  if (codec.chunkCompressor) return encodeInChunks(file, codec, allocate);
  const data = await fs.readFile(file);
  const segmentHeader = segmentHeaderOf(path.basename(file), data);
  const digest = checksum(data);
  const compressed = await codec.compress(data);
  const body = allocate(HEADER_SIZE + compressed.length);
  encodeHeader({ compression: codec.name, size: data.length, checksum: digest }).copy(body, 0);
  compressed.copy(body, HEADER_SIZE);
  return { size: data.length, checksum: digest, segmentHeader, body };
}

/** encodeWalFile for codecs with a chunk compressor: one pass over the file, in cache-sized chunks. */
function encodeInChunks(file: string, codec: Codec, allocate: Allocate): EncodedFile {
  const fd = fsSync.openSync(file, 'r');
  try {
    const size = fsSync.fstatSync(fd).size;
    const compressor = codec.chunkCompressor!(size);
    const chunk = Buffer.allocUnsafe(CHUNK_SIZE);
    let crc = 0;
    let total = 0;
    let first: Buffer | undefined;
    for (;;) {
      const read = fsSync.readSync(fd, chunk, 0, CHUNK_SIZE, null);
      const input = chunk.subarray(0, read);
      first ??= Buffer.from(input.subarray(0, 64));
      crc = crc32(input, crc);
      total += read;
      const last = read === 0 || total >= size;
      compressor.push(input, last);
      if (last) break;
    }
    const segmentHeader = first ? segmentHeaderOf(path.basename(file), first) : undefined;
    const compressed = compressor.output();
    const body = allocate(HEADER_SIZE + compressed.length);
    const digest = formatChecksum(crc);
    encodeHeader({ compression: codec.name, size: total, checksum: digest }).copy(body, 0);
    compressed.copy(body, HEADER_SIZE);
    return { size: total, checksum: digest, segmentHeader, body };
  } finally {
    fsSync.closeSync(fd);
  }
}

/**
 * Decodes an archived object and verifies the original's size and checksum; `what` names it in
 * errors. This check is the only protection for codecs without a checksum of their own (none,
 * brotli): never skip it. `allocate`, where the codec lets it choose, gives the decompressed
 * bytes their memory (Codec.decompress).
 */
export async function decodeObject(object: Buffer, what: string, codecs: Codecs, allocate?: Allocate): Promise<Buffer> {
  const header = decodeHeader(object, what);
  if (header.unchecked) throw new UnsupportedObjectError(`${what} carries no checksum of its own (a base backup's part, framed for its manifest's checksums): it is not a WAL object`);
  let body = object.subarray(HEADER_SIZE);
  let expected: { size: number; checksum: string } = header;
  if (header.trailer) {
    expected = decodeTrailer(object.subarray(Math.max(HEADER_SIZE, object.length - TRAILER_SIZE)), what);
    body = object.subarray(HEADER_SIZE, object.length - TRAILER_SIZE);
  }
  let data: Buffer;
  try {
    data = await codecs.get(header.compression).decompress(body, expected.size, allocate);
  } catch (error) {
    throw new CorruptObjectError(`${what} cannot be decompressed (${header.compression}): ${(error as Error).message}`);
  }
  const actual = checksum(data);
  if (data.length !== expected.size || actual !== expected.checksum) {
    throw new CorruptObjectError(`${what} is corrupted: its contents do not match the checksum recorded when it was archived (expected ${expected.size} bytes, CRC-32 ${expected.checksum}; got ${data.length} bytes, CRC-32 ${actual})`);
  }
  return data;
}
