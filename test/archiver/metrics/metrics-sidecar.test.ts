/**
 * The `archiver` sidecar's metrics, scraped over HTTP as Prometheus would, from the built launcher's
 * `daemon` run as the pod runs it (as postgres, POD_NAME, PGHOST at the server's socket, PGDATA,
 * ARCHIVER_METRICS_PORT) beside a real PostgreSQL 15 archiving through it to s3rver: the backup
 * metrics change when the sidecar takes the first backup; the backlog gauge rises while the
 * storage is down and falls to zero once it is back; the lag in bytes is pg_current_wal_insert_lsn()
 * minus the end of the archived WAL that pg_stat_archiver reports.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVER_ENV, ARCHIVER_METRICS, METRICS_PATH } from '../../../contract';
import { parseLsn } from '../../../archiver/src/backup/lsn';
import { LAUNCHER, logLines, runArchiver, scrapeMetrics, startSidecar, stopSidecar } from '../../../testkit/archiver';
import { waitUntil } from '../../../testkit/doubles';
import { freePort } from '../../../testkit/ports';
import { PostgresCluster, giveToPostgres, postgresUser } from '../../../testkit/postgres';
import { S3Server, startS3Server } from '../../../testkit/s3-server';

const M = Object.fromEntries(Object.entries(ARCHIVER_METRICS).map(([key, metric]) => [key, metric.name])) as { [K in keyof typeof ARCHIVER_METRICS]: string };
const SEGMENT = 16 * 1024 * 1024;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'metrics-sidecar-'));
fs.chmodSync(scratch, 0o755);
let s3: S3Server | undefined;
let server: PostgresCluster | undefined;
let sidecar: ChildProcess | undefined;
let port: number;
let archiveEnv: Record<string, string>;
const logFile = path.join(scratch, 'sidecar.log');

/** One scrape: `name{labels}` → value. */
async function scrape(): Promise<Map<string, number>> {
  const samples = await scrapeMetrics(port, METRICS_PATH);
  expect(samples, 'a 200 answer in Prometheus\'s text format').toBeDefined();
  return samples!;
}

/** Scrapes until `condition` holds of a scrape; returns that scrape. */
async function scrapeUntil(condition: (m: Map<string, number>) => boolean, what: string, timeoutMs = 30_000): Promise<Map<string, number>> {
  let last = new Map<string, number>();
  await waitUntil(async () => condition((last = await scrape())), what, timeoutMs).catch((error: Error) => {
    throw new Error(`${error.message}; last scrape: ${JSON.stringify(Object.fromEntries([...last].filter(([k]) => !k.includes('_bucket'))))}`);
  });
  return last;
}

beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['kubedb'] });
  archiveEnv = {
    ARCHIVER_REPOSITORY: 's3://kubedb/kubedb/demo/db/archive',
    ARCHIVER_S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    ARCHIVER_S3_CHECKSUMS: 'when_required',
    ARCHIVER_SPOOL: path.join(scratch, 'spool'),
    // A storage that is down fails a push at once.
    ARCHIVER_MAX_ATTEMPTS: '1',
    ARCHIVER_TIMEOUT_SECONDS: '5',
  };
  giveToPostgres(scratch);
  // Created, not started: the pod's two containers start together.
  server = await PostgresCluster.create({
    env: { ...archiveEnv, ARCHIVER_DAEMON: 'external' },
    settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` },
  });
  port = await freePort();
  sidecar = await startSidecar(
    [LAUNCHER, 'daemon'],
    {
      ...archiveEnv,
      [ARCHIVER_ENV.daemonIdleSeconds]: '0',
      [ARCHIVER_ENV.podName]: 'db-0',
      [ARCHIVER_ENV.metricsPort]: String(port),
      PGHOST: server.baseDir,
      PGPORT: String(server.port),
      PGDATA: server.dataDir,
    },
    { logFile, cwd: scratch, ...postgresUser() },
  );
}, 120_000);

afterAll(async () => {
  if (sidecar) await stopSidecar(sidecar);
  await server?.remove();
  await s3?.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('the sidecar\'s metrics', () => {
  it('before the server starts: it is down, the archive holds no backup, the volume is measured', async () => {
    // The archive is listed once at start, in the background.
    const m = await scrapeUntil((s) => s.has(M.backups), 'the first listing of the archive');
    expect(m.get(M.postgresUp)).toBe(0);
    expect(m.get(M.backups)).toBe(0);
    expect(m.get(M.backupLastCompletion)).toBe(0);
    expect(m.get(`${M.backupsTaken}{reason="at-ready"}`)).toBe(0);
    const statfs = fs.statfsSync(scratch);
    expect(m.get(M.volumeSize)).toBe(statfs.blocks * statfs.bsize);
    expect(m.get(M.volumeAvailable)).toBeGreaterThan(0);
    expect(m.get(M.volumeUsed)).toBeGreaterThan(0);
    expect(m.get(M.walReadyFiles)).toBe(0);
    // Nothing is known of a server that does not answer: no lag, no archiver statistics.
    expect(m.has(M.archiveLagBytes)).toBe(false);
    expect(m.has(M.lastArchived)).toBe(false);
    expect(m.get(`${M.buildInfo}{version="0.1.0"}`)).toBe(1);
    // Pod 0 is the primary: no "standby streaming" series.
    expect(m.has(M.standbyStreaming)).toBe(false);
  });

  it('the backup metrics change when the sidecar takes the new primary\'s first backup', async () => {
    server!.start();
    server!.sql('create table t(id int, pad text); insert into t select g, md5(g::text) from generate_series(1, 20000) g');
    const m = await scrapeUntil((s) => s.get(M.backups) === 1 && s.get(M.postgresUp) === 1, 'the first backup in the metrics', 60_000);
    const [backup] = JSON.parse(runArchiver(['backup-list', '--json'], { ...archiveEnv, ARCHIVER_DAEMON: 'off' }).stdout);
    expect(m.get(`${M.backupsTaken}{reason="at-ready"}`)).toBe(1);
    expect(m.get(`${M.backupFailures}{reason="at-ready"}`)).toBe(0);
    expect(m.get(M.backupLastCompletion)).toBe(Date.parse(backup.stopTime) / 1000);
    expect(m.get(M.recoveryWindowStart)).toBe(Date.parse(backup.stopTime) / 1000);
    expect(m.get(M.backupLastDuration)).toBe((Date.parse(backup.stopTime) - Date.parse(backup.startTime)) / 1000);
    expect(m.get(M.backupLastSize)).toBeGreaterThan(20_000_000);
    expect(m.get(M.archiveCreated)).toBeGreaterThan(Date.now() / 1000 - 120);
    expect(m.get(M.postgresUp)).toBe(1);
    expect(m.get(M.postgresInRecovery)).toBe(0);
    expect(m.get(`${M.walPushedFiles}{ahead="false"}`)! + m.get(`${M.walPushedFiles}{ahead="true"}`)!).toBeGreaterThan(0);
  }, 90_000);

  it('the backlog rises while the storage is down, failures are counted by reason, and it falls to zero once the storage is back', async () => {
    await server!.waitForArchiving();
    await s3!.crash();
    for (let i = 0; i < 3; i++) server!.sql(`insert into t select g, md5(g::text) from generate_series(1, 1000) g; select pg_switch_wal()`);
    const down = await scrapeUntil((s) => s.get(M.walReadyFiles)! >= 3 && s.get(M.postgresArchiveFailures)! > 0, 'the backlog in the metrics');
    expect(down.get(M.walReadyBytes)).toBe(down.get(M.walReadyFiles)! * SEGMENT);
    expect(down.get(M.walOldestReadyAge)).toBeGreaterThan(0);
    expect(down.get(M.lastArchiveFailure)).toBeGreaterThan(down.get(M.lastArchived)!);
    expect(down.get(`${M.walPushFailures}{reason="StorageError"}`)).toBeGreaterThan(0);
    // Three whole segments and the start of the fourth are not archived.
    expect(down.get(M.archiveLagBytes)).toBeGreaterThan(3 * SEGMENT);
    expect(down.get(M.archiveLagBytes)).toBe(down.get(M.walInsertPosition)! - down.get(M.walArchivedPosition)!);
    expect(down.get(M.archiveLagSeconds)).toBeGreaterThan(0);

    await s3!.restart();
    // A new ready file wakes PostgreSQL's archiver (it waits a minute after three failures) and the sidecar's push-ahead.
    server!.sql('insert into t values (0); select pg_switch_wal()');
    const back = await scrapeUntil((s) => s.get(M.walReadyFiles) === 0, 'the backlog to drain', 60_000);
    expect(back.get(M.walReadyBytes)).toBe(0);
    expect(back.get(M.walOldestReadyAge)).toBe(0);
    expect(back.get(M.lastArchived)).toBeGreaterThan(down.get(M.lastArchiveFailure)!);
    expect(back.get(M.archiveLagBytes)).toBeLessThan(SEGMENT);
    // The sidecar pushed every file of the backlog (asked for or ahead: metrics-daemon.test.ts tells them apart).
    const pushed = (s: Map<string, number>) => s.get(`${M.walPushedFiles}{ahead="true"}`)! + s.get(`${M.walPushedFiles}{ahead="false"}`)!;
    expect(pushed(back) - pushed(down)).toBeGreaterThanOrEqual(down.get(M.walReadyFiles)!);
    expect(back.get(`${M.walCallDuration}_count{operation="push"}`)).toBeGreaterThan(0);
    expect(back.get(M.recoveryWindowEnd)).toBe(back.get(M.lastArchived));
    // The server down before it started is the only look that failed, and how every pod starts: no warning
    // (the storage is listed every 5 min: it was up then).
    const lines = logLines(fs.readFileSync(logFile, 'utf8')).filter((line) => line.msg?.startsWith('metrics: a look failed'));
    expect(lines.map((line) => [line.look, line.level])).toEqual([['postgres', 'info']]);
  }, 120_000);

  it('the lag in bytes is pg_current_wal_insert_lsn() minus the end of the last segment pg_stat_archiver reports archived', async () => {
    server!.sql('insert into t select g, md5(g::text) from generate_series(1, 5000) g');
    const insert = () => Number(parseLsn(server!.sql('select pg_current_wal_insert_lsn()')));
    // The server is idle now: the sidecar's look sees the position the server reports.
    const m = await scrapeUntil((s) => s.get(M.walInsertPosition) === insert(), 'a look after the insert', 30_000);
    const lastArchived = server!.sql('select last_archived_wal from pg_stat_archiver');
    // Segment LLLLLLLL SSSSSSSS (of timeline TTTTTTTT) ends where segment S + 1 of log L starts.
    const archivedEnd = parseInt(lastArchived.slice(8, 16), 16) * 2 ** 32 + (parseInt(lastArchived.slice(16, 24), 16) + 1) * SEGMENT;
    expect(m.get(M.walArchivedPosition)).toBe(archivedEnd);
    expect(m.get(M.archiveLagBytes)).toBe(insert() - archivedEnd);
    expect(m.get(M.archiveLagBytes)).toBeGreaterThan(0);
    expect(m.get(M.archiveLagSeconds)).toBeGreaterThan(0);
    // Switched and archived: the lag is what was written since, if anything (a background record).
    server!.sql('select pg_switch_wal()');
    await server!.waitForArchiving();
    const switched = await scrapeUntil((s) => s.get(M.walArchivedPosition)! >= archivedEnd + SEGMENT, 'the switched segment archived', 30_000);
    expect(switched.get(M.archiveLagBytes)).toBeLessThan(8192);
  }, 60_000);
});

describe('the bundles', () => {
  it('prom-client and the metrics are a bundle of their own, which the WAL calls never load', () => {
    const lib = path.join(path.dirname(LAUNCHER), '..', 'lib');
    const main = fs.readFileSync(path.join(lib, 'archiver.cjs'), 'utf8');
    const metrics = fs.readFileSync(path.join(lib, 'metrics.cjs'), 'utf8');
    expect(main).toContain('./metrics.cjs');
    expect(main).not.toContain('prom-client');
    expect(main).not.toContain('var ArchiverMetrics = class');
    expect(metrics).toContain('var ArchiverMetrics = class');
    expect(metrics).toContain('function startMetrics');
    // prom-client's registry, bundled (the image ships no node_modules but the native codecs).
    expect(metrics).toContain('contentType');
    expect(metrics).not.toMatch(/require\("prom-client"\)/);
  });
});
