/**
 * The sidecar's backup scheduler (backup/backup-scheduler.ts) driven in-process — its ticks and
 * readiness checks called directly instead of waiting for the clock — against a real PostgreSQL
 * 15 primary and a streaming standby archiving into a real archive (a local directory): who takes
 * the backup, the lease between two schedulers firing at once, retention after a scheduled backup,
 * a tick while a backup runs, and failures that are logged and tried again.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LEASE_KEY, encodeLease } from '../../../archiver/src/backup/backup-lease';
import { BackupScheduler, type BackupSchedulerProps, type SchedulerOutcome } from '../../../archiver/src/backup/backup-scheduler';
import { backupName, listBackups } from '../../../archiver/src/backup/catalog';
import type { Archive } from '../../../archiver/src/archive';
import { readConfig, type ArchiverConfig, type BackupSettings } from '../../../archiver/src/config';
import { openRepository } from '../../../archiver/src/repository';
import { LAUNCHER, type LogLine } from '../../../testkit/archiver';
import { capturingLogger, waitUntil } from '../../../testkit/doubles';
import { PostgresCluster, giveToPostgres } from '../../../testkit/postgres';
import { startStreamingStandby } from '../../../testkit/replication';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-scheduler-'));
fs.chmodSync(scratch, 0o755);
const repository = path.join(scratch, 'archive');
fs.mkdirSync(repository);
giveToPostgres(repository);

let primary: PostgresCluster | undefined;
let standby: PostgresCluster | undefined;
let config: ArchiverConfig;
let archive: Archive;
const schedulers: BackupScheduler[] = [];

beforeAll(async () => {
  // PostgreSQL archives through the archiver, each call alone (no background archiver here).
  const env = { ARCHIVER_REPOSITORY: `file://${repository}`, ARCHIVER_DAEMON: 'off' };
  const archiving = { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` };
  primary = await PostgresCluster.create({ env, settings: archiving });
  primary.start();
  primary.sql('create table t(id int); insert into t select generate_series(1, 1000)');
  // The first archived segment creates archive.json and wal/ as postgres, as in a pod.
  primary.sql('select pg_switch_wal()');
  await primary.waitForArchiving();
  // It archives once promoted (the last test).
  standby = await startStreamingStandby(primary, env, archiving);
  config = readConfig({ ARCHIVER_REPOSITORY: `file://${repository}`, ARCHIVER_WORKERS: '0' }, scratch, () => false);
  archive = await openRepository(config);
}, 120_000);

afterAll(async () => {
  for (const scheduler of schedulers) await scheduler.stop();
  await archive?.close();
  await standby?.remove();
  await primary?.remove();
  fs.rmSync(scratch, { recursive: true, force: true });
});

function settings(podName: string, extra: Partial<BackupSettings> = {}): BackupSchedulerProps['settings'] {
  return { podName, ordinal: Number(podName.split('-').pop()), atReady: true, schedule: '0 2 * * *', from: 'primary', retain: undefined, windowMs: undefined, ...extra };
}

/** A scheduler of member `podName` whose server is `server`, logging into its own list. */
function scheduler(podName: string, server: PostgresCluster, extra: Partial<BackupSettings> = {}, props: Partial<BackupSchedulerProps> = {}): { scheduler: BackupScheduler; lines: LogLine[] } {
  const { log, lines } = capturingLogger();
  const created = new BackupScheduler({
    config,
    archive,
    log,
    settings: settings(podName, extra),
    connection: { host: server.baseDir, port: server.port },
    // Backups here follow each other within seconds: no allowance for clocks apart.
    timing: { standbyStepMs: 200, primaryFallbackMs: 60_000, retryMinMs: 1000, clockSkewMs: 0 },
    backup: { walTimeoutSeconds: 60 },
    ...props,
  });
  schedulers.push(created);
  return { scheduler: created, lines };
}

const names = async () => (await listBackups(archive.storage)).map((b) => b.name);
const messages = (lines: LogLine[]) => lines.map((line) => line.msg);

describe('at ready', () => {
  it('a new primary gets its first backup, of its system identifier and timeline; the next check finds it and takes none', async () => {
    const { scheduler: db0, lines } = scheduler('db-0', primary!);
    const outcome = await db0.checkReady();
    expect(outcome).toMatchObject({ kind: 'taken', reason: 'at-ready' });
    const [backup] = await listBackups(archive.storage);
    expect(backup.name).toBe((outcome as { backup: string }).backup);
    expect(backup.systemIdentifier).toBe(primary!.sql('select system_identifier from pg_control_system()'));
    expect(backup.timeline).toBe(1);
    expect(backup.fromStandby).toBe(false);
    expect(lines.find((line) => line.msg === 'taking a base backup')).toMatchObject({ reason: 'at-ready', member: 'db-0', role: 'primary', timeline: '1' });
    expect(messages(lines)).toContain('backup complete');
    // The lease is released after the backup.
    expect(await archive.storage.stat(LEASE_KEY)).toBeUndefined();

    expect(await db0.checkReady()).toEqual({ kind: 'skipped', reason: 'at-ready', why: 'the archive holds a backup of this timeline' });
    expect(await names()).toEqual([backup.name]);
  }, 120_000);

  it('a second member, db-1, a standby with ARCHIVER_BACKUP_FROM=primary, takes none, at ready or at a tick', async () => {
    const { scheduler: db1, lines } = scheduler('db-1', standby!);
    const before = await names();
    expect(await db1.checkReady()).toEqual({ kind: 'skipped', reason: 'at-ready', why: 'a standby, and ARCHIVER_BACKUP_FROM=primary' });
    expect(lines.find((line) => line.msg === 'this member takes no backups now')).toMatchObject({ why: 'a standby, and ARCHIVER_BACKUP_FROM=primary' });
    expect(await db1.runTick(new Date())).toMatchObject({ kind: 'skipped', why: 'not this member: a standby, and ARCHIVER_BACKUP_FROM=primary' });
    expect(await names()).toEqual(before);
  }, 60_000);

});

describe('on the schedule', () => {
  it('with ARCHIVER_BACKUP_FROM=standby the streaming standby of ordinal 1 takes the scheduled backup', async () => {
    // A backup of the standby ends when the primary has archived its last segment: switch segments meanwhile.
    const switching = setInterval(() => primary!.sql('select pg_switch_wal()'), 1000);
    try {
      const { scheduler: db1 } = scheduler('db-1', standby!, { from: 'standby' });
      const outcome = await db1.runTick(new Date());
      expect(outcome).toMatchObject({ kind: 'taken', reason: 'schedule' });
      const taken = (await listBackups(archive.storage)).find((b) => b.name === (outcome as { backup: string }).backup)!;
      expect(taken.fromStandby).toBe(true);
    } finally {
      clearInterval(switching);
    }
  }, 120_000);
  it('two schedulers firing at once against one archive: exactly one backup, the other skips on the lease', async () => {
    // Two members that both believe they take the backups (both see the primary): only the lease keeps them apart.
    const a = scheduler('db-0', primary!);
    const b = scheduler('db-1', primary!);
    const before = await names();
    const tick = new Date();
    const outcomes = await Promise.all([a.scheduler.runTick(tick), b.scheduler.runTick(tick)]);
    const skipped = outcomes.filter((o): o is Extract<SchedulerOutcome, { kind: 'skipped' }> => o.kind === 'skipped');
    expect(outcomes.map((o) => o.kind).sort(), JSON.stringify(outcomes)).toEqual(['skipped', 'taken']);
    // The backup-push lock on the data directory was never reached: the lease (or the served tick) came first.
    expect(skipped[0].why).toMatch(/^the backup lease (is held by|was taken by) db-[01]|started since the tick/);
    expect(await names()).toHaveLength(before.length + 1);
    expect([...a.lines, ...b.lines].filter((line) => line.msg === 'taking a base backup')).toHaveLength(1);
    expect(await archive.storage.stat(LEASE_KEY)).toBeUndefined();
  }, 120_000);

  it('a tick while a backup runs is skipped with a log line; retention then keeps ARCHIVER_BACKUP_RETAIN backups', async () => {
    const { scheduler: db0, lines } = scheduler('db-0', primary!, { retain: 2 });
    expect(await names()).toHaveLength(3);
    const running = db0.runTick(new Date());
    const second = await db0.runTick(new Date(Date.now() + 60_000));
    expect(second).toMatchObject({ kind: 'skipped', reason: 'schedule', why: 'a backup is running' });
    expect(lines.find((line) => line.msg === 'scheduled backup skipped')).toMatchObject({ reason: 'schedule', why: 'a backup is running' });
    const first = await running;
    expect(first).toMatchObject({ kind: 'taken', reason: 'schedule' });

    const kept = await listBackups(archive.storage);
    expect(kept.map((b) => b.name)).toHaveLength(2);
    expect(kept[1].name).toBe((first as { backup: string }).backup);
    expect(lines.find((line) => line.msg === 'retention after the scheduled backup')).toMatchObject({ backups_kept: '2' });
    // No WAL older than the oldest kept backup's start is left.
    const wal = (await archive.storage.list('wal/')).map((o) => o.key.slice(4)).filter((n) => /^[0-9A-F]{24}$/.test(n));
    expect(wal.every((n) => n.slice(8) >= kept[0].startWal.slice(8))).toBe(true);
  }, 120_000);

  it('a lease an earlier run of this member left behind (the pod restarted mid-backup) does not hold it back', async () => {
    const stale = { format: 1 as const, member: 'db-0', token: 'f'.repeat(32), purpose: 'schedule', acquiredAt: new Date(Date.now() - 60_000).toISOString(), renewedAt: new Date(Date.now() - 60_000).toISOString(), expiresAt: new Date(Date.now() + 540_000).toISOString() };
    await archive.storage.put(LEASE_KEY, encodeLease(stale));
    const { scheduler: db0, lines } = scheduler('db-0', primary!, { retain: 2 });
    expect(await db0.runTick(new Date())).toMatchObject({ kind: 'taken' });
    expect(lines.find((line) => line.msg === 'taking a base backup')?.lease_replaced).toMatch(/^left by an earlier run of db-0/);
    expect(await archive.storage.stat(LEASE_KEY)).toBeUndefined();
  }, 120_000);

  it('a backup in the same second as another (the name is one per second) takes a later name and leaves the other alone', async () => {
    // Objects under the names of this second and the next two: another backup's, unfinished or done.
    const now = Date.now();
    const taken = [0, 1, 2].map((s) => backupName(new Date(now + s * 1000)));
    for (const name of taken) await archive.storage.put(`basebackups/${name}/parts/0000.tar`, Buffer.from('another backup'));
    try {
      const { scheduler: db0 } = scheduler('db-0', primary!);
      const outcome = await db0.runTick(new Date());
      expect(outcome).toMatchObject({ kind: 'taken' });
      expect((outcome as { backup: string }).backup > taken[2]).toBe(true);
      for (const name of taken) expect((await archive.storage.get(`basebackups/${name}/parts/0000.tar`)).toString()).toBe('another backup');
    } finally {
      await archive.storage.delete(taken.map((name) => `basebackups/${name}/parts/0000.tar`));
    }
  }, 120_000);

  it('a server that cannot be reached fails the tick with a log line, and the next tick works', async () => {
    const { scheduler: down, lines } = scheduler('db-0', primary!, {}, { connection: { host: path.join(scratch, 'no-socket-here'), port: primary!.port } });
    const outcome = await down.runTick(new Date());
    expect(outcome).toMatchObject({ kind: 'failed', reason: 'schedule' });
    const failed = lines.find((line) => line.msg === 'scheduled backup failed')!;
    expect(failed).toMatchObject({ level: 'error', reason: 'schedule', error_name: 'PostgresError' });
    expect(failed.error).toMatch(/cannot connect to PostgreSQL at .*no-socket-here/);
    expect(failed.next).toMatch(/T02:00:00\.000Z$/);

    // At ready the same server is only waited for: one line, however many checks.
    expect(await down.checkReady()).toMatchObject({ kind: 'skipped', why: 'PostgreSQL does not accept connections' });
    await down.checkReady();
    expect(lines.filter((line) => line.msg === 'waiting for PostgreSQL to accept connections')).toHaveLength(1);
  }, 60_000);
});

describe('the clock', () => {
  it('fires at each tick of the schedule in UTC, says when the next one is, and a failed tick does not stop the next', async () => {
    vi.useFakeTimers({ now: new Date('2026-11-30T10:02:30Z'), toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    try {
      // No server behind this socket: every tick fails at once, which is all this test needs of it.
      const { scheduler: ticking, lines } = scheduler('db-0', primary!, { atReady: false, schedule: '*/5 * * * *' }, { connection: { host: path.join(scratch, 'no-socket-here'), port: 5432 } });
      ticking.start();
      expect(lines.find((line) => line.msg === 'backup scheduled')).toMatchObject({ next: '2026-11-30T10:05:00.000Z', schedule: '*/5 * * * *', at_ready: 'off' });
      const failures = () => lines.filter((line) => line.msg === 'scheduled backup failed');

      await vi.advanceTimersByTimeAsync(2 * 60_000 + 29_000);
      expect(failures()).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(1_000);
      await vi.waitFor(() => expect(failures()).toHaveLength(1));
      expect(failures()[0]).toMatchObject({ reason: 'schedule', error_name: 'PostgresError', next: '2026-11-30T10:10:00.000Z' });

      await vi.advanceTimersByTimeAsync(5 * 60_000);
      await vi.waitFor(() => expect(failures()).toHaveLength(2));
      expect(failures()[1]).toMatchObject({ next: '2026-11-30T10:15:00.000Z' });
      await ticking.stop();
      await vi.advanceTimersByTimeAsync(10 * 60_000);
      expect(failures()).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('after a promotion', () => {
  it('the promoted standby, now the primary on a new timeline, gets the first backup of that timeline at ready', async () => {
    const { scheduler: db1, lines } = scheduler('db-1', standby!);
    expect(await db1.checkReady()).toMatchObject({ kind: 'skipped', why: 'a standby, and ARCHIVER_BACKUP_FROM=primary' });
    primary!.stop();
    // Asked at once after the promotion, before its checkpoint: the timeline is the one WAL is written on.
    standby!.sql('select pg_promote()');

    const outcome = await db1.checkReady();
    expect(outcome).toMatchObject({ kind: 'taken', reason: 'at-ready' });
    const backup = (await listBackups(archive.storage)).find((b) => b.name === (outcome as { backup: string }).backup)!;
    expect(backup).toMatchObject({ timeline: 2, fromStandby: false });
    expect(lines.find((line) => line.msg === 'taking a base backup')).toMatchObject({ reason: 'at-ready', member: 'db-1', role: 'primary', timeline: '2' });
    expect(await db1.checkReady()).toMatchObject({ kind: 'skipped', why: 'the archive holds a backup of this timeline' });
  }, 120_000);
});

describe('a new database\'s first start, as the official image\'s entrypoint runs it', () => {
  // A database of its own, with an archive of its own: at ready, nothing of it is archived yet.
  // Its specs run in order, the second where the first left it: the entrypoint's temporary
  // server, then the server of the pod.
  const newRepository = path.join(scratch, 'new-archive');
  let server: PostgresCluster | undefined;
  let newArchive: Archive;
  let newConfig: ArchiverConfig;
  const newNames = async () => (await listBackups(newArchive.storage)).map((b) => b.name);

  beforeAll(async () => {
    fs.mkdirSync(newRepository);
    giveToPostgres(newRepository);
    const env = { ARCHIVER_REPOSITORY: `file://${newRepository}`, ARCHIVER_DAEMON: 'off' };
    // The entrypoint's temporary server: initdb's data directory, listening on the Unix socket only.
    server = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, listen_addresses: "''" } });
    newConfig = readConfig({ ARCHIVER_REPOSITORY: `file://${newRepository}`, ARCHIVER_WORKERS: '0' }, scratch, () => false);
    newArchive = await openRepository(newConfig);
  }, 120_000);

  afterAll(async () => {
    await newArchive?.close();
    await server?.remove();
  });

  it('the entrypoint\'s temporary server (listen_addresses = \'\': the Unix socket only, stopped again at once) is waited for: no backup of it, at ready or at a tick', async () => {
    const { scheduler: db0, lines } = scheduler('db-0', server!, {}, { config: newConfig, archive: newArchive });
    server!.start();
    // Its init scripts run meanwhile; its first archived segment creates the archive as postgres, as in a pod.
    server!.sql('create table t(id int); insert into t select generate_series(1, 1000)');
    server!.sql('select pg_switch_wal()');
    await server!.waitForArchiving();

    const waiting = await db0.checkReady();
    expect(waiting).toMatchObject({ kind: 'skipped', reason: 'at-ready', why: expect.stringMatching(/^PostgreSQL listens on its Unix socket only \(listen_addresses is empty\)/) });
    expect(await db0.checkReady()).toEqual(waiting);
    expect(lines.filter((line) => line.msg === 'waiting for PostgreSQL to finish initialising')).toHaveLength(1);
    expect(messages(lines)).not.toContain('PostgreSQL accepts connections');
    expect(await db0.runTick(new Date())).toMatchObject({ kind: 'skipped', reason: 'schedule', why: (waiting as { why: string }).why });
    expect(messages(lines)).not.toContain('taking a base backup');
    expect(await newNames()).toEqual([]);
    expect(await newArchive.storage.list('basebackups/')).toEqual([]);
  }, 60_000);

  it('a backup at ready that a fast shutdown cuts short (the server stopped or restarted mid-backup) fails with a log line, lists nothing, releases the lease; the server back, it is taken again after the back-off', async () => {
    // The entrypoint stops its temporary server; the server of the pod starts.
    server!.stop('fast');
    server!.configure({ listen_addresses: "'127.0.0.1'" });
    server!.start();
    server!.sql("insert into t select generate_series(1, 300000); create table pad as select g, md5(g::text) from generate_series(1, 200000) g");
    const { scheduler: db0, lines } = scheduler('db-0', server!, {}, { config: newConfig, archive: newArchive });

    // The backup's session holds a backup between pg_backup_start and pg_backup_stop: stop the server then.
    const attempt = db0.checkReady();
    const inBackup = "select count(*) from pg_stat_activity where application_name = 'archiver backup' and state = 'idle' and query like '%pg_backup_start%'";
    await waitUntil(() => server!.sql(inBackup) === '1', 'the backup to be between pg_backup_start and pg_backup_stop', 30_000);
    server!.stop('fast');
    expect(server!.log()).toContain('aborting backup due to backend exiting before pg_backup_stop was called');

    const outcome = await attempt;
    expect(outcome).toMatchObject({ kind: 'failed', reason: 'at-ready' });
    const failed = lines.find((line) => line.msg === 'scheduled backup failed')!;
    expect(failed).toMatchObject({ level: 'error', reason: 'at-ready', error_name: 'PostgresError' });
    expect(failed.error).toMatch(/^PostgreSQL ended the session \(terminating connection due to administrator command\)/);
    expect(lines.find((line) => line.msg === 'backup failed: nothing of it is listed')).toBeDefined();
    expect(await newNames()).toEqual([]);
    expect(await newArchive.storage.list('basebackups/')).toEqual([]);

    // Back: the next check is within the back-off (retryMinMs), the one after it takes the backup.
    server!.start();
    const backingOff = await db0.checkReady();
    expect(backingOff).toMatchObject({ kind: 'skipped', why: expect.stringMatching(/^retrying after /) });
    await new Promise((resolve) => setTimeout(resolve, Date.parse((backingOff as { why: string }).why.slice('retrying after '.length)) - Date.now() + 50));
    const retried = await db0.checkReady();
    expect(retried).toMatchObject({ kind: 'taken', reason: 'at-ready' });
    const [backup] = await listBackups(newArchive.storage);
    expect(backup).toMatchObject({ name: (retried as { backup: string }).backup, timeline: 1, systemIdentifier: server!.sql('select system_identifier from pg_control_system()') });
    expect(await newArchive.storage.stat(LEASE_KEY)).toBeUndefined();
  }, 120_000);
});
