/**
 * Compression of archived WAL segments and base backups: one small interface, one file per codec.
 *
 * This module holds the interface and the helpers the codecs share; index.ts is the registry
 * (`loadCodec`), which imports the codecs (no import cycle: codecs import this module only).
 *
 * Each codec file loads its library only when a codec is created (`loadCodec`), so the archiver,
 * which Node starts once per WAL segment, loads only the compression library in use. Every codec
 * writes the standard format of its command-line tool (`zstd -d`, `lz4 -d`, `gzip -d`,
 * `brotli -d` read what we write), with an integrity check where the format has one.
 */
import type { Transform } from 'node:stream';
import { CompressionConfigError, DecompressionError } from '../errors';

export type CompressionName = 'zstd' | 'lz4' | 'gzip' | 'brotli' | 'none';

/** Every accepted name, in the order error messages list them. */
export const COMPRESSION_NAMES: readonly CompressionName[] = ['zstd', 'lz4', 'gzip', 'brotli', 'none'];

/**
 * zstd at level 1, from bench/compression.ts on a real 16 MiB PostgreSQL 15 segment (2 shared
 * cores, Node 20; the figures are in that file's header):
 * - smallest output of the fast codecs: 0.18 of the segment (lz4 0.40, gzip-1 0.26, brotli-1 0.20),
 *   which is what an S3 target (and a single-threaded S3 server) pays for;
 * - ~1 GiB/s on one core, so 50 segments/s (800 MiB/s) costs about 0.8 of one of the two cores
 *   PostgreSQL shares; lz4-napi's frames cost as much CPU (0.85-0.95 GiB/s a call) for 2.2x the
 *   bytes, gzip-1 (0.17 GiB/s) and brotli-1 (0.4 GiB/s) cannot keep up;
 * - fastest to decompress (~2.7 GiB/s against lz4-napi's ~1 GiB/s), which restore pays per
 *   segment;
 * - no content checksum of zstd's own in its frames: the CRC-32 the archiver keeps of the same
 *   bytes (envelope, manifest) is what keeps a corrupted archive from handing PostgreSQL wrong WAL.
 * Level 2 gives 0.164 at ~0.95 of level 1's speed; level 3 costs ~1.6x for nothing on WAL.
 */
export const DEFAULT_COMPRESSION: CompressionName = 'zstd';

export interface CodecOptions {
  /**
   * Compression level; the accepted range depends on the codec (zstd -7..22, gzip 1..9, brotli
   * 0..11; lz4 and none have no levels).
   * @default - the codec's fast level: zstd 1, gzip 1, brotli 1
   */
  readonly level?: number;
  /**
   * zstd only: worker threads of zstd itself (ZSTD_c_nbWorkers). With workers, one large input is
   * compressed on several cores, and a `compressStream()` hands its input to the workers instead of
   * compressing on the event loop. The output stays a standard zstd frame.
   * @default 0 - compress on the calling thread
   */
  readonly workers?: number;
}

/** Memory for `size` bytes, contents undefined (Buffer.allocUnsafe, or memory reused: spare-buffers.ts). */
export type Allocate = (size: number) => Buffer;

/**
 * One compression format. `compress`/`decompress` work on whole buffers (a WAL segment);
 * the streams (base backups) keep memory bounded.
 *
 * Decompression fails with `DecompressionError` on input that is corrupted, truncated, empty or in
 * another format; streams emit it as their 'error'.
 */
export interface Codec {
  readonly name: CompressionName;
  /** The level in use, or `undefined` for codecs without levels. */
  readonly level: number | undefined;
  compress(data: Buffer): Promise<Buffer>;
  /**
   * `expectedSize`: the size recorded with the object (its envelope's). A codec may decompress
   * straight into one buffer of that size (zstd does: frames written chunk by chunk carry no
   * content size, and without one zstd-napi grows a list of buffers and copies them together);
   * output of any other size still comes back, or fails, for the caller's check to report.
   * `allocate`: where such a buffer comes from (a worker that writes the result out at once hands
   * in memory it reuses: spare-buffers.ts); by default, new memory.
   */
  decompress(data: Buffer, expectedSize?: number, allocate?: Allocate): Promise<Buffer>;
  compressStream(): Transform;
  /**
   * `allocate`: where the output chunks' memory comes from, for a codec that fills chunks of its
   * own (zstd): a consumer that is done with each chunk once it has read it hands in memory it
   * gives back and reuses (part-jobs.ts). By default, new memory; other codecs ignore it.
   */
  decompressStream(allocate?: Allocate): Transform;
  /**
   * A synchronous compressor fed chunk by chunk into a preallocated output, where the codec has
   * one (zstd). The archiver's worker threads read a WAL segment in small chunks that stay in
   * the CPU cache for both the checksum and the compressor: ~20% faster than reading the whole
   * file and then compressing it, on machines whose memory bandwidth is the limit.
   */
  chunkCompressor?(maxInput: number): ChunkCompressor;
}

export interface ChunkCompressor {
  /** Compresses `chunk`; `last` ends the frame. */
  push(chunk: Buffer, last: boolean): void;
  /**
   * The whole compressed output so far: a view of a buffer the codec reuses, valid until its
   * next `chunkCompressor()` call; copy it to keep it.
   */
  output(): Buffer;
}



/**
 * Checks a codec's level: `undefined` gives `fallback`; anything else must be an integer within
 * [min, max].
 */
export function resolveLevel(codec: CompressionName, level: number | undefined, fallback: number, min: number, max: number): number {
  if (level === undefined) {
    return fallback;
  }
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new CompressionConfigError(`${codec} level ${level} is out of range; expected an integer from ${min} to ${max}`);
  }
  return level;
}

/** Fails for the options a codec without levels or workers was given. */
export function rejectOptions(codec: CompressionName, options: CodecOptions, accepted: ReadonlyArray<keyof CodecOptions>): void {
  for (const key of Object.keys(options) as Array<keyof CodecOptions>) {
    if (options[key] !== undefined && !accepted.includes(key)) {
      throw new CompressionConfigError(`${codec} compression takes no ${key} option (received ${String(options[key])})`);
    }
  }
}

/**
 * Makes a library's decompressing Transform report its failures as `DecompressionError` and refuse
 * an empty input (no codec here writes an empty file: even empty data compresses to a frame).
 *
 * Works on the instance. Failures reported through `_transform`/`_flush` callbacks (zstd-napi)
 * are the stream's own; failures that reach `destroy()` directly (zlib reports its errors so) are
 * wrapped only when `isOwnError` says so, so that a caller's `destroy(error)` (a pipeline whose
 * other stream failed) keeps its error.
 */
export function guardDecompressStream<T extends Transform>(codec: CompressionName, stream: T, isOwnError: (error: Error) => boolean = () => false): T {
  const wrap = (error: Error | null | undefined): Error | null | undefined => (error ? DecompressionError.from(codec, error) : error);
  let bytesIn = 0;
  const transform = stream._transform.bind(stream);
  stream._transform = (chunk: Buffer, encoding, callback) => {
    bytesIn += chunk.length;
    transform(chunk, encoding, (error?: Error | null, data?: unknown) => callback(wrap(error), data));
  };
  const flush = stream._flush?.bind(stream);
  stream._flush = (callback) => {
    if (bytesIn === 0) {
      callback(new DecompressionError(codec, 'empty input'));
    } else if (flush !== undefined) {
      flush((error?: Error | null, data?: unknown) => callback(wrap(error), data));
    } else {
      callback();
    }
  };
  const destroy = stream._destroy.bind(stream);
  stream._destroy = (error, callback) => {
    destroy(error, (final) => callback(final && isOwnError(final) ? DecompressionError.from(codec, final) : final));
  };
  return stream;
}

/** Whether `error` is one that node:zlib raised for its input (codes Z_* for zlib, ERR__* for brotli). */
export function isZlibError(error: Error): boolean {
  const { code, errno } = error as { code?: unknown; errno?: unknown };
  return typeof errno === 'number' && typeof code === 'string' && (code.startsWith('Z_') || code.startsWith('ERR__'));
}

/** Fails for an empty compressed input, which no codec here produces. */
export function rejectEmpty(codec: CompressionName, data: Buffer): void {
  if (data.length === 0) {
    throw new DecompressionError(codec, 'empty input');
  }
}
