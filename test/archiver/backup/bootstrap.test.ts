/**
 * `archiver bootstrap`: what pod 0 does with an empty volume, with real PostgreSQL 15 and local
 * archives. An empty archive says initdb; WAL without a backup is refused, touching nothing; a
 * lost volume comes back from the newest backup with every archived row, promotes onto a new
 * timeline and goes on archiving; a new database from another database's archive has exactly the
 * rows before its time target and archives into its own location — and once it has its own
 * backup, a lost volume restores from its own archive, never from the source again.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../../contract';
import { LAUNCHER, runArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { PostgresCluster, giveToPostgres } from '../../../testkit/postgres';
import { ArchiveState, decideBootstrap, parseBootstrapTarget } from '../../../archiver/src/backup/bootstrap';
import type { BackupManifest } from '../../../archiver/src/backup/manifest';
import { testScratch } from '../../../testkit/scratch';

const { dir: scratch, postgresDirectory } = testScratch('bootstrap-');

const archiver = runArchiverAsPostgres;


describe('the decision (pure)', () => {
  const backup = { name: 'base_20261130T060000Z' } as BackupManifest;
  const state = (backups: BackupManifest[], objects: number): ArchiveState => ({ location: 's3://b/db/archive', backups, objects });
  const source = { repository: 's3://b/other/archive', target: { kind: 'latest' as const } };

  it.each([
    ['restore', state([backup], 40), undefined, 'restore-own'],
    ['restore', state([backup], 40), source, 'restore-own'],
    ['restore', state([], 12), undefined, 'refuse'],
    ['restore', state([], 12), source, 'refuse'],
    ['restore', state([], 0), source, 'restore-source'],
    ['restore', state([], 0), undefined, 'initdb'],
    ['initdb', state([backup], 40), undefined, 'refuse'],
    ['initdb', state([], 3), undefined, 'refuse'],
    ['initdb', state([], 0), undefined, 'initdb'],
    ['initdb', state([], 0), source, 'restore-source'],
  ] as const)('mode %s, an archive of %o, source %o: %s', (mode, own, from, action) => {
    expect(decideBootstrap(mode, own, from).action).toBe(action);
  });

  it('says why it refuses and what to do', () => {
    expect(decideBootstrap('restore', state([], 12), undefined).reason).toMatch(/holds 12 object\(s\) \(WAL\) but no complete backup: .*Nothing was done.*archiver delete everything --confirm/);
    expect(decideBootstrap('initdb', state([backup], 4), undefined).reason).toMatch(/holds 1 complete backup\(s\) .*ARCHIVER_BOOTSTRAP=initdb never initialises a new database over it/);
  });

  it('reads the target of a bootstrap from a source', () => {
    expect(parseBootstrapTarget(undefined)).toEqual({ kind: 'latest' });
    expect(parseBootstrapTarget('immediate')).toEqual({ kind: 'immediate' });
    expect(parseBootstrapTarget('lsn:0/3000028')).toEqual({ kind: 'lsn', lsn: '0/3000028' });
    expect(parseBootstrapTarget('xid:1234')).toEqual({ kind: 'xid', xid: '1234' });
    expect(parseBootstrapTarget('name:before-migration')).toEqual({ kind: 'name', name: 'before-migration' });
    expect(parseBootstrapTarget('time:2026-11-30T10:00:00Z')).toMatchObject({ kind: 'time' });
    expect(() => parseBootstrapTarget('time:2026-11-30 10:00:00')).toThrow(/has no time zone/);
    expect(() => parseBootstrapTarget('yesterday')).toThrow(/ARCHIVER_BOOTSTRAP_TARGET="yesterday": expected latest, immediate, time:/);
  });
});

describe('with PostgreSQL 15', () => {
  let primary: PostgresCluster;
  let env: Record<string, string>;
  const ownRoot = path.join(scratch, 'archive-a');
  const otherRoot = path.join(scratch, 'archive-b');
  const rows = (cluster: PostgresCluster) => cluster.sql("select count(*) || ':' || coalesce(sum(n), 0) from t");
  const clusters: PostgresCluster[] = [];

  /** The env of a database archiving to `root`. */
  function envFor(root: string, name: string): Record<string, string> {
    const base = postgresDirectory();
    return { ARCHIVER_REPOSITORY: `file://${root}`, ARCHIVER_DAEMON: 'off', ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_LOG: path.join(base, `${name}.log`) };
  }

  /** Starts the server on a bootstrapped directory and waits until it has recovered and promoted. */
  async function startRestored(directory: string, clusterEnv: Record<string, string>): Promise<PostgresCluster> {
    const cluster = await PostgresCluster.create({ inPlaceDataDirectory: directory, env: clusterEnv, settings: { archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` } });
    clusters.push(cluster);
    cluster.start(false);
    await cluster.waitForRecoveryEnd(180_000);
    return cluster;
  }

  beforeAll(async () => {
    for (const root of [ownRoot, otherRoot]) {
      fs.mkdirSync(root);
      giveToPostgres(root);
    }
    env = envFor(ownRoot, 'a');
    primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60 } });
    clusters.push(primary);
    primary.start();
    primary.sql('create table t(n int)');
    primary.sql('insert into t select generate_series(1, 1000)');
    primary.sql('select pg_switch_wal()');
    await primary.waitForArchiving();
  }, 120_000);

  afterAll(async () => {
    stopArchiver(env);
    for (const cluster of clusters) await cluster.remove();
  });

  it('an empty archive: initdb, and the directory is left as it was', () => {
    const directory = path.join(postgresDirectory(), 'data');
    const result = archiver(['bootstrap', directory], envFor(otherRoot, 'x'));
    expect(result.stderr).toMatch(/msg="bootstrap: the archive at file:\/\/\S+ is empty: a new database"/);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('initdb\n');
    expect(fs.existsSync(directory)).toBe(false);
  });

  it('WAL but no backup: refused (exit 1), nothing written', () => {
    const parent = postgresDirectory();
    const result = archiver(['bootstrap', path.join(parent, 'data')], envFor(ownRoot, 'x'));
    expect(result.status).toBe(EXIT_CODES.error);
    expect(result.stderr).toMatch(/error=BootstrapRefusedError/);
    expect(result.stderr).toMatch(/but no complete backup: nothing can be restored from it/);
    expect(result.stdout).toBe('');
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('a lost volume comes back from the newest backup with every archived row, promotes, and goes on archiving', async () => {
    const pushed = archiver(['backup-push', '--no-progress'], { ...env, PGHOST: primary.baseDir, PGPORT: String(primary.port) });
    expect(pushed.status).toBe(0);
    primary.sql('insert into t select generate_series(1, 500)');
    primary.sql('select pg_switch_wal()');
    await primary.waitForArchiving();
    const before = rows(primary);
    primary.stop('immediate');

    const directory = path.join(postgresDirectory(), 'data');
    fs.mkdirSync(directory, { mode: 0o700 });
    giveToPostgres(directory);
    const restoredEnv = envFor(ownRoot, 'a2');
    const result = archiver(['bootstrap', directory, '--no-progress'], restoredEnv);
    expect(result.stderr).toMatch(/msg="bootstrap: the archive at file:\/\/\S+ holds a complete backup: restoring the newest, base_\w+, and replaying every archived WAL segment"/);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('restored\n');
    expect(fs.existsSync(`${directory}.restore`)).toBe(false);

    const restored = await startRestored(directory, restoredEnv);
    expect(rows(restored)).toBe(before);
    expect(restored.sql('select pg_is_in_recovery()')).toBe('f');
    expect(restored.sql('select timeline_id from pg_control_checkpoint()')).not.toBe('1');
    restored.sql('insert into t select 1');
    const segment = restored.sql('select pg_walfile_name(pg_current_wal_lsn())');
    restored.sql('select pg_switch_wal()');
    await restored.waitForArchiving();
    expect(fs.readdirSync(path.join(ownRoot, 'wal')).some((name) => name.startsWith(segment))).toBe(true);
    expect(segment.startsWith('00000001')).toBe(false);
    restored.stop();

    // The same volume again: a database is there, nothing to do.
    const again = archiver(['bootstrap', directory], restoredEnv);
    expect(again.stdout).toBe('present\n');
  });

  it('a restore that fails half-way (an object it cannot read) leaves neither the directory nor its staging copy (exit 1)', () => {
    const parts = path.join(ownRoot, 'basebackups');
    const newest = fs.readdirSync(parts).filter((name) => name.startsWith('base_')).sort().pop()!;
    const part = path.join(parts, newest, 'parts', fs.readdirSync(path.join(parts, newest, 'parts')).sort()[0]);
    fs.chmodSync(part, 0o000);
    try {
      const parent = postgresDirectory();
      const directory = path.join(parent, 'data');
      const result = archiver(['bootstrap', directory, '--no-progress'], envFor(ownRoot, 'x'));
      expect(result.status).toBe(EXIT_CODES.error);
      expect(result.stderr).toMatch(/msg="restore failed: what it wrote is removed"/);
      expect(result.stdout).toBe('');
      expect(fs.readdirSync(parent)).toEqual([]);
    } finally {
      fs.chmodSync(part, 0o600);
    }
  });

  it('ARCHIVER_BOOTSTRAP=initdb refuses an archive with a backup; a directory with stray files is refused too', () => {
    const parent = postgresDirectory();
    const refused = archiver(['bootstrap', path.join(parent, 'data')], { ...envFor(ownRoot, 'x'), ARCHIVER_BOOTSTRAP: 'initdb' });
    expect(refused.status).toBe(EXIT_CODES.error);
    expect(refused.stderr).toMatch(/ARCHIVER_BOOTSTRAP=initdb never initialises a new database over it/);
    expect(fs.readdirSync(parent)).toEqual([]);
    fs.mkdirSync(path.join(parent, 'data'));
    fs.writeFileSync(path.join(parent, 'data', 'stray'), 'x');
    giveToPostgres(parent);
    const stray = archiver(['bootstrap', path.join(parent, 'data')], envFor(ownRoot, 'x'));
    expect(stray.status).toBe(EXIT_CODES.error);
    expect(stray.stderr).toMatch(/is not empty \(stray\) but holds no database \(no PG_VERSION\)/);
    expect(fs.readdirSync(path.join(parent, 'data'))).toEqual(['stray']);
  });

  it('refuses a bad target and a source equal to the own archive (configuration, exit 2)', () => {
    const directory = path.join(postgresDirectory(), 'data');
    const same = archiver(['bootstrap', directory], { ...envFor(otherRoot, 'x'), ARCHIVER_BOOTSTRAP_SOURCE: `file://${otherRoot}` });
    expect(same.status).toBe(EXIT_CODES.usage);
    expect(same.stderr).toMatch(/ARCHIVER_BOOTSTRAP_SOURCE: names this database's own archive/);
    const badMode = archiver(['bootstrap', directory], { ...envFor(otherRoot, 'x'), ARCHIVER_BOOTSTRAP: 'maybe' });
    expect(badMode.status).toBe(EXIT_CODES.usage);
  });

  it('a new database from another\'s archive to a time has exactly the rows before it, archives into its own location, and a later lost volume restores from its own archive', async () => {
    // The source: the database restored above, now with batches around a time T.
    const source = clusters[clusters.length - 1];
    source.start();
    source.sql('insert into t select 100000 from generate_series(1, 10)');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const time = source.sql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    const atTime = rows(source);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    source.sql('insert into t select 200000 from generate_series(1, 10)');
    source.sql('select pg_switch_wal()');
    await source.waitForArchiving();
    expect(rows(source)).not.toBe(atTime);

    const bEnv = { ...envFor(otherRoot, 'b'), ARCHIVER_BOOTSTRAP_SOURCE: `file://${ownRoot}`, ARCHIVER_BOOTSTRAP_TARGET: `time:${time}` };
    const directory = path.join(postgresDirectory(), 'data');
    const result = archiver(['bootstrap', directory, '--no-progress'], bEnv);
    expect(result.stderr).toMatch(/msg="bootstrap: the archive at file:\/\/\S+archive-b is empty: initialising from file:\/\/\S+archive-a \(the target time /);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('restored\n');
    const b = await startRestored(directory, bEnv);
    expect(rows(b)).toBe(atTime);
    b.sql('insert into t select 300000');
    b.sql('select pg_switch_wal()');
    await b.waitForArchiving();
    expect(fs.readdirSync(path.join(otherRoot, 'wal')).length).toBeGreaterThan(0);

    // Its own backup, more rows, then the volume is lost: it comes back from its own archive.
    const pushed = archiver(['backup-push', '--no-progress'], { ...bEnv, PGHOST: b.baseDir, PGPORT: String(b.port) });
    expect(pushed.status).toBe(0);
    b.sql('insert into t select 400000');
    b.sql('select pg_switch_wal()');
    await b.waitForArchiving();
    const bRows = rows(b);
    b.stop('immediate');
    const again = path.join(postgresDirectory(), 'data');
    const second = archiver(['bootstrap', again, '--no-progress'], bEnv);
    expect(second.stderr).toMatch(/archive-b holds a complete backup: restoring the newest/);
    expect(second.stdout).toBe('restored\n');
    const b2 = await startRestored(again, bEnv);
    expect(rows(b2)).toBe(bRows);
  });
});
