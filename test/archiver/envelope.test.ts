import { describe, expect, it } from 'vitest';
import { HEADER_SIZE, checksum, decodeHeader, encodeHeader } from '../../archiver/src/envelope';
import { CorruptObjectError, UnsupportedObjectError } from '../../archiver/src/errors';

describe('the archived object header', () => {
  const header = { compression: 'zstd' as const, size: 16 * 1024 * 1024, checksum: checksum(Buffer.from('segment')) };

  it('round-trips compression, size and checksum in a 56-byte zstd/lz4 skippable frame', () => {
    const encoded = encodeHeader(header);
    expect(encoded.length).toBe(HEADER_SIZE);
    expect(HEADER_SIZE).toBe(56);
    expect(encoded.readUInt32LE(0)).toBe(0x184d2a50);
    expect(encoded.readUInt32LE(4)).toBe(48);
    expect(encoded.subarray(8, 12).toString('latin1')).toBe('PGWA');
    expect(decodeHeader(Buffer.concat([encoded, Buffer.from('payload')]), 'x')).toStrictEqual(header);
  });

  it('tells an object that is not ours (never replaced) from one of ours cut short (damaged)', () => {
    expect(() => decodeHeader(Buffer.from('not an archived object at all, no magic here......................'), 'wal/X at s3://b')).toThrow(
      new UnsupportedObjectError('wal/X at s3://b is not an archiver object (no PGWA header): it was not written by this archiver'),
    );
    expect(() => decodeHeader(Buffer.alloc(10), 'short')).toThrow(UnsupportedObjectError);
    const whole = encodeHeader(header);
    for (const length of [0, 3, 12, 13, 30, HEADER_SIZE - 1]) {
      expect(() => decodeHeader(whole.subarray(0, length), 'wal/X')).toThrow(new CorruptObjectError(`wal/X is truncated: ${length} bytes, shorter than the ${HEADER_SIZE}-byte header it starts with`));
    }
  });

  it('records CRC-32 of the original bytes', () => {
    expect(checksum(Buffer.from('123456789'))).toBe('cbf43926'); // the CRC-32 check value
    expect(encodeHeader(header).readUInt8(14)).toBe(1);
  });

  it('fails on a newer format version and an unknown compression', () => {
    const newer = encodeHeader(header);
    newer.writeUInt8(2, 12);
    expect(() => decodeHeader(newer, 'x')).toThrow(new UnsupportedObjectError('x has format version 2; this archiver reads version 1: upgrade the archiver'));
    const unknown = encodeHeader(header);
    unknown.writeUInt8(9, 13);
    expect(() => decodeHeader(unknown, 'x')).toThrow(new UnsupportedObjectError('x names an unknown compression (id 9): upgrade the archiver'));
  });
});
