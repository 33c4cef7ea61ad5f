import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { walkDataDirectory } from '../../../archiver/src/backup/data-directory';
import { BackupError } from '../../../archiver/src/errors';

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function dataDirectory(files: Record<string, string>, directories: string[] = []): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'data-dir-test-'));
  made.push(root);
  for (const directory of directories) fs.mkdirSync(path.join(root, directory), { recursive: true });
  for (const [name, contents] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), contents, { mode: 0o600 });
  }
  return root;
}

describe('walking a data directory for a base backup', () => {
  it('lists what to copy — directories before their files, in path order — and leaves runtime state out', async () => {
    const root = dataDirectory(
      {
        PG_VERSION: '15\n',
        'global/pg_control': 'c',
        'base/1/1259': 'rel',
        'base/1/pg_internal.init': 'cache',
        'pg_wal/000000010000000000000001': 'wal',
        'pg_wal/archive_status/000000010000000000000001.done': '',
        'postmaster.pid': '123',
        'pg_stat_tmp/x': 'stat',
        'base/pgsql_tmp/pgsql_tmp1.0': 'tmp',
        'standby.signal': '',
      },
      ['pg_tblspc', 'pg_replslot/slot'],
    );
    const entries = await walkDataDirectory(root);
    expect(entries.map((e) => `${e.type === 'directory' ? 'd' : 'f'} ${e.path}`)).toEqual([
      'f PG_VERSION',
      'd base',
      'd base/1',
      'f base/1/1259',
      'd global',
      'f global/pg_control',
      'd pg_replslot',
      'd pg_stat_tmp',
      'd pg_tblspc',
      'd pg_wal',
      'd pg_wal/archive_status',
    ]);
    expect(entries.find((e) => e.path === 'base/1/1259')).toMatchObject({ size: 3, mode: 0o600 });
  });

  it('refuses tablespaces, saying what to do', async () => {
    const root = dataDirectory({ PG_VERSION: '15\n' }, ['pg_tblspc']);
    fs.symlinkSync(os.tmpdir(), path.join(root, 'pg_tblspc', '16384'));
    await expect(walkDataDirectory(root)).rejects.toThrow(new BackupError(`the data directory ${root} has tablespaces (pg_tblspc/16384): backup-push copies the data directory only and does not back up tablespaces; move their objects to pg_default (ALTER TABLE ... SET TABLESPACE pg_default) and drop the tablespaces`));
  });
});
