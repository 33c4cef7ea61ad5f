/**
 * zstd through zstd-napi (libzstd 1.5.7 bindings, built from the sources it bundles by node-gyp at
 * install time). Writes standard zstd frames (`zstd -d` reads them) without zstd's own content
 * checksum (XXH64): what they hold is covered by a CRC-32 of the same bytes already — a WAL
 * object's in its envelope, every backed-up file's in its backup's manifest — verified before
 * anything is used, so a second checksum cost ~2.5% of the background archiver's CPU per segment
 * (perf, 2026-12-01) for nothing. Frames written with one (before that date) still read, and
 * still verify it.
 *
 * zstd-napi has no threadpool (async) API: `compress`/`decompress` run on the calling thread
 * (~15 ms for a 16 MiB segment at level 1). The `workers` option moves the compression onto zstd's
 * own threads.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type * as ZstdNapi from 'zstd-napi';
import type * as ZstdBinding from 'zstd-napi/binding';
import type { Allocate, ChunkCompressor, Codec, CodecOptions, CompressionName } from './codec';
import { CompressionConfigError, DecompressionError } from '../errors';
import { guardDecompressStream, rejectEmpty, rejectOptions, resolveLevel } from './codec';

/** zstd's fastest negative level offered here; zstd-napi accepts down to -131072, to no use. */
const MIN_LEVEL = -7;
const MAX_LEVEL = 22;
const MAX_WORKERS = 64;

export class ZstdCodec implements Codec {
  public readonly name: CompressionName = 'zstd';
  public readonly level: number;
  private readonly parameters: ZstdNapi.CompressParameters;
  private readonly zstd: typeof ZstdNapi;
  private compressor: ZstdNapi.Compressor | undefined;
  private decompressor: ZstdNapi.Decompressor | undefined;
  private decompressContext: ZstdBinding.DCtx | undefined;
  private scratch: Buffer | undefined;
  private chunkContext: ZstdBinding.CCtx | undefined;

  constructor(options: CodecOptions) {
    rejectOptions('zstd', options, ['level', 'workers']);
    this.level = resolveLevel('zstd', options.level, 1, MIN_LEVEL, MAX_LEVEL);
    const workers = resolveWorkers(options.workers);
    this.parameters = {
      compressionLevel: this.level,
      checksumFlag: false,
      ...(workers > 0 ? { nbWorkers: workers } : {}),
    };
    this.zstd = loadZstdNapi();
  }

  public async compress(data: Buffer): Promise<Buffer> {
    if (this.compressor === undefined) {
      this.compressor = new this.zstd.Compressor();
      this.compressor.setParameters(this.parameters);
    }
    return this.compressor.compress(data);
  }

  public async decompress(data: Buffer, expectedSize?: number, allocate: Allocate = Buffer.allocUnsafe): Promise<Buffer> {
    rejectEmpty('zstd', data);
    try {
      if (expectedSize !== undefined && Number.isSafeInteger(expectedSize) && expectedSize > 0) return this.decompressInto(data, expectedSize, allocate);
      this.decompressor ??= new this.zstd.Decompressor();
      return this.decompressor.decompress(data);
    } catch (error) {
      // A failed frame can leave the context mid-frame: start the next call from a fresh one.
      this.decompressor = undefined;
      this.decompressContext = undefined;
      throw DecompressionError.from('zstd', error);
    }
  }

  /**
   * Every frame of `data` into one buffer of `size` bytes. The archiver's WAL frames are written
   * chunk by chunk and carry no content size, so zstd-napi's decompress() would grow a list of
   * input-sized buffers and copy them together: for a 16 MiB segment ~21 ms against ~15 ms
   * here, of the restore path's ~35-55 ms of CPU per segment (probe, 2026-12-01). Output that
   * would run past `size` fails; output that ends short returns short, for the caller's check.
   */
  private decompressInto(data: Buffer, size: number, allocate: Allocate): Buffer {
    const binding = loadZstdBinding();
    this.decompressContext ??= new binding.DCtx();
    const context = this.decompressContext;
    context.reset(binding.ResetDirective.sessionOnly);
    const out = allocate(size);
    let written = 0;
    let read = 0;
    for (;;) {
      const [remaining, produced, consumed] = context.decompressStream(out.subarray(written), data.subarray(read));
      written += produced;
      read += consumed;
      // A frame just ended and the input is used up: done (a following frame starts over).
      if (read === data.length && remaining === 0) return out.subarray(0, written);
      if (produced === 0 && consumed === 0) {
        if (written === size) throw new Error(`the frame holds more than the ${size} bytes recorded`);
        throw new Error('the input ends inside a frame');
      }
    }
  }

  public chunkCompressor(maxInput: number): ChunkCompressor {
    const binding = loadZstdBinding();
    // One context for every call, reset between inputs: a new one per segment allocates (and
    // page-faults) its buffers each time, and is freed only when the garbage collector gets to it.
    if (!this.chunkContext) {
      this.chunkContext = new binding.CCtx();
      this.chunkContext.setParameter(binding.CParameter.compressionLevel, this.level);
      this.chunkContext.setParameter(binding.CParameter.checksumFlag, 0);
    }
    const context = this.chunkContext;
    context.reset(binding.ResetDirective.sessionOnly);
    // A window as large as the input. Level 1's default window (512 KiB) is smaller than a
    // segment: the chunks wrap around it, and zstd matches the wrapped part the slower
    // "external dictionary" way (~10% more CPU per 16 MiB segment on the benchmark's WAL, and a
    // slightly larger output). The frame stays standard; its decoder needs a window of the input's
    // size, at most 128 MiB (what `zstd -d` accepts without --long).
    context.setParameter(binding.CParameter.windowLog, windowLogFor(maxInput));
    // compressBound plus room for the frame epilogue of a stream that ends with an empty chunk.
    // The output buffer is reused between calls: a fresh 16 MiB each time costs page faults and
    // zeroing on every segment. Callers copy the output before the next call (the interface says so).
    const bound = binding.compressBound(maxInput) + 64;
    if (!this.scratch || this.scratch.length < bound) this.scratch = Buffer.allocUnsafe(bound);
    const out = this.scratch;
    let written = 0;
    return {
      push(chunk: Buffer, last: boolean): void {
        let consumed = 0;
        for (;;) {
          const [remaining, produced, read] = context.compressStream2(out.subarray(written), chunk.subarray(consumed), last ? binding.EndDirective.end : binding.EndDirective.continue);
          written += produced;
          consumed += read;
          if (last ? remaining === 0 : consumed >= chunk.length) return;
          if (written >= out.length) throw new Error(`zstd output exceeds its bound for ${maxInput} bytes of input`);
        }
      },
      output: () => out.subarray(0, written),
    };
  }

  public compressStream(): Transform {
    return new this.zstd.CompressStream(this.parameters);
  }

  public decompressStream(allocate: Allocate = Buffer.allocUnsafe): Transform {
    return guardDecompressStream('zstd', new ZstdDecompressStream(loadZstdBinding(), allocate));
  }
}

/**
 * Bytes of output per chunk a decompressing stream emits. zstd-napi's own DecompressStream emits
 * one chunk per zstd block (128 KiB): a restore of 1 GiB then passes ~8,000 chunks through
 * every stream after it (the tar parser, the file writer), and that per-chunk work cost more
 * CPU than the decompression itself (measured with perf on a 1.1 GB backup-fetch).
 */
export const DECOMPRESS_STREAM_CHUNK = 1024 * 1024;

/**
 * zstd frames in, the original bytes out in chunks of DECOMPRESS_STREAM_CHUNK (the last shorter),
 * each in memory from `allocate`, taken only when there is output to put in it.
 */
class ZstdDecompressStream extends Transform {
  private readonly context: ZstdBinding.DCtx;
  private out: Buffer | undefined;
  private written = 0;
  /** Inside a frame: the input must not end here. */
  private inFrame = false;

  constructor(
    binding: typeof ZstdBinding,
    private readonly allocate: Allocate,
  ) {
    super();
    this.context = new binding.DCtx();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      let input = chunk;
      for (;;) {
        const out = (this.out ??= this.allocate(DECOMPRESS_STREAM_CHUNK));
        const [remaining, produced, consumed] = this.context.decompressStream(out.subarray(this.written), input);
        this.written += produced;
        input = input.subarray(consumed);
        const full = this.written === out.length;
        if (full) {
          this.push(out);
          this.out = undefined;
          this.written = 0;
        }
        // Input used up, and either the output had room (nothing is held back in the context) or
        // a frame just ended.
        if (input.length === 0 && (!full || remaining === 0)) {
          this.inFrame = remaining !== 0;
          break;
        }
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.inFrame) return callback(new Error('Stream ended in middle of compressed data frame'));
    if (this.out && this.written > 0) this.push(this.out.subarray(0, this.written));
    callback();
  }
}

/** log2 of the smallest window that holds `size` bytes, within zstd's minimum (1 KiB) and 128 MiB. */
function windowLogFor(size: number): number {
  return Math.min(27, Math.max(10, Math.ceil(Math.log2(Math.max(1, size)))));
}

function resolveWorkers(workers: number | undefined): number {
  if (workers === undefined) {
    return 0;
  }
  if (!Number.isInteger(workers) || workers < 0 || workers > MAX_WORKERS) {
    throw new CompressionConfigError(`zstd workers ${workers} is out of range; expected an integer from 0 to ${MAX_WORKERS}`);
  }
  return workers;
}

function loadZstdBinding(): typeof ZstdBinding {
  return require('zstd-napi/binding') as typeof ZstdBinding;
}

function loadZstdNapi(): typeof ZstdNapi {
  try {
    return require('zstd-napi') as typeof ZstdNapi;
  } catch (error) {
    throw new Error(
      `zstd compression needs the native module zstd-napi, which failed to load (${error instanceof Error ? error.message : String(error)}); ` +
        'reinstall it (npm ci builds it with node-gyp) or choose another compression',
      { cause: error },
    );
  }
}
