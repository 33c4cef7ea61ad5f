import { describe, expect, it } from 'vitest';
import { DataEntry, isExcluded } from '../../../archiver/src/backup/data-directory';
import { PlannedPiece, partKey, planParts } from '../../../archiver/src/backup/parts-plan';

const file = (path: string, size: number): DataEntry => ({ path, type: 'file', mode: 0o600, size, mtime: 0 });
const directory = (path: string): DataEntry => ({ path, type: 'directory', mode: 0o700, size: 0, mtime: 0 });

const names = (parts: PlannedPiece[][]) => parts.map((part) => part.map(({ entry, range }) => (range ? `${entry.path}@${range.offset}+${range.length}` : entry.path)));

describe('cutting a backup into parts', () => {
  it('fills parts up to the size, puts directories first, and starts a new part when a file would overflow', () => {
    const entries = [directory('base'), file('base/1', 40_000), file('base/2', 50_000), directory('global'), file('base/3', 20_000), file('global/pg_control', 8192), file('global/5', 95_000)];
    expect(names(planParts(entries, 96 * 1024))).toEqual([['base', 'base/1', 'base/2', 'global'], ['base/3'], ['global/5']]);
  });

  it('cuts a file larger than a part into ranges of exactly the part size, one part each, covering the file', () => {
    const part = 64 * 1024;
    const entries = [directory('base'), file('base/1', 10_000), file('base/big', 3 * part + 100), file('base/2', 20_000)];
    expect(names(planParts(entries, part))).toEqual([
      ['base', 'base/1'],
      [`base/big@0+${part}`],
      [`base/big@${part}+${part}`],
      [`base/big@${2 * part}+${part}`],
      [`base/big@${3 * part}+100`],
      ['base/2'],
    ]);
    const ranges = planParts(entries, part).flat().filter((piece) => piece.range);
    expect(ranges.every((piece) => piece.range!.fileSize === 3 * part + 100)).toBe(true);
    expect(ranges.every((piece) => piece.range!.offset % 8192 === 0)).toBe(true);
  });

  it('a file of exactly the part size stays whole', () => {
    expect(names(planParts([file('base/1', 8192), file('base/2', 16384)], 16384))).toEqual([['base/1'], ['base/2']]);
  });

  it('a directory-only first part takes the first range', () => {
    expect(names(planParts([directory('base'), file('base/big', 20_000)], 16384))).toEqual([['base', 'base/big@0+16384'], ['base/big@16384+3616']]);
  });

  it('refuses a part size that is not whole pages', () => {
    expect(() => planParts([], 1000)).toThrow(/multiple of 8192/);
    expect(() => planParts([], 0)).toThrow(/multiple of 8192/);
  });

  it('leaves global/pg_control out: it is stored last, after every other file', () => {
    const parts = planParts([directory('global'), file('global/pg_control', 8192)], 8192);
    expect(names(parts).flat()).toEqual(['global']);
  });

  it('numbers parts from 0001', () => {
    expect(partKey(0)).toBe('parts/0001.tar');
    expect(partKey(11)).toBe('parts/0012.tar');
  });
});

describe('what a base backup leaves out of the data directory (as pg_basebackup does)', () => {
  it.each([
    ['pg_wal/000000010000000000000001', false],
    ['pg_wal/archive_status/000000010000000000000001.done', false],
    ['pg_replslot/slot/state', false],
    ['pg_stat_tmp/global.stat', false],
    ['postmaster.pid', false],
    ['postmaster.opts', false],
    ['backup_label', false],
    ['recovery.signal', false],
    ['standby.signal', false],
    ['base/1/pg_internal.init', false],
    ['base/pgsql_tmp', true],
    ['base/pgsql_tmp/pgsql_tmp123.0', false],
  ])('%s', (relative, isDirectory) => {
    expect(isExcluded(relative, isDirectory)).toBe(true);
  });

  it.each([
    ['pg_wal', true],
    ['pg_wal/archive_status', true],
    ['pg_replslot', true],
    ['base/1/1259', false],
    ['global/pg_control', false],
    ['postgresql.auto.conf', false],
    ['PG_VERSION', false],
    ['pg_xact/0000', false],
    ['base/1/backup_label', false],
  ])('keeps %s', (relative, isDirectory) => {
    expect(isExcluded(relative, isDirectory)).toBe(false);
  });
});
