/**
 * brotli through node:zlib, on the libuv threadpool. Standard brotli streams (`brotli -d` reads
 * them). The format has no checksum: truncated or malformed input fails, but a flipped bit in the
 * data can decompress to wrong bytes without an error; prefer zstd, lz4 or gzip where that matters.
 */
import type { Transform } from 'node:stream';
import type * as Zlib from 'node:zlib';
import type { Codec, CodecOptions, CompressionName } from './codec';
import { DecompressionError } from '../errors';
import { guardDecompressStream, isZlibError, rejectEmpty, rejectOptions, resolveLevel } from './codec';

export class BrotliCodec implements Codec {
  public readonly name: CompressionName = 'brotli';
  public readonly level: number;
  private readonly zlib: typeof Zlib;

  constructor(options: CodecOptions) {
    rejectOptions('brotli', options, ['level']);
    this.level = resolveLevel('brotli', options.level, 1, 0, 11);
    this.zlib = require('node:zlib') as typeof Zlib;
  }

  public compress(data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.zlib.brotliCompress(data, this.options(data.length), (error, result) => (error ? reject(error) : resolve(result)));
    });
  }

  public decompress(data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      rejectEmpty('brotli', data);
      this.zlib.brotliDecompress(data, (error, result) => (error ? reject(DecompressionError.from('brotli', error)) : resolve(result)));
    });
  }

  public compressStream(): Transform {
    return this.zlib.createBrotliCompress(this.options());
  }

  public decompressStream(): Transform {
    return guardDecompressStream('brotli', this.zlib.createBrotliDecompress(), isZlibError);
  }

  private options(sizeHint?: number): Zlib.BrotliOptions {
    const { constants } = this.zlib;
    return {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: this.level,
        ...(sizeHint === undefined ? {} : { [constants.BROTLI_PARAM_SIZE_HINT]: sizeHint }),
      },
    };
  }
}
