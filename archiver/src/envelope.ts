/**
 * The format of an archived object: a fixed 56-byte header, then the compressed bytes.
 *
 *   offset  size  field
 *   0       4     0x184D2A50, little-endian: a zstd/lz4 "skippable frame"
 *   4       4     48, little-endian: the skippable frame's length
 *   8       4     magic "PGWA"
 *   12      1     format version (1)
 *   13      1     compression (see CODEC_IDS)
 *   14      1     checksum algorithm (1: CRC-32)
 *   15      1     reserved, zero
 *   16      8     size of the original file, big-endian
 *   24      32    checksum of the original file (CRC-32: 4 bytes big-endian, then zeros)
 *   56      ...   the compressed file, in the codec's standard format
 *
 * The header makes every object self-describing (the compression can change between pushes) and
 * carries the checksum of the original bytes that `wal-fetch` verifies before anything reaches
 * PostgreSQL. CRC-32 (zlib's, ~6 GB/s) rather than SHA-256 (~1.8 GB/s): it guards against
 * corruption, which is its job, at a quarter of the CPU on the archiver's hottest path; whether a
 * re-pushed file equals the archived one is decided by comparing the bytes themselves
 * (archive.ts), not checksums. 32 bytes are reserved for a stronger algorithm. The zstd and lz4
 * frames also carry their own content checksums. Because it is a skippable frame, the zstd and lz4
 * command-line tools decode an object as it is (`zstd -d < OBJECT > SEGMENT`); for the other
 * codecs, `tail -c +57 OBJECT | gzip -d`.
 */
import { crc32 } from 'node:zlib';
import { CompressionName } from './compression/codec';
import { CorruptObjectError } from './errors';

export const HEADER_SIZE = 56;
const SKIPPABLE_FRAME_MAGIC = 0x184d2a50;
const MAGIC = Buffer.from('PGWA', 'latin1');
const VERSION = 1;

export const CODEC_IDS: Readonly<Record<CompressionName, number>> = { none: 0, zstd: 1, lz4: 2, gzip: 3, brotli: 4 };
const CODEC_BY_ID = new Map(Object.entries(CODEC_IDS).map(([name, id]) => [id, name as CompressionName]));

const CRC32 = 1;

export interface EnvelopeHeader {
  readonly compression: CompressionName;
  readonly size: number;
  /** CRC-32 of the original bytes, as 8 hex digits. */
  readonly checksum: string;
}

/** The checksum the header records: CRC-32 as 8 hex digits. */
export function checksum(data: Buffer): string {
  return formatChecksum(crc32(data));
}

/** A CRC-32 (computed whole, or chunk by chunk) as the header records it. */
export function formatChecksum(crc: number): string {
  return crc.toString(16).padStart(8, '0');
}

export function encodeHeader(header: EnvelopeHeader): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  out.writeUInt32LE(SKIPPABLE_FRAME_MAGIC, 0);
  out.writeUInt32LE(HEADER_SIZE - 8, 4);
  MAGIC.copy(out, 8);
  out.writeUInt8(VERSION, 12);
  out.writeUInt8(CODEC_IDS[header.compression], 13);
  out.writeUInt8(CRC32, 14);
  out.writeBigUInt64BE(BigInt(header.size), 16);
  out.writeUInt32BE(parseInt(header.checksum, 16), 24);
  return out;
}

/** Reads the header of an archived object; `what` names it in errors. */
export function decodeHeader(object: Buffer, what: string): EnvelopeHeader {
  if (object.length < HEADER_SIZE || object.readUInt32LE(0) !== SKIPPABLE_FRAME_MAGIC || !object.subarray(8, 12).equals(MAGIC)) {
    throw new CorruptObjectError(`${what} is not an archiver object (no PGWA header): it is truncated or was not written by this archiver`);
  }
  const version = object.readUInt8(12);
  if (version !== VERSION) throw new CorruptObjectError(`${what} has format version ${version}; this archiver reads version ${VERSION}: upgrade the archiver`);
  const compression = CODEC_BY_ID.get(object.readUInt8(13));
  if (!compression) throw new CorruptObjectError(`${what} names an unknown compression (id ${object.readUInt8(13)})`);
  const algorithm = object.readUInt8(14);
  if (algorithm !== CRC32) throw new CorruptObjectError(`${what} names an unknown checksum algorithm (id ${algorithm}): upgrade the archiver`);
  return {
    compression,
    size: Number(object.readBigUInt64BE(16)),
    checksum: formatChecksum(object.readUInt32BE(24)),
  };
}
