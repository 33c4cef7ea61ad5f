/**
 * Base backups when things go wrong, with real PostgreSQL 15 and a local archive: a backup taken
 * on a standby restores; a backup-push killed half-way is never listed and the next one succeeds;
 * a restore refuses a non-empty directory, a zone-less time and an unreachable target, a
 * damaged part fails it without leaving anything behind, and one killed after its data files
 * leaves a directory that PostgreSQL refuses to start.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../../contract';
import { LAUNCHER, eventually, runArchiverAsPostgres, spawnArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { TestBackend, startBackend } from '../../../testkit/backends';
import { PG_BIN, PostgresCluster, giveToPostgres } from '../../../testkit/postgres';
import { archivingEnv, testScratch } from '../../../testkit/scratch';

const { dir: scratch, postgresDirectory } = testScratch('backup-faults-');

const archiver = runArchiverAsPostgres;


let backend: TestBackend;
let primary: PostgresCluster;
let env: Record<string, string>;
const serverEnv = (cluster: PostgresCluster) => ({ ...env, PGHOST: cluster.baseDir, PGPORT: String(cluster.port) });
const backupNames = () => (JSON.parse(archiver(['backup-list', '--json'], env).stdout) as { name: string; from: string }[]).map((b) => b.name);

beforeAll(async () => {
  backend = await startBackend('a local directory', scratch);
  const base = postgresDirectory();
  env = archivingEnv(backend.env, base);
  primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60, max_wal_senders: 5 } });
  primary.start();
  primary.sql('create table t(id int, payload text)');
  // ~40 MB of table data: enough for many 1 MiB parts.
  primary.sql("insert into t select g, repeat(md5(g::text), 8) from generate_series(1, 120000) g");
}, 120_000);

afterAll(async () => {
  stopArchiver(env);
  await primary?.remove();
  await backend?.stop();
});

describe('a backup-push killed half-way', () => {
  it('is never listed, ends the backup in the server, and the next backup succeeds', async () => {
    const child = spawnArchiverAsPostgres(['backup-push', '--part-size-mib', '1', '--concurrency', '1'], serverEnv(primary));
    const root = (backend.storage as { root: string }).root;
    const partsStored = () => {
      const backups = fs.existsSync(path.join(root, 'basebackups')) ? fs.readdirSync(path.join(root, 'basebackups')) : [];
      return backups.some((name) => fs.existsSync(path.join(root, 'basebackups', name, 'parts')) && fs.readdirSync(path.join(root, 'basebackups', name, 'parts')).length >= 2);
    };
    expect(await eventually(partsStored, 60_000)).toBe(true);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    expect(backupNames()).toEqual([]);
    // The session died with the process: PostgreSQL has no backup in progress.
    expect(await eventually(() => primary.sql("select count(*) from pg_stat_activity where application_name = 'archiver backup'") === '0', 10_000)).toBe(true);
    const next = archiver(['backup-push'], serverEnv(primary));
    expect(next.stderr).toMatch(/msg="backup complete"/);
    expect(next.status).toBe(0);
    expect(backupNames()).toEqual([next.stdout.trim()]);
  }, 180_000);

  it('refuses a second backup of the same database while one runs', async () => {
    const first = spawnArchiverAsPostgres(['backup-push', '--part-size-mib', '1', '--concurrency', '1'], serverEnv(primary));
    let firstErr = '';
    first.stderr.on('data', (d) => (firstErr += d));
    expect(await eventually(() => /msg="backup started"/.test(firstErr), 30_000)).toBe(true);
    const second = archiver(['backup-push'], serverEnv(primary));
    expect(second.status).toBe(EXIT_CODES.error);
    expect(second.stderr).toMatch(/another backup of the database at .* is running; wait for it to finish/);
    const code = await new Promise((resolve) => first.once('close', resolve));
    expect(code).toBe(0);
  }, 180_000);
});

describe('a backup taken on a standby', () => {
  it('waits for the primary to archive its WAL, is listed as from a standby, and restores every row', async () => {
    const standby = await PostgresCluster.create({
      env,
      fromDataDirectory: primary.baseBackup(),
      settings: { primary_conninfo: `'host=${primary.baseDir} port=${primary.port} user=postgres'`, hot_standby: 'on' },
    });
    const restored: PostgresCluster[] = [];
    try {
      fs.writeFileSync(path.join(standby.dataDir, 'standby.signal'), '');
      giveToPostgres(standby.dataDir);
      standby.start();
      primary.sql('insert into t select g, md5(g::text) from generate_series(200001, 201000) g');
      expect(await eventually(() => standby.sql('select count(*) from t') === primary.sql('select count(*) from t'), 30_000)).toBe(true);
      const push = spawnArchiverAsPostgres(['backup-push', '--json'], serverEnv(standby));
      let stdout = '';
      let stderr = '';
      push.stdout.on('data', (d) => (stdout += d));
      push.stderr.on('data', (d) => (stderr += d));
      const closed = new Promise<number | null>((resolve) => push.once('close', resolve));
      // On a standby the backup's last segment is archived by the primary once it is complete.
      expect(await eventually(() => /waiting for the WAL of the backup/.test(stderr), 60_000)).toBe(true);
      // It waits: its last segment is not complete until the primary switches.
      let exited = false;
      void closed.then(() => (exited = true));
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect(exited).toBe(false);
      expect(JSON.parse(archiver(['backup-list', '--json'], env).stdout).some((b: { from: string }) => b.from === 'standby')).toBe(false);
      primary.sql('select pg_switch_wal()');
      primary.sql('insert into t select g, md5(g::text) from generate_series(300001, 301000) g');
      primary.sql('select pg_switch_wal()');
      expect(await closed).toBe(0);
      const summary = JSON.parse(stdout);
      expect(summary.from).toBe('standby');
      const expected = primary.sql('select count(*), sum(id) from t');
      primary.sql('select pg_switch_wal()');
      await primary.waitForArchiving();

      const directory = path.join(postgresDirectory(), 'data');
      const fetched = archiver(['backup-fetch', summary.name, directory, '--recovery', '--restore-command', `${LAUNCHER} wal-fetch %f %p`], { ...backend.env, ARCHIVER_DAEMON: 'off' });
      expect(fetched.status).toBe(0);
      const cluster = await PostgresCluster.create({ env: { ...backend.env, ARCHIVER_DAEMON: 'off' }, fromDataDirectory: directory, settings: { archive_mode: 'off', hot_standby: 'off' } });
      restored.push(cluster);
      cluster.start(false);
      await cluster.waitForRecoveryEnd(180_000);
      expect(cluster.sql('select count(*), sum(id) from t')).toBe(expected);
    } finally {
      await standby.remove();
      for (const cluster of restored) await cluster.remove();
    }
  }, 300_000);
});

describe('backup-fetch refuses what it cannot do, and leaves nothing half-restored', () => {
  it('refuses a directory that is not empty, touching nothing in it', () => {
    const directory = postgresDirectory();
    fs.writeFileSync(path.join(directory, 'precious'), 'keep me');
    const result = archiver(['backup-fetch', 'LATEST', directory], env);
    expect(result.status).toBe(EXIT_CODES.usage);
    expect(result.stderr).toMatch(/backup-fetch: the directory .* is not empty \(precious\); restore into an empty or new directory: nothing is overwritten/);
    expect(fs.readdirSync(directory)).toEqual(['precious']);
  });

  it('refuses a time without a zone, and a target before every backup, naming the earliest reachable point', () => {
    const zoneless = archiver(['backup-fetch', 'LATEST', path.join(postgresDirectory(), 'x'), '--target-time', '2026-11-30 06:00:00'], env);
    expect(zoneless.status).toBe(EXIT_CODES.usage);
    expect(zoneless.stderr).toMatch(/has no time zone/);
    const early = archiver(['backup-fetch', 'LATEST', path.join(postgresDirectory(), 'x'), '--target-time', '2000-01-01T00:00:00Z'], env);
    expect(early.status).toBe(EXIT_CODES.usage);
    expect(early.stderr).toMatch(/is before the end of every backup: the earliest reachable point is \d{4}-\d\d-\d\dT[\d:.]+Z \(LSN [0-9A-F]+\/[0-9A-F]+\), the end of backup base_/);
  });

  it('checks every file against the manifest, not only the part as a whole', () => {
    const root = (backend.storage as { root: string }).root;
    const name = backupNames()[0];
    const manifestFile = path.join(root, 'basebackups', name, 'manifest.json');
    const original = fs.readFileSync(manifestFile, 'utf8');
    const manifest = JSON.parse(original);
    const victim = manifest.files.find((file: { path: string }) => file.path === 'PG_VERSION');
    victim.checksum = victim.checksum === '00000000' ? '00000001' : '00000000';
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    try {
      const parent = postgresDirectory();
      const result = archiver(['backup-fetch', name, path.join(parent, 'data')], env);
      expect(result.status).toBe(EXIT_CODES.error);
      expect(result.stderr).toMatch(/PG_VERSION from .* does not match the backup's manifest/);
      expect(fs.readdirSync(parent)).toEqual([]);
    } finally {
      fs.writeFileSync(manifestFile, original);
    }
  });

  it('killed after every data file but before its backup_label, leaves no pg_control: PostgreSQL refuses to start what it left', async () => {
    // With a pg_control and no backup_label, PostgreSQL would run crash recovery from the
    // checkpoint pg_control holds (taken at the backup's end) instead of the backup's start, and
    // open with pages from different points in time. pg_control is written last of all.
    const root = (backend.storage as { root: string }).root;
    const name = backupNames()[0];
    const label = path.join(root, 'basebackups', name, 'backup_label');
    const original = fs.readFileSync(label);
    // The backup_label object becomes a named pipe: reading it blocks until the test writes,
    // which it never does. The restore stops there, after every part it wrote before.
    fs.rmSync(label);
    expect(spawnSync('mkfifo', ['-m', '0644', label]).status).toBe(0);
    const directory = path.join(postgresDirectory(), 'data');
    const fetch = spawnArchiverAsPostgres(['backup-fetch', name, directory, '--no-progress'], env);
    const closed = new Promise((resolve) => fetch.once('close', resolve));
    let writer: number | undefined;
    try {
      // Opening the pipe for writing without blocking succeeds only once a reader has it open.
      const reading = () => {
        try {
          writer = fs.openSync(label, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
          return true;
        } catch {
          return false;
        }
      };
      expect(await eventually(reading, 60_000)).toBe(true);
      fetch.kill('SIGKILL');
      await closed;
    } finally {
      fetch.kill('SIGKILL');
      if (writer !== undefined) fs.closeSync(writer);
      fs.rmSync(label);
      fs.writeFileSync(label, original);
    }
    // Every data file is there (the table's among them, whole); backup_label and pg_control are not.
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'basebackups', name, 'manifest.json'), 'utf8')) as { files: { path: string; size: number }[] };
    const tablePath = primary.sql("select pg_relation_filepath('t')");
    const table = manifest.files.find((file) => file.path === tablePath)!;
    expect(table.size).toBeGreaterThan(30 * 1024 * 1024);
    expect(fs.statSync(path.join(directory, table.path)).size).toBe(table.size);
    expect(fs.existsSync(path.join(directory, 'PG_VERSION'))).toBe(true);
    expect(fs.existsSync(path.join(directory, 'backup_label'))).toBe(false);
    expect(fs.existsSync(path.join(directory, 'global', 'pg_control'))).toBe(false);
    // PostgreSQL itself refuses it, before it listens anywhere.
    const started = spawnSync('runuser', ['-u', 'postgres', '--', `${PG_BIN}/postgres`, '-D', directory, '-c', "listen_addresses=", '-c', `unix_socket_directories=${path.dirname(directory)}`], { encoding: 'utf8', timeout: 30_000 });
    expect(started.status).not.toBe(0);
    expect(started.stderr).toMatch(/could not find the database system[\s\S]*could not open file "[^"]*\/global\/pg_control": No such file or directory/);
    // The next restore into it is refused (not empty), touching nothing; into a new one it succeeds.
    expect(archiver(['backup-fetch', name, directory], env).status).toBe(EXIT_CODES.usage);
    const again = archiver(['backup-fetch', name, path.join(postgresDirectory(), 'data')], env);
    expect(again.status).toBe(0);
  }, 120_000);

  it('fails on a damaged pg_control part, restored last of all, and removes everything, backup_label and recovery settings included', () => {
    const root = (backend.storage as { root: string }).root;
    const name = backupNames()[0];
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'basebackups', name, 'manifest.json'), 'utf8')) as { files: { path: string; part: number }[]; parts: { key: string }[] };
    const control = manifest.parts[manifest.files.find((file) => file.path === 'global/pg_control')!.part];
    const part = path.join(root, 'basebackups', name, control.key);
    const original = fs.readFileSync(part);
    const damaged = Buffer.from(original);
    for (let i = Math.floor(damaged.length / 2); i < Math.floor(damaged.length / 2) + 64 && i < damaged.length; i++) damaged[i] ^= 0xa5;
    fs.writeFileSync(part, damaged);
    try {
      const parent = postgresDirectory();
      const result = archiver(['backup-fetch', name, path.join(parent, 'data'), '--recovery', '--restore-command', `${LAUNCHER} wal-fetch %f %p`], env);
      expect(result.status).toBe(EXIT_CODES.error);
      expect(result.stderr).toMatch(/error=CorruptObjectError/);
      expect(result.stderr).toMatch(/msg="restore failed: what it wrote is removed"/);
      expect(fs.readdirSync(parent)).toEqual([]);
    } finally {
      fs.writeFileSync(part, original);
    }
  });

  it('fails on a damaged part with CorruptObjectError and removes what it wrote', () => {
    const root = (backend.storage as { root: string }).root;
    const name = backupNames()[0];
    const part = path.join(root, 'basebackups', name, 'parts', '0001.tar');
    const original = fs.readFileSync(part);
    const damaged = Buffer.from(original);
    // A run of bytes, not one: a single flipped byte may turn a match into an equal one.
    for (let i = Math.floor(damaged.length / 2); i < Math.floor(damaged.length / 2) + 64; i++) damaged[i] ^= 0xa5;
    fs.writeFileSync(part, damaged);
    try {
      const parent = postgresDirectory();
      const directory = path.join(parent, 'data');
      const result = archiver(['backup-fetch', name, directory], env);
      expect(result.status).toBe(EXIT_CODES.error);
      expect(result.stderr).toMatch(/error=CorruptObjectError/);
      expect(fs.readdirSync(parent)).toEqual([]);
    } finally {
      fs.writeFileSync(part, original);
    }
  });
});
