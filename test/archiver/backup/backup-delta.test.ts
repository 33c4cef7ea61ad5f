/**
 * Delta backups with real PostgreSQL 15 and a local archive: a full backup, then deltas that store
 * only the pages changed since their base began (and every non-relation file whole), chained; a
 * restore of the newest delta lays the chain down and holds exactly the rows of its own end — a
 * dropped table gone, a new one there, the updates in place; the chain is bounded by
 * --delta-max-steps; a broken chain or a damaged delta is refused, leaving nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../../contract';
import { LAUNCHER, runArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { TestBackend, startBackend } from '../../../testkit/backends';
import { PostgresCluster } from '../../../testkit/postgres';
import { archivingEnv, testScratch } from '../../../testkit/scratch';

const { dir: scratch, postgresDirectory } = testScratch('backup-delta-');

const archiver = runArchiverAsPostgres;


interface Manifest {
  name: string;
  base?: string;
  size: number;
  storedSize: number;
  files: { path: string; size: number; mode: number; mtime: number }[];
  deltas?: { path: string; size: number; mode: number; mtime: number; pages: number; blobSize: number; ranges?: unknown[] }[];
}

/**
 * Every file of `manifest` as restored in `directory`: its size, mode and time those the manifest
 * lists (a file no later delta changed gets them from the write of an earlier backup of the chain).
 */
function expectFilesAsListed(directory: string, manifest: Manifest): void {
  // postgresql.auto.conf: the recovery settings are added to it.
  const listed = [...manifest.files, ...(manifest.deltas ?? [])].filter((entry) => entry.path !== 'postgresql.auto.conf');
  const differing = listed.filter((entry) => {
    const stat = fs.statSync(path.join(directory, entry.path));
    return stat.size !== entry.size || (stat.mode & 0o7777) !== entry.mode || Math.floor(stat.mtimeMs / 1000) !== entry.mtime;
  });
  expect(listed.length).toBeGreaterThan(100);
  expect(differing.map((entry) => entry.path)).toEqual([]);
}

let backend: TestBackend;
let primary: PostgresCluster;
let env: Record<string, string>;
const serverEnv = () => ({ ...env, PGHOST: primary.baseDir, PGPORT: String(primary.port) });
const manifestOf = (name: string): Manifest => JSON.parse(fs.readFileSync(backend.objectFile(`basebackups/${name}/manifest.json`)!, 'utf8'));
/** Every table's rows, as one comparable line. */
const fingerprint = (cluster: PostgresCluster) =>
  cluster.sql(
    "select string_agg(relname || '=' || coalesce((xpath('/row/c/text()', query_to_xml('select count(*) || '':'' || md5(string_agg(t::text, '','' order by t::text)) as c from ' || quote_ident(relname) || ' t', false, true, '')))[1]::text, ''), ' ' order by relname) from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace",
  );

function push(...args: string[]): Manifest {
  const pushed = archiver(['backup-push', '--json', '--no-progress', '--part-size-mib', '1', ...args], serverEnv());
  expect(pushed.stderr).toMatch(/msg="backup complete"/);
  expect(pushed.status).toBe(0);
  return manifestOf(JSON.parse(pushed.stdout).name);
}

/**
 * Restores `name` with recovery to the end of that backup, starts it, and returns its rows; the
 * restore says it laid down `chain`'s backups one after the other, the full backup first.
 */
async function restoreRows(name: string, chain: readonly string[]): Promise<string> {
  const directory = path.join(postgresDirectory(), 'data');
  const restoreEnv = { ...backend.env, ARCHIVER_DAEMON: 'off' };
  const fetched = archiver(['backup-fetch', name, directory, '--target-immediate', '--recovery', '--restore-command', `${LAUNCHER} wal-fetch %f %p`, '--concurrency', '3', '--no-progress'], restoreEnv);
  expect(fetched.stderr).toMatch(/msg="restore complete"/);
  expect(fetched.status).toBe(0);
  const layers = [...fetched.stderr.matchAll(/msg="layer of the chain restored" .*\blayer=(\S+)/g)].map((match) => match[1]);
  expect(layers).toEqual(chain);
  expectFilesAsListed(directory, manifestOf(name));
  const restored = await PostgresCluster.create({ env: restoreEnv, fromDataDirectory: directory, settings: { archive_mode: 'off' } });
  try {
    restored.start(false);
    await restored.waitForRecoveryEnd(180_000);
    return fingerprint(restored);
  } finally {
    await restored.remove();
  }
}

const noted: { full?: Manifest; first?: Manifest; second?: Manifest; rowsAtFirst?: string; rowsAtSecond?: string } = {};

beforeAll(async () => {
  backend = await startBackend('a local directory', scratch);
  const base = postgresDirectory();
  env = archivingEnv(backend.env, base);
  primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60 } });
  primary.start();
  primary.sql('create table big(id int primary key, payload text)');
  primary.sql("insert into big select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 150000) g");
  primary.sql('create table doomed(id int)');
  primary.sql('insert into doomed select generate_series(1, 1000)');
  primary.sql('vacuum analyze');
}, 120_000);

afterAll(async () => {
  stopArchiver(env);
  await primary?.remove();
  await backend?.stop();
});

describe('a full backup, then deltas', () => {
  it('without a complete backup, --delta takes a full backup and says why', () => {
    const pushed = archiver(['backup-push', '--delta', '--json', '--no-progress'], serverEnv());
    expect(pushed.status).toBe(0);
    expect(pushed.stderr).toMatch(/msg="taking a full backup instead of a delta" .*reason="the archive holds no complete backup of this database"/);
    noted.full = manifestOf(JSON.parse(pushed.stdout).name);
    expect(noted.full.base).toBeUndefined();
    expect(noted.full.deltas).toBeUndefined();
  });

  it('a delta stores the changed pages of each relation file and every other file whole', () => {
    primary.sql('update big set payload = upper(payload) where id <= 4000');
    // Rows too long for the few bytes each full page has left: appended, not spread over every page.
    primary.sql("insert into big select g, repeat('n', 500) from generate_series(150001, 152000) g");
    primary.sql('drop table doomed');
    primary.sql('create table fresh as select generate_series(1, 500) id');
    noted.rowsAtFirst = fingerprint(primary);
    const delta = push('--delta');
    noted.first = delta;
    expect(delta.base).toBe(noted.full!.name);
    const relation = primary.sql("select pg_relation_filepath('big')");
    const bigDelta = delta.deltas!.find((d) => d.path === relation)!;
    expect(bigDelta.ranges!.length).toBeGreaterThan(10);
    const pages = bigDelta.size / 8192;
    // ~3% of the rows updated (their pages, and the pages the new versions went to) and 2000 appended.
    expect(bigDelta.pages).toBeGreaterThan(10);
    expect(bigDelta.pages).toBeLessThan(pages * 0.25);
    // Relation files are deltas; the visibility map, free space map and everything else are whole.
    expect(delta.deltas!.every((d) => /^(base\/\d+\/\d+|global\/\d+)(\.\d+)?$/.test(d.path))).toBe(true);
    expect(delta.files.some((f) => f.path.endsWith('_vm'))).toBe(true);
    expect(delta.files.some((f) => f.path === 'PG_VERSION')).toBe(true);
    expect(delta.storedSize).toBeLessThan(noted.full!.storedSize * 0.5);
    const listed = archiver(['backup-list'], env).stdout;
    expect(listed).toMatch(new RegExp(`${delta.name} .* delta of ${noted.full!.name}`));
  });

  it('a second delta rests on the first', () => {
    primary.sql('update big set payload = payload || \'!\' where id between 100000 and 101000');
    noted.rowsAtSecond = fingerprint(primary);
    noted.second = push('--delta');
    expect(noted.second.base).toBe(noted.first!.name);
    // Writes after the backup must not reach a restore to its end.
    primary.sql('delete from big where id > 150000');
  });

  it('restoring the newest delta lays the chain down: exactly the rows at its end', async () => {
    expect(noted.rowsAtSecond).not.toBe(noted.rowsAtFirst);
    expect(await restoreRows(noted.second!.name, [noted.full!.name, noted.first!.name, noted.second!.name])).toBe(noted.rowsAtSecond);
  });

  it('restoring the first delta gives the rows at its end: the dropped table gone, the new one there', async () => {
    const rows = await restoreRows(noted.first!.name, [noted.full!.name, noted.first!.name]);
    expect(rows).toBe(noted.rowsAtFirst);
    expect(rows).toMatch(/^big=\d+:\w+ fresh=500:\w+$/);
  });

  it('--delta-max-steps bounds the chain: a full backup once it is reached', () => {
    const pushed = archiver(['backup-push', '--delta', '--delta-max-steps', '2', '--json', '--no-progress'], serverEnv());
    expect(pushed.status).toBe(0);
    expect(pushed.stderr).toMatch(/reason="the newest backup base_\w+ ends a chain of 2 delta\(s\), the most allowed \(--delta-max-steps 2\)"/);
    expect(manifestOf(JSON.parse(pushed.stdout).name).base).toBeUndefined();
    const misuse = archiver(['backup-push', '--delta-max-steps', '2'], serverEnv());
    expect(misuse.status).toBe(EXIT_CODES.usage);
  });

  it('refuses a delta whose page delta does not match its manifest, leaving nothing', () => {
    const file = backend.objectFile(`basebackups/${noted.first!.name}/manifest.json`)!;
    const original = fs.readFileSync(file);
    const edited = JSON.parse(original.toString('utf8'));
    // A delta that changes pages: one that changes nothing is skipped, never read (restore-plan.ts).
    const victim = edited.deltas.find((d: { ranges?: unknown; pages: number }) => !d.ranges && d.pages > 0);
    victim.checksum = victim.checksum === '00000000' ? '00000001' : '00000000';
    fs.writeFileSync(file, JSON.stringify(edited));
    try {
      const parent = postgresDirectory();
      const result = archiver(['backup-fetch', noted.first!.name, path.join(parent, 'data'), '--no-progress'], env);
      expect(result.status).toBe(EXIT_CODES.error);
      expect(result.stderr).toMatch(new RegExp(`${victim.path.replace(/\//g, '\\/')} from .* does not match the backup's manifest`));
      expect(fs.readdirSync(parent)).toEqual([]);
    } finally {
      fs.writeFileSync(file, original);
    }
  });

  it('refuses a delta whose base is gone, naming it', () => {
    const file = backend.objectFile(`basebackups/${noted.full!.name}/manifest.json`)!;
    const original = fs.readFileSync(file);
    fs.rmSync(file);
    try {
      const parent = postgresDirectory();
      const result = archiver(['backup-fetch', noted.second!.name, path.join(parent, 'data'), '--no-progress'], env);
      expect(result.status).toBe(EXIT_CODES.notFound);
      expect(result.stderr).toContain(`backup ${noted.first!.name} is a delta of ${noted.full!.name}, which is not a complete backup`);
      expect(fs.readdirSync(parent)).toEqual([]);
    } finally {
      fs.writeFileSync(file, original);
    }
  });
});
