/**
 * The format of an archived object: a fixed 48-byte header, then the compressed bytes.
 *
 *   offset  size  field
 *   0       4     magic "PGWA"
 *   4       1     format version (1)
 *   5       1     compression (see CODEC_IDS)
 *   6       2     reserved, zero
 *   8       8     size of the original file, big-endian
 *   16      32    SHA-256 of the original file
 *   48      ...   the compressed file, in the codec's standard format
 *
 * The header makes every object self-describing (the compression can change between pushes) and
 * carries the checksum of the original bytes that `wal-fetch` verifies and that `wal-push`
 * compares when the name is already taken. An operator can still decode by hand:
 * `tail -c +49 OBJECT | zstd -d > SEGMENT`.
 */
import { createHash } from 'node:crypto';
import { CompressionName } from './compression/codec';
import { CorruptObjectError } from './errors';

export const HEADER_SIZE = 48;
const MAGIC = Buffer.from('PGWA', 'latin1');
const VERSION = 1;

export const CODEC_IDS: Readonly<Record<CompressionName, number>> = { none: 0, zstd: 1, lz4: 2, gzip: 3, brotli: 4 };
const CODEC_BY_ID = new Map(Object.entries(CODEC_IDS).map(([name, id]) => [id, name as CompressionName]));

export interface EnvelopeHeader {
  readonly compression: CompressionName;
  readonly size: number;
  /** Hex SHA-256 of the original bytes. */
  readonly sha256: string;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function encodeHeader(header: EnvelopeHeader): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(out, 0);
  out.writeUInt8(VERSION, 4);
  out.writeUInt8(CODEC_IDS[header.compression], 5);
  out.writeBigUInt64BE(BigInt(header.size), 8);
  Buffer.from(header.sha256, 'hex').copy(out, 16);
  return out;
}

/** Reads the header of an archived object; `what` names it in errors. */
export function decodeHeader(object: Buffer, what: string): EnvelopeHeader {
  if (object.length < HEADER_SIZE || !object.subarray(0, 4).equals(MAGIC)) {
    throw new CorruptObjectError(`${what} is not an archiver object (no PGWA header): it is truncated or was not written by this archiver`);
  }
  const version = object.readUInt8(4);
  if (version !== VERSION) throw new CorruptObjectError(`${what} has format version ${version}; this archiver reads version ${VERSION}: upgrade the archiver`);
  const compression = CODEC_BY_ID.get(object.readUInt8(5));
  if (!compression) throw new CorruptObjectError(`${what} names an unknown compression (id ${object.readUInt8(5)})`);
  return {
    compression,
    size: Number(object.readBigUInt64BE(8)),
    sha256: object.subarray(16, 48).toString('hex'),
  };
}
