/**
 * `archiver bootstrap` killed (SIGKILL: the pod deleted, the node lost) half-way through its
 * restore, with real PostgreSQL 15 and a local archive: the data directory is left empty — the
 * restore went to `<dir>.restore`, renamed into place only when complete — so nothing there can be
 * taken for a database; the next run starts afresh, restores completely, and the server it
 * starts has every archived row.
 */
import { ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAUNCHER, runArchiverAsPostgres, spawnArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { TestBackend, startBackend } from '../../../testkit/backends';
import { PostgresCluster, giveToPostgres } from '../../../testkit/postgres';
import { processesMentioning } from '../../../testkit/processes';
import { archivingEnv, testScratch } from '../../../testkit/scratch';

const { postgresDirectory, dir: scratch } = testScratch('bootstrap-killed-');

const archiver = runArchiverAsPostgres;

let backend: TestBackend;
let primary: PostgresCluster;
let env: Record<string, string>;
const clusters: PostgresCluster[] = [];
const rows = (cluster: PostgresCluster) => cluster.sql("select count(*) || ':' || md5(string_agg(md5(payload), '' order by id)) from t");

beforeAll(async () => {
  backend = await startBackend('a local directory', scratch);
  env = archivingEnv(backend.env, postgresDirectory());
  primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60 } });
  clusters.push(primary);
  primary.start();
  // ~60 MB in one table: its file is restored in ranges, by two threads, over a while.
  primary.sql('create table t(id int, payload text)');
  primary.sql("insert into t select g, repeat(md5(g::text), 8) from generate_series(1, 200000) g");
}, 120_000);

afterAll(async () => {
  stopArchiver(env);
  for (const cluster of clusters) await cluster.remove();
  await backend?.stop();
}, 120_000);

describe('bootstrap killed half-way through its restore', () => {
  it('leaves the data directory empty; the next run restores completely and the server has every row', async () => {
    const pushed = archiver(['backup-push', '--no-progress', '--part-size-mib', '4'], { ...env, PGHOST: primary.baseDir, PGPORT: String(primary.port) });
    expect(pushed.status).toBe(0);
    const relation = primary.sql("select pg_relation_filepath('t')");
    const relationBytes = Number(primary.sql("select pg_relation_size('t')"));
    primary.sql("insert into t select g, 'after the backup' from generate_series(200001, 201000) g");
    primary.sql('select pg_switch_wal()');
    await primary.waitForArchiving();
    const before = rows(primary);
    primary.stop('immediate');

    // The volume: an empty directory, as pod 0 finds it.
    const directory = path.join(postgresDirectory(), 'pgdata');
    fs.mkdirSync(directory, { mode: 0o700 });
    giveToPostgres(directory);
    const staging = `${directory}.restore`;
    const bootstrapEnv = { ...backend.env, ARCHIVER_DAEMON: 'off' };

    const first = spawnArchiverAsPostgres(['bootstrap', directory, '--no-progress'], bootstrapEnv);
    let stdout = '';
    let stderr = '';
    first.stdout.on('data', (d) => (stdout += d));
    first.stderr.on('data', (d) => (stderr += d));
    const closed = new Promise((resolve) => first.once('close', resolve));
    // Wherever it writes the table's file: the test must not take the staging for granted.
    await killHalfWay(first, [path.join(staging, relation), path.join(directory, relation)], relationBytes, () => stderr);
    await closed;
    expect(stderr).toMatch(/msg="restore started"/);
    expect(stderr).not.toMatch(/msg="restore complete"/);
    expect(stdout).toBe('');
    // Nothing that could be taken for a database: the directory is as it was, empty; the partial
    // restore is under its own name, without the backup_label that would let it be started.
    expect(fs.readdirSync(directory)).toEqual([]);
    // (the table's file, part of it: which other files a killed restore has written depends on the
    // order of its parts)
    expect(fs.existsSync(path.join(staging, relation))).toBe(true);
    expect(fs.existsSync(path.join(staging, 'backup_label'))).toBe(false);
    // No thread or child of it goes on writing.
    expect(processesMentioning(staging)).toEqual([]);

    const second = archiver(['bootstrap', directory, '--no-progress'], bootstrapEnv);
    expect(second.stderr).toMatch(/msg="bootstrap: the archive at file:\/\/\S+ holds a complete backup: restoring the newest/);
    expect(second.status).toBe(0);
    expect(second.stdout).toBe('restored\n');
    expect(fs.existsSync(staging)).toBe(false);
    expect(fs.statSync(path.join(directory, relation)).size).toBe(relationBytes);

    const restored = await startRestored(directory, bootstrapEnv);
    expect(rows(restored)).toBe(before);
    expect(restored.sql('select pg_is_in_recovery()')).toBe('f');
  }, 120_000);
});

/**
 * Stops the bootstrap (SIGSTOP) once part of a file of `bytes` is restored (at one of `places`),
 * and kills it (SIGKILL) if it is still half-way then: the file far from whole.
 */
async function killHalfWay(child: ChildProcessWithoutNullStreams, places: readonly string[], bytes: number, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  const written = () =>
    Math.max(
      ...places.map((file) => {
        try {
          return fs.statSync(file).blocks * 512;
        } catch {
          return 0;
        }
      }),
    );
  for (;;) {
    if (Date.now() > deadline) throw new Error(`the restore did not get half-way:\n${stderr()}`);
    if (child.exitCode !== null) throw new Error(`the bootstrap ended before it was killed:\n${stderr()}`);
    if (written() > 4 * 1024 * 1024) {
      child.kill('SIGSTOP');
      if (written() < bytes * 0.75) {
        child.kill('SIGKILL');
        return;
      }
      child.kill('SIGCONT');
      throw new Error(`the restore was nearly done before it could be stopped (${written()} of ${bytes} bytes)`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Starts the server on a bootstrapped directory and waits until it has recovered and promoted. */
async function startRestored(directory: string, clusterEnv: Record<string, string>): Promise<PostgresCluster> {
  // PostgresCluster runs a directory in place only when it is named `data`.
  const data = path.join(path.dirname(directory), 'data');
  fs.renameSync(directory, data);
  const cluster = await PostgresCluster.create({ inPlaceDataDirectory: data, env: clusterEnv, settings: { archive_mode: 'off' } });
  clusters.push(cluster);
  cluster.start(false);
  await cluster.waitForRecoveryEnd(120_000);
  return cluster;
}
