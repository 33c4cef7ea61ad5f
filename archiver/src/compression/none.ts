/** No compression: archived objects are the segments themselves (no suffix). */
import { PassThrough, type Transform } from 'node:stream';
import type { Codec, CodecOptions, CompressionName } from './codec';
import { rejectOptions } from './codec';

export class NoneCodec implements Codec {
  public readonly name: CompressionName = 'none';
  public readonly level = undefined;

  constructor(options: CodecOptions) {
    rejectOptions('none', options, []);
  }

  public async compress(data: Buffer): Promise<Buffer> {
    return data;
  }

  public async decompress(data: Buffer): Promise<Buffer> {
    return data;
  }

  public compressStream(): Transform {
    return new PassThrough();
  }

  public decompressStream(): Transform {
    return new PassThrough();
  }
}
