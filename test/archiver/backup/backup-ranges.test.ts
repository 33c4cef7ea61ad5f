/**
 * Files larger than a part, with real PostgreSQL 15: a ~12 MB table backed up with 1 MiB parts is
 * cut into ranges that three threads store and restore at once, each into its place in the same
 * file; the manifest holds the whole file's CRC-32, combined from its ranges; the restored
 * cluster has every row. A manifest whose ranges do not make the file is refused before anything
 * is written. Once on the local backend and once on s3rver.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../../contract';
import { LAUNCHER, runArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { TestBackend, startBackend } from '../../../testkit/backends';
import { PostgresCluster } from '../../../testkit/postgres';
import { archivingEnv, testScratch } from '../../../testkit/scratch';

const { dir: scratch, postgresDirectory } = testScratch('backup-ranges-');

const archiver = runArchiverAsPostgres;


interface Manifest {
  name: string;
  parts: { key: string }[];
  files: { path: string; size: number; checksum: string; part: number; ranges?: { part: number; offset: number; size: number; checksum: string }[] }[];
}

describe.each(['a local directory', 's3rver (S3-compatible)'] as const)('a table larger than a part, on %s', (backendName) => {
  let backend: TestBackend;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  let relation: string;
  let manifest: Manifest;
  const serverEnv = () => ({ ...env, PGHOST: primary.baseDir, PGPORT: String(primary.port) });
  const fingerprint = (cluster: PostgresCluster) => cluster.sql("select count(*) || ' ' || md5(string_agg(id || payload, ',' order by id)) from t");

  beforeAll(async () => {
    backend = await startBackend(backendName, scratch);
    const base = postgresDirectory();
    env = archivingEnv(backend.env, base);
    primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60 } });
    primary.start();
    primary.sql('create table t(id int, payload text)');
    primary.sql('insert into t select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 150000) g');
    primary.sql('checkpoint');
    relation = primary.sql("select pg_relation_filepath('t')");
  }, 120_000);

  afterAll(async () => {
    stopArchiver(env);
    await primary?.remove();
    await backend?.stop();
  });

  it('stores the table as ranges of exactly the part size, in parts of their own, with the whole file\'s CRC-32', () => {
    const pushed = archiver(['backup-push', '--json', '--part-size-mib', '1', '--concurrency', '3', '--no-progress'], serverEnv());
    expect(pushed.stderr).toMatch(/msg="backup complete"/);
    expect(pushed.status).toBe(0);
    const name = JSON.parse(pushed.stdout).name as string;
    manifest = JSON.parse(fs.readFileSync(backend.objectFile(`basebackups/${name}/manifest.json`)!, 'utf8'));
    const table = manifest.files.find((file) => file.path === relation)!;
    expect(table.size).toBeGreaterThan(10 * 1024 * 1024);
    expect(table.ranges!.length).toBe(Math.ceil(table.size / (1024 * 1024)));
    expect(table.ranges!.map((range) => range.offset)).toEqual(table.ranges!.map((_, i) => i * 1024 * 1024));
    expect(new Set(table.ranges!.map((range) => range.part)).size).toBe(table.ranges!.length);
    // The file was not written to after the checkpoint: its bytes now are the bytes stored.
    expect(table.checksum).toBe(crc32(fs.readFileSync(path.join(primary.dataDir, relation))).toString(16).padStart(8, '0'));
    expect(manifest.files.filter((file) => !file.ranges).every((file) => file.size <= 1024 * 1024)).toBe(true);
  });

  it('restores the ranges on three threads into one file, and the cluster has every row', async () => {
    const rows = fingerprint(primary);
    const directory = path.join(postgresDirectory(), 'data');
    const restoreEnv = { ...backend.env, ARCHIVER_DAEMON: 'off' };
    const fetched = archiver(['backup-fetch', manifest.name, directory, '--concurrency', '3', '--recovery', '--restore-command', `${LAUNCHER} wal-fetch %f %p`, '--no-progress'], restoreEnv);
    expect(fetched.stderr).toMatch(/msg="restore complete"/);
    expect(fetched.status).toBe(0);
    const table = manifest.files.find((file) => file.path === relation)!;
    const restored = fs.readFileSync(path.join(directory, relation));
    expect(restored.length).toBe(table.size);
    expect(crc32(restored).toString(16).padStart(8, '0')).toBe(table.checksum);
    expect(fs.statSync(path.join(directory, relation)).mode & 0o777).toBe(0o600);
    const copy = await PostgresCluster.create({ env: restoreEnv, fromDataDirectory: directory, settings: { archive_mode: 'off' } });
    try {
      copy.start(false);
      await copy.waitForRecoveryEnd(180_000);
      expect(fingerprint(copy)).toBe(rows);
    } finally {
      await copy.remove();
    }
  });

  it('refuses a manifest whose ranges do not make the file, before writing anything', () => {
    const file = backend.objectFile(`basebackups/${manifest.name}/manifest.json`)!;
    const original = fs.readFileSync(file);
    const edited = JSON.parse(original.toString('utf8')) as Manifest;
    const table = edited.files.find((file) => file.path === relation)!;
    table.ranges![1].checksum = table.ranges![1].checksum === '00000000' ? '00000001' : '00000000';
    fs.writeFileSync(file, JSON.stringify(edited));
    try {
      const parent = postgresDirectory();
      const result = archiver(['backup-fetch', manifest.name, path.join(parent, 'data'), '--no-progress'], env);
      expect(result.status).toBe(EXIT_CODES.error);
      expect(result.stderr).toMatch(new RegExp(`lists ranges of ${relation.replace(/\//g, '\\/')} that do not make the file`));
      expect(fs.readdirSync(parent)).toEqual([]);
    } finally {
      fs.writeFileSync(file, original);
    }
  });
});
