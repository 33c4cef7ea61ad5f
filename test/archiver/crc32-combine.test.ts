import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32Combine } from '../../archiver/src/crc32-combine';

describe('crc32Combine: the CRC-32 of a concatenation from its pieces', () => {
  it.each([
    [0, 0],
    [1, 0],
    [0, 1],
    [5, 7],
    [1000, 33_333],
    [8192, 1],
    [3 << 20, 1 << 20],
  ])('equals zlib\'s CRC-32 of %i bytes followed by %i bytes', (lengthA, lengthB) => {
    const a = randomBytes(lengthA);
    const b = randomBytes(lengthB);
    expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(Buffer.concat([a, b])));
  });

  it('folds many ranges into the whole file\'s CRC-32, as a manifest records it', () => {
    const file = randomBytes(5 * 65_536 + 123);
    let crc = 0;
    for (let offset = 0; offset < file.length; offset += 65_536) {
      const range = file.subarray(offset, offset + 65_536);
      crc = crc32Combine(crc, crc32(range), range.length);
    }
    expect(crc).toBe(crc32(file));
  });

  it('counts lengths beyond 32 bits: a shift by 2^32 bytes is two shifts by 2^31', () => {
    const a = crc32(Buffer.from('abc'));
    const b = crc32(Buffer.from('xyz'));
    const twice = crc32Combine(crc32Combine(a, 0, 2 ** 31), b, 2 ** 31);
    expect(crc32Combine(a, b, 2 ** 32)).toBe(twice);
    expect(crc32Combine(a, b, 2 ** 32)).not.toBe(crc32Combine(a, b, 0));
  });
});
