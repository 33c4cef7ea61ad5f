import { describe, expect, it } from 'vitest';
import { archiveOrder, followingSegments, nextSegment, readControlFileIdentifier, readSegmentHeader, walFileKind } from '../../archiver/src/wal-names';
import { makeSegment } from '../../testkit/archiver';

describe('WAL file names', () => {
  it.each([
    ['000000010000000000000001', 'segment'],
    ['00000002.history', 'history'],
    ['000000010000000000000002.00000028.backup', 'backup'],
    ['000000010000000000000003.partial', 'partial'],
    ['00000001000000000000000g', undefined],
    ['../000000010000000000000001', undefined],
    ['RECOVERYXLOG', undefined],
  ])('%s is a %s', (name, kind) => {
    expect(walFileKind(name)).toBe(kind);
  });

  it('counts 256 segments of 16 MiB per log, then moves to the next log', () => {
    expect(nextSegment('000000010000000000000001')).toBe('000000010000000000000002');
    expect(nextSegment('0000000100000000000000FE')).toBe('0000000100000000000000FF');
    expect(nextSegment('0000000100000000000000FF')).toBe('000000010000000100000000');
    expect(nextSegment('000000030000000A0000000F')).toBe('000000030000000A00000010');
  });

  it('counts 4096 segments per log for 1 MiB segments, and 4 for 1 GiB ones', () => {
    expect(nextSegment('0000000100000000000000FF', 1 << 20)).toBe('000000010000000000000100');
    expect(nextSegment('000000010000000000000FFF', 1 << 20)).toBe('000000010000000100000000');
    expect(nextSegment('000000010000000000000003', 1 << 30)).toBe('000000010000000100000000');
  });

  it('lists the following segments', () => {
    expect(followingSegments('0000000100000000000000FE', 3)).toStrictEqual(['0000000100000000000000FF', '000000010000000100000000', '000000010000000100000001']);
  });

  it('orders like PostgreSQL archives: history files first, then oldest first', () => {
    expect(['000000020000000000000004', '00000002.history', '000000010000000000000003'].sort(archiveOrder)).toStrictEqual([
      '00000002.history',
      '000000010000000000000003',
      '000000020000000000000004',
    ]);
  });

  it('reads the system identifier and segment size from a segment\'s long page header', () => {
    expect(readSegmentHeader(makeSegment(7311676708303809017n, 1, 1 << 20))).toStrictEqual({ systemIdentifier: '7311676708303809017', segmentSize: 1 << 20 });
    const noLongHeader = makeSegment(1n, 1, 1 << 20);
    noLongHeader.writeUInt16LE(0, 2);
    expect(readSegmentHeader(noLongHeader)).toBeUndefined();
    expect(readSegmentHeader(Buffer.alloc(10))).toBeUndefined();
  });

  it('reads the system identifier from pg_control', () => {
    const control = Buffer.alloc(8192);
    control.writeBigUInt64LE(7311676708303809017n, 0);
    expect(readControlFileIdentifier(control)).toBe('7311676708303809017');
  });
});
