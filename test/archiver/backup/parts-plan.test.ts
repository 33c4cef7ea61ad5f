import { describe, expect, it } from 'vitest';
import { DataEntry, isExcluded } from '../../../archiver/src/backup/data-directory';
import { partKey, planParts } from '../../../archiver/src/backup/parts-plan';

const file = (path: string, size: number): DataEntry => ({ path, type: 'file', mode: 0o600, size, mtime: 0 });
const directory = (path: string): DataEntry => ({ path, type: 'directory', mode: 0o700, size: 0, mtime: 0 });

describe('cutting a backup into parts', () => {
  it('fills parts up to the size, gives a larger file a part of its own, and puts directories first', () => {
    const entries = [directory('base'), file('base/1', 40), file('base/2', 50), directory('global'), file('base/3', 300), file('base/4', 10), file('global/pg_control', 8192), file('global/5', 95)];
    const parts = planParts(entries, 100);
    expect(parts.map((part) => part.map((entry) => entry.path))).toEqual([
      ['base', 'base/1', 'base/2', 'global'],
      ['base/3'],
      ['base/4'],
      ['global/5'],
    ]);
  });

  it('leaves global/pg_control out: it is stored last, after every other file', () => {
    const parts = planParts([directory('global'), file('global/pg_control', 8192)], 100);
    expect(parts.flat().map((entry) => entry.path)).toEqual(['global']);
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
