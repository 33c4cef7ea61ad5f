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
 *   15      1     flags: 0, or FLAG_TRAILER (size and checksum are in the trailer)
 *   16      8     size of the original file, big-endian (0 with FLAG_TRAILER)
 *   24      32    checksum of the original file (CRC-32: 4 bytes big-endian, then zeros)
 *   56      ...   the compressed file, in the codec's standard format
 *
 * A stream (a base backup's file, whose size and checksum are known only at its end) is framed
 * with FLAG_TRAILER and ends with a 24-byte trailer, another skippable frame:
 *
 *   0       4     0x184D2A51, little-endian: a zstd/lz4 skippable frame
 *   4       4     16, little-endian
 *   8       4     magic "PGWT"
 *   12      8     size of the original bytes, big-endian
 *   20      4     CRC-32 of the original bytes, big-endian
 *
 * A base backup's part sets FLAG_UNCHECKED as well: its trailer's CRC-32 is left at zero and not
 * verified, because what the part holds carries its own checksums (the CRC-32 of every file is in
 * the backup's manifest, and every tar header has its own): computing a second CRC over the
 * same bytes would cost ~0.6 CPU-seconds per GiB on each side for nothing. The size still is.
 *
 * WAL objects are written whole (no flag, no trailer): their format is unchanged.
 *
 * The header makes every object self-describing (the compression can change between pushes) and
 * carries the checksum of the original bytes that `wal-fetch` verifies before anything reaches
 * PostgreSQL. CRC-32 (crc32.ts: ~10 GB/s) rather than SHA-256 (~1.8 GB/s): it guards against
 * corruption, which is its job, at a quarter of the CPU on the archiver's hottest path; whether a
 * re-pushed file equals the archived one is decided by comparing the bytes themselves
 * (archive.ts), not checksums. 32 bytes are reserved for a stronger algorithm. (lz4 frames carry
 * a content checksum of their own too; zstd frames, since 2026-12-01, none.) Because it is a
 * skippable frame, the zstd and lz4
 * command-line tools decode an object as it is (`zstd -d < OBJECT > SEGMENT`); for the other
 * codecs, `tail -c +57 OBJECT | gzip -d`.
 */
import { Transform, TransformCallback } from 'node:stream';
import { crc32 } from './crc32';
import { Allocate, Codec, CompressionName } from './compression';
import { CorruptObjectError, UnsupportedObjectError } from './errors';

export const HEADER_SIZE = 56;
export const TRAILER_SIZE = 24;
const SKIPPABLE_FRAME_MAGIC = 0x184d2a50;
const TRAILER_FRAME_MAGIC = 0x184d2a51;
const MAGIC = Buffer.from('PGWA', 'latin1');
const TRAILER_MAGIC = Buffer.from('PGWT', 'latin1');
const VERSION = 1;
/** Size and checksum follow the data, in the trailer. */
export const FLAG_TRAILER = 0x01;
/** With FLAG_TRAILER: the trailer's CRC-32 is not computed (the contents carry their own checksums). */
export const FLAG_UNCHECKED = 0x02;
const KNOWN_FLAGS = FLAG_TRAILER | FLAG_UNCHECKED;

export const CODEC_IDS: Readonly<Record<CompressionName, number>> = { none: 0, zstd: 1, lz4: 2, gzip: 3, brotli: 4 };
const CODEC_BY_ID = new Map(Object.entries(CODEC_IDS).map(([name, id]) => [id, name as CompressionName]));

const CRC32 = 1;

export interface EnvelopeHeader {
  readonly compression: CompressionName;
  /** The original size; 0 when `trailer` (it is in the trailer). */
  readonly size: number;
  /** CRC-32 of the original bytes, as 8 hex digits; '00000000' when `trailer`. */
  readonly checksum: string;
  /** Size and checksum are in a trailer after the data (a framed stream). */
  readonly trailer?: boolean;
  /** The trailer's CRC-32 is not computed: the contents carry their own checksums. */
  readonly unchecked?: boolean;
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
  out.writeUInt8((header.trailer ? FLAG_TRAILER : 0) | (header.unchecked ? FLAG_UNCHECKED : 0), 15);
  out.writeBigUInt64BE(BigInt(header.size), 16);
  out.writeUInt32BE(parseInt(header.checksum, 16), 24);
  return out;
}

/** The bytes every header starts with, up to and including the version. */
const HEADER_PREFIX = encodeHeader({ compression: 'none', size: 0, checksum: '00000000' }).subarray(0, 13);

/**
 * Reads the header of an archived object; `what` names it in errors.
 *
 * CorruptObjectError: the object is a damaged copy of ours (too short to hold the header it
 * starts with). UnsupportedObjectError: not ours (no PGWA header), or written by a newer archiver
 * (format version, codec, checksum algorithm or flags this one does not know).
 */
export function decodeHeader(object: Buffer, what: string): EnvelopeHeader {
  if (object.length < HEADER_SIZE) {
    if (object.equals(HEADER_PREFIX.subarray(0, object.length)) || HEADER_PREFIX.equals(object.subarray(0, HEADER_PREFIX.length))) {
      throw new CorruptObjectError(`${what} is truncated: ${object.length} bytes, shorter than the ${HEADER_SIZE}-byte header it starts with`);
    }
  }
  if (object.length < 12 || object.readUInt32LE(0) !== SKIPPABLE_FRAME_MAGIC || !object.subarray(8, 12).equals(MAGIC)) {
    throw new UnsupportedObjectError(`${what} is not an archiver object (no PGWA header): it was not written by this archiver`);
  }
  const version = object.readUInt8(12);
  if (version !== VERSION) throw new UnsupportedObjectError(`${what} has format version ${version}; this archiver reads version ${VERSION}: upgrade the archiver`);
  const compression = CODEC_BY_ID.get(object.readUInt8(13));
  if (!compression) throw new UnsupportedObjectError(`${what} names an unknown compression (id ${object.readUInt8(13)}): upgrade the archiver`);
  const algorithm = object.readUInt8(14);
  if (algorithm !== CRC32) throw new UnsupportedObjectError(`${what} names an unknown checksum algorithm (id ${algorithm}): upgrade the archiver`);
  const flags = object.readUInt8(15);
  if ((flags & ~KNOWN_FLAGS) !== 0 || (flags & FLAG_UNCHECKED && !(flags & FLAG_TRAILER))) throw new UnsupportedObjectError(`${what} has unknown flags (0x${flags.toString(16)}): upgrade the archiver`);
  return {
    compression,
    size: Number(object.readBigUInt64BE(16)),
    checksum: formatChecksum(object.readUInt32BE(24)),
    ...(flags & FLAG_TRAILER ? { trailer: true } : {}),
    ...(flags & FLAG_UNCHECKED ? { unchecked: true } : {}),
  };
}

export function encodeTrailer(size: number, crc: number): Buffer {
  const out = Buffer.alloc(TRAILER_SIZE);
  out.writeUInt32LE(TRAILER_FRAME_MAGIC, 0);
  out.writeUInt32LE(TRAILER_SIZE - 8, 4);
  TRAILER_MAGIC.copy(out, 8);
  out.writeBigUInt64BE(BigInt(size), 12);
  out.writeUInt32BE(crc >>> 0, 20);
  return out;
}

export function decodeTrailer(trailer: Buffer, what: string): { size: number; checksum: string } {
  if (trailer.length !== TRAILER_SIZE || trailer.readUInt32LE(0) !== TRAILER_FRAME_MAGIC || !trailer.subarray(8, 12).equals(TRAILER_MAGIC)) {
    throw new CorruptObjectError(`${what} is truncated or damaged: it does not end with its size-and-checksum trailer`);
  }
  return { size: Number(trailer.readBigUInt64BE(12)), checksum: formatChecksum(trailer.readUInt32BE(20)) };
}

export interface EncodeStreamOptions {
  /**
   * Count a CRC-32 of the bytes into the trailer. `false` (FLAG_UNCHECKED) only where the bytes
   * carry their own checksums, as a base backup's part does. @default true
   */
  readonly checksum?: boolean;
}

/**
 * Frames a stream: original bytes in, an archived object out (header with FLAG_TRAILER, the
 * codec's compressed stream, trailer with the size and CRC-32 counted on the way). Memory stays
 * bounded by the codec's stream buffers.
 */
export function encodeStream(codec: Codec, options: EncodeStreamOptions = {}): Transform {
  return new StreamEncoder(codec, options.checksum ?? true);
}

/**
 * Unframes and verifies a stream: an archived object in (framed stream or whole object), the
 * original bytes out. Fails with CorruptObjectError (damage: truncation, a frame that does not
 * decompress, a size or CRC-32 that does not match) or UnsupportedObjectError before the end;
 * the consumer must not trust any byte until the stream has ended without an error. `allocate`:
 * the memory of the output chunks, where the codec lets it choose (Codec.decompressStream).
 */
export function decodeStream(what: string, codecFor: (name: CompressionName) => Codec, allocate?: Allocate): Transform {
  return new StreamDecoder(what, codecFor, allocate);
}

class StreamEncoder extends Transform {
  private crc = 0;
  private size = 0;
  private readonly compressor: Transform;
  private flushed: ((error?: Error | null) => void) | undefined;

  constructor(
    codec: Codec,
    private readonly checksum: boolean,
  ) {
    super();
    this.compressor = codec.compressStream();
    this.push(encodeHeader({ compression: codec.name, size: 0, checksum: '00000000', trailer: true, ...(checksum ? {} : { unchecked: true }) }));
    this.compressor.on('data', (chunk: Buffer) => this.push(chunk));
    this.compressor.once('error', (error) => this.destroy(error));
    this.compressor.once('end', () => {
      this.push(encodeTrailer(this.size, this.crc));
      this.flushed?.();
    });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.checksum) this.crc = crc32(chunk, this.crc);
    this.size += chunk.length;
    this.compressor.write(chunk, (error) => callback(error));
  }

  override _flush(callback: TransformCallback): void {
    this.flushed = callback;
    this.compressor.end();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.compressor.destroy();
    callback(error);
  }
}

class StreamDecoder extends Transform {
  private head: Buffer[] = [];
  private headBytes = 0;
  private header: EnvelopeHeader | undefined;
  private decompressor: Transform | undefined;
  /** The last TRAILER_SIZE bytes seen, held back from the decompressor (framed streams). */
  private tail = Buffer.alloc(0);
  private crc = 0;
  private size = 0;
  private flushed: ((error?: Error | null) => void) | undefined;

  constructor(
    private readonly what: string,
    private readonly codecFor: (name: CompressionName) => Codec,
    private readonly allocate: Allocate | undefined,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      if (!this.header) {
        this.head.push(chunk);
        this.headBytes += chunk.length;
        if (this.headBytes < HEADER_SIZE) return callback();
        const all = Buffer.concat(this.head);
        this.head = [];
        this.header = decodeHeader(all, this.what);
        this.startDecompressor(this.header);
        chunk = all.subarray(HEADER_SIZE);
      }
      if (this.header.trailer) {
        const joined = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
        const keep = Math.min(TRAILER_SIZE, joined.length);
        this.tail = Buffer.from(joined.subarray(joined.length - keep));
        chunk = joined.subarray(0, joined.length - keep);
      }
      if (chunk.length === 0) return callback();
      this.decompressor!.write(chunk, (error) => callback(error ? this.damaged(error) : undefined));
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (!this.header) {
      try {
        decodeHeader(Buffer.concat(this.head), this.what);
        callback(new CorruptObjectError(`${this.what} is truncated: it ends inside its header`));
      } catch (error) {
        callback(error as Error);
      }
      return;
    }
    this.flushed = callback;
    this.decompressor!.end();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.decompressor?.destroy();
    callback(error);
  }

  private startDecompressor(header: EnvelopeHeader): void {
    const decompressor = this.codecFor(header.compression).decompressStream(this.allocate);
    this.decompressor = decompressor;
    const checked = !header.unchecked;
    decompressor.on('data', (data: Buffer) => {
      if (checked) this.crc = crc32(data, this.crc);
      this.size += data.length;
      this.push(data);
    });
    decompressor.once('error', (error) => {
      const damaged = this.damaged(error);
      if (this.flushed) this.flushed(damaged);
      else this.destroy(damaged);
    });
    decompressor.once('end', () => this.flushed?.(this.verify()));
  }

  private verify(): Error | undefined {
    try {
      const expected = this.header!.trailer ? decodeTrailer(this.tail, this.what) : this.header!;
      const actual = this.header!.unchecked ? expected.checksum : formatChecksum(this.crc);
      if (this.size !== expected.size || actual !== expected.checksum) {
        return new CorruptObjectError(`${this.what} is corrupted: its contents do not match the checksum recorded when it was archived (expected ${expected.size} bytes, CRC-32 ${expected.checksum}; got ${this.size} bytes, CRC-32 ${actual})`);
      }
      return undefined;
    } catch (error) {
      return error as Error;
    }
  }

  private damaged(error: Error): Error {
    if (error instanceof CorruptObjectError || error instanceof UnsupportedObjectError) return error;
    return new CorruptObjectError(`${this.what} cannot be decompressed (${this.header?.compression}): ${error.message}`);
  }
}
