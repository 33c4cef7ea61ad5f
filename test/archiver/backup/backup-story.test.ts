/**
 * The whole story of base backups, exact to the row, once per backend (a local directory, s3rver,
 * the GCS emulator) with real PostgreSQL 15: a primary archives through the archiver; backup-push;
 * rows written in batches with a time, a restore point, a transaction id and an LSN noted between
 * them; then clusters restored by backup-fetch to each target hold exactly the batches before it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND_NAMES, TestBackend, startBackend } from '../../../testkit/backends';
import { LAUNCHER, runArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { PostgresCluster, giveToPostgres } from '../../../testkit/postgres';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-story-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** As the sidecar runs it: as postgres, beside the server. */
const archiver = runArchiverAsPostgres;

const BATCH_ROWS = 2000;

function insertBatch(cluster: PostgresCluster, batch: number): void {
  cluster.sql(`insert into story select ${batch}, g, md5(g::text) from generate_series(1, ${BATCH_ROWS}) g`);
}

/** `batch:count` of every batch present, in order. */
function batches(cluster: PostgresCluster): string {
  return cluster.sql("select string_agg(batch || ':' || n, ' ' order by batch) from (select batch, count(*) n from story group by batch) s");
}

function expectedBatches(upTo: number): string {
  return Array.from({ length: upTo }, (_, i) => `${i + 1}:${BATCH_ROWS}`).join(' ');
}

describe.each(BACKEND_NAMES)('base backups on %s', (backendName) => {
  let backend: TestBackend;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  const noted: { time?: string; xid?: string; lsn?: string; backup?: string } = {};

  beforeAll(async () => {
    backend = await startBackend(backendName, scratch);
    const base = fs.mkdtempSync(path.join(scratch, 'case-'));
    fs.chmodSync(base, 0o755);
    giveToPostgres(base);
    env = { ...backend.env, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log') };
    primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60 } });
    primary.start();
    primary.sql('create table story(batch int, id int, payload text)');
    insertBatch(primary, 1);
  }, 120_000);

  afterAll(async () => {
    stopArchiver(env);
    await primary?.remove();
    await backend?.stop();
  });

  /** The server's connection for the archiver: its socket directory and port. */
  const serverEnv = () => ({ ...env, PGHOST: primary.baseDir, PGPORT: String(primary.port) });

  it('backup-push takes a backup that backup-list shows, complete with its WAL', () => {
    const pushed = archiver(['backup-push', '--json'], serverEnv());
    expect(pushed.stderr).toMatch(/msg="backup complete"/);
    expect(pushed.status).toBe(0);
    const summary = JSON.parse(pushed.stdout);
    expect(summary.name).toMatch(/^base_\d{8}T\d{6}Z$/);
    expect(summary.from).toBe('primary');
    expect(summary.timeline).toBe(1);
    expect(summary.systemIdentifier).toBe(primary.sql('select system_identifier from pg_control_system()'));
    noted.backup = summary.name;

    const listed = archiver(['backup-list', '--json'], env);
    expect(listed.status).toBe(0);
    expect(JSON.parse(listed.stdout).map((b: { name: string }) => b.name)).toEqual([summary.name]);
    const table = archiver(['backup-list'], env);
    expect(table.stdout.split('\n')[0]).toMatch(/^name\s+started \(UTC\)\s+finished \(UTC\)\s+start LSN\s+stop LSN\s+timeline\s+size MiB\s+stored MiB\s+seconds\s+from\s+type$/);
    expect(table.stdout).toContain(`${summary.name}  `);
  }, 180_000);

  it('notes a time, a restore point, a transaction and an LSN between batches of rows', async () => {
    insertBatch(primary, 2);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    noted.time = primary.sql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    insertBatch(primary, 3);
    primary.sql("select pg_create_restore_point('before-batch-4')");
    insertBatch(primary, 4);
    noted.xid = primary.sql(`begin; insert into story select 5, g, md5(g::text) from generate_series(1, ${BATCH_ROWS}) g; select pg_current_xact_id(); commit;`);
    insertBatch(primary, 6);
    noted.lsn = primary.sql('select pg_current_wal_insert_lsn()');
    insertBatch(primary, 7);
    primary.sql('select pg_switch_wal()');
    await primary.waitForArchiving();
    expect(noted.xid).toMatch(/^\d+$/);
    expect(batches(primary)).toBe(expectedBatches(7));
  }, 120_000);

  const targets: [string, () => string[], number][] = [
    ['a time (ISO 8601 with a zone)', () => ['--target-time', noted.time!], 2],
    ['a restore point', () => ['--target-name', 'before-batch-4'], 3],
    ['a transaction id (inclusive)', () => ['--target-xid', noted.xid!], 5],
    ['an LSN', () => ['--target-lsn', noted.lsn!], 6],
    ['the end of the archive', () => [], 7],
  ];

  it.each(targets)('backup-fetch restores to %s, and the recovered server holds exactly the rows before it', async (_what, args, upTo) => {
    // Where the sidecar (postgres) may create it.
    const parent = fs.mkdtempSync(path.join(scratch, 'restore-'));
    giveToPostgres(parent);
    const directory = path.join(parent, 'data');
    const restoreEnv = { ...backend.env, ARCHIVER_DAEMON: 'off' };
    const fetched = archiver(['backup-fetch', 'LATEST', directory, ...args(), '--recovery', '--restore-command', `${LAUNCHER} wal-fetch %f %p`], restoreEnv);
    expect(fetched.stderr).toMatch(/msg="restore complete"/);
    expect(fetched.status).toBe(0);
    expect(fetched.stdout.trim()).toBe(noted.backup);
    expect(fs.existsSync(path.join(directory, 'recovery.signal'))).toBe(true);
    expect(fs.readFileSync(path.join(directory, 'backup_label'), 'utf8')).toMatch(/^START WAL LOCATION: /);
    const restored = await PostgresCluster.create({ env: restoreEnv, fromDataDirectory: directory, settings: { archive_mode: 'off' } });
    try {
      restored.start(false);
      await restored.waitForRecoveryEnd(180_000);
      expect(batches(restored)).toBe(expectedBatches(upTo));
      expect(restored.sql('select pg_is_in_recovery()')).toBe('f');
    } finally {
      await restored.remove();
      fs.rmSync(parent, { recursive: true, force: true });
    }
  }, 240_000);
});
