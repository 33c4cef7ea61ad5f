import { describe, expect, it } from 'vitest';
import { formatLsn, isLsn, parseLsn, segmentEndingAt, segmentNameOf, timelineOf } from '../../../archiver/src/backup/lsn';

const MiB16 = 16 * 1024 * 1024;

describe('log sequence numbers', () => {
  it('round-trips PostgreSQL\'s X/Y form', () => {
    expect(parseLsn('0/3000028')).toBe(0x3000028n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(formatLsn(parseLsn('16/b374d848'))).toBe('16/B374D848');
    expect(formatLsn(0n)).toBe('0/0');
  });

  it('refuses what is not an LSN, saying what one looks like', () => {
    expect(() => parseLsn('3000028')).toThrow(/not an LSN \(e\.g\. 0\/3000028/);
    expect(() => parseLsn('0/123456789')).toThrow(/not an LSN/);
    expect(isLsn('0/0')).toBe(true);
    expect(isLsn('G/0')).toBe(false);
  });

  it('names the segment that holds a position, across a log boundary (256 segments of 16 MiB per log)', () => {
    expect(segmentNameOf(1, parseLsn('0/3000028'), MiB16)).toBe('000000010000000000000003');
    expect(segmentNameOf(2, parseLsn('1/0'), MiB16)).toBe('000000020000000100000000');
    expect(segmentNameOf(1, parseLsn('0/FFFFFFFF'), MiB16)).toBe('0000000100000000000000FF');
    expect(segmentNameOf(1, parseLsn('0/3000028'), 64 * 1024 * 1024)).toBe('000000010000000000000000');
    expect(timelineOf('0000000A0000000000000003')).toBe(10);
  });

  it('takes a stop position at a segment boundary as the end of the segment before it', () => {
    expect(segmentEndingAt(1, parseLsn('0/4000000'), MiB16)).toBe('000000010000000000000003');
    expect(segmentEndingAt(1, parseLsn('0/4000001'), MiB16)).toBe('000000010000000000000004');
    expect(segmentEndingAt(1, parseLsn('1/0'), MiB16)).toBe('0000000100000000000000FF');
  });
});
