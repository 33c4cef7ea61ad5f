/**
 * gzip through node:zlib, on the libuv threadpool. Standard gzip members (CRC-32 and length in the
 * trailer): `gzip -d` reads them, and a corrupted member fails to decompress. Several members one
 * after the other (`cat a.gz b.gz`) decompress as one.
 */
import type { Transform } from 'node:stream';
import type * as Zlib from 'node:zlib';
import type { Codec, CodecOptions, CompressionName } from './codec';
import { DecompressionError } from '../errors';
import { guardDecompressStream, isZlibError, rejectEmpty, rejectOptions, resolveLevel } from './codec';

export class GzipCodec implements Codec {
  public readonly name: CompressionName = 'gzip';
  public readonly level: number;
  private readonly zlib: typeof Zlib;

  constructor(options: CodecOptions) {
    rejectOptions('gzip', options, ['level']);
    this.level = resolveLevel('gzip', options.level, 1, 1, 9);
    this.zlib = require('node:zlib') as typeof Zlib;
  }

  public compress(data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.zlib.gzip(data, { level: this.level }, (error, result) => (error ? reject(error) : resolve(result)));
    });
  }

  public decompress(data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      rejectEmpty('gzip', data);
      this.zlib.gunzip(data, (error, result) => (error ? reject(DecompressionError.from('gzip', error)) : resolve(result)));
    });
  }

  public compressStream(): Transform {
    return this.zlib.createGzip({ level: this.level });
  }

  public decompressStream(): Transform {
    return guardDecompressStream('gzip', this.zlib.createGunzip(), isZlibError);
  }
}
