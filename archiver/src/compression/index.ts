/**
 * The codecs by name: `loadCodec` creates one (loading only its library), `parseCompressionName`
 * reads a name from configuration.
 */
import { CompressionConfigError } from '../errors';
import { BrotliCodec } from './brotli';
import { Codec, CodecOptions, COMPRESSION_NAMES, CompressionName, DEFAULT_COMPRESSION } from './codec';
import { GzipCodec } from './gzip';
import { Lz4Codec } from './lz4';
import { NoneCodec } from './none';
import { ZstdCodec } from './zstd';

export * from './codec';

/**
 * The codec `name`. Loads that codec's library only (zstd-napi, lz4-napi or node:zlib); fails with
 * `CompressionConfigError` for a level or option the codec does not accept, and with the library's
 * own load error (wrapped, naming the codec) if its native module is missing.
 */
export function loadCodec(name: CompressionName, options: CodecOptions = {}): Codec {
  switch (name) {
    case 'zstd':
      return new ZstdCodec(options);
    case 'lz4':
      return new Lz4Codec(options);
    case 'gzip':
      return new GzipCodec(options);
    case 'brotli':
      return new BrotliCodec(options);
    case 'none':
      return new NoneCodec(options);
    default:
      throw new CompressionConfigError(`unknown compression ${JSON.stringify(name)}; expected one of ${COMPRESSION_NAMES.join(', ')}`);
  }
}

/**
 * Reads a compression name from configuration (an environment variable, a flag). Unset or empty
 * gives `DEFAULT_COMPRESSION`. Anything else must be one of `COMPRESSION_NAMES` exactly; the
 * error names `variable`, the value received and the accepted values.
 */
export function parseCompressionName(value: string | undefined, variable: string): CompressionName {
  if (value === undefined || value === '') return DEFAULT_COMPRESSION;
  const found = COMPRESSION_NAMES.find((name) => name === value);
  if (found === undefined) {
    throw new CompressionConfigError(
      `${variable}=${JSON.stringify(value)} is not a compression; expected one of ${COMPRESSION_NAMES.join(', ')} (unset: ${DEFAULT_COMPRESSION})`,
      variable,
    );
  }
  return found;
}
