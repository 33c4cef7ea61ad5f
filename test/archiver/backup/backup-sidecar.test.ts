/**
 * The `archiver` sidecar takes the database's base backups itself, as the pod runs it: the built
 * launcher's `daemon`, as postgres, with POD_NAME, PGHOST at the server's socket directory and
 * ARCHIVER_BACKUP_* in its environment, against real PostgreSQL 15 servers archiving through it.
 * No command is run to take the backup: a new primary gets its first one once it accepts
 * connections; a standby's sidecar (ARCHIVER_BACKUP_FROM=primary) takes none; a restarted sidecar
 * finds the backup and takes no second one; the official image's entrypoint's temporary server
 * (the Unix socket only) gets none, and its fast shutdown costs the sidecar nothing.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAUNCHER, logLines, runArchiver, startSidecar, stopSidecar, type LogLine } from '../../../testkit/archiver';
import { waitUntil } from '../../../testkit/doubles';
import { PostgresCluster, giveToPostgres, postgresUser } from '../../../testkit/postgres';
import { startStreamingStandby } from '../../../testkit/replication';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-sidecar-'));
fs.chmodSync(scratch, 0o755);
const repository = path.join(scratch, 'archive');
for (const dir of [repository, path.join(scratch, 'db-0'), path.join(scratch, 'db-1')]) fs.mkdirSync(dir);
giveToPostgres(scratch);

const archiveEnv = { ARCHIVER_REPOSITORY: `file://${repository}` };
let primary: PostgresCluster | undefined;
let standby: PostgresCluster | undefined;
const sidecars = new Set<ChildProcess>();

/** Pod `podName`'s sidecar beside `server`: its own spool, the server's socket, the environment the constructs render. */
async function sidecar(podName: string, server: PostgresCluster, extra: Record<string, string> = {}): Promise<{ process: ChildProcess; log: () => LogLine[] }> {
  const logFile = path.join(scratch, podName, 'sidecar.log');
  const started = await startSidecar(
    [LAUNCHER, 'daemon'],
    {
      ...archiveEnv,
      ARCHIVER_SPOOL: path.join(scratch, podName, 'spool'),
      ARCHIVER_DAEMON_IDLE_SECONDS: '0',
      POD_NAME: podName,
      PGHOST: server.baseDir,
      PGPORT: String(server.port),
      ARCHIVER_BACKUP_SCHEDULE: '0 2 * * *',
      ARCHIVER_BACKUP_RETAIN: '7',
      ...extra,
    },
    { logFile, cwd: scratch, ...postgresUser() },
  );
  sidecars.add(started);
  return { process: started, log: () => logLines(fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '') };
}

async function stop(process: ChildProcess): Promise<void> {
  await stopSidecar(process);
  sidecars.delete(process);
}

function backups(env: Record<string, string> = archiveEnv): { name: string; systemIdentifier: string; timeline: number; from: string; startTime: string }[] {
  const listed = runArchiver(['backup-list', '--json'], { ...env, ARCHIVER_DAEMON: 'off' });
  if (listed.status !== 0) throw new Error(`backup-list failed: ${listed.stderr}`);
  return JSON.parse(listed.stdout);
}

beforeAll(async () => {
  // The server is created but not started: the pod's two containers start together.
  const serverEnv = { ...archiveEnv, ARCHIVER_SPOOL: path.join(scratch, 'db-0', 'spool'), ARCHIVER_DAEMON: 'external' };
  primary = await PostgresCluster.create({ env: serverEnv, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` } });
}, 120_000);

afterAll(async () => {
  for (const process of sidecars) await stopSidecar(process);
  await standby?.remove();
  await primary?.remove();
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('the sidecar takes base backups without being asked', () => {
  let db0: Awaited<ReturnType<typeof sidecar>>;

  it('a new primary gets its first backup once it accepts connections: no command, no CronJob', async () => {
    db0 = await sidecar('db-0', primary!);
    await waitUntil(() => db0.log().some((line) => line.msg === 'waiting for PostgreSQL to accept connections'), 'the sidecar to wait for the server');
    expect(db0.log().find((line) => line.msg === 'backup scheduled')).toMatchObject({ member: 'db-0', schedule: '0 2 * * *', from: 'primary', at_ready: 'on', retain: '7', next: expect.stringMatching(/T02:00:00\.000Z$/) });
    expect(backups()).toEqual([]);

    primary!.start();
    primary!.sql('create table t(id int); insert into t select generate_series(1, 1000)');
    await waitUntil(() => backups().length === 1, 'the first backup', 60_000);
    const [backup] = backups();
    expect(backup).toMatchObject({ systemIdentifier: primary!.sql('select system_identifier from pg_control_system()'), timeline: 1, from: 'primary' });
    const taking = db0.log().find((line) => line.msg === 'taking a base backup');
    expect(taking).toMatchObject({ member: 'db-0', reason: 'at-ready', role: 'primary', timeline: '1' });
    expect(db0.log().find((line) => line.msg === 'backup complete')).toMatchObject({ backup: backup.name, reason: 'at-ready' });
    // The sidecar's WAL work went on: the server's segments reach the archive through it.
    primary!.sql('select pg_switch_wal()');
    await primary!.waitForArchiving();
  }, 120_000);

  it('a standby\'s sidecar, db-1, with ARCHIVER_BACKUP_FROM=primary, takes none', async () => {
    standby = await startStreamingStandby(primary!);
    const db1 = await sidecar('db-1', standby, { ARCHIVER_BACKUP_FROM: 'primary' });
    await waitUntil(() => db1.log().some((line) => line.msg === 'this member takes no backups now'), 'the standby\'s sidecar to decide', 30_000);
    expect(db1.log().find((line) => line.msg === 'this member takes no backups now')).toMatchObject({ member: 'db-1', why: 'a standby, and ARCHIVER_BACKUP_FROM=primary' });
    expect(db1.log().some((line) => line.msg === 'taking a base backup')).toBe(false);
    expect(backups()).toHaveLength(1);
    await stop(db1.process);
  }, 120_000);

  it('a restarted sidecar finds the backup of this database and timeline and takes no second one', async () => {
    await stop(db0.process);
    const restarted = await sidecar('db-0', primary!);
    await waitUntil(() => restarted.log().filter((line) => line.msg === 'the archive holds a backup of this database and timeline: none due at ready').length === 1, 'the restarted sidecar to look', 30_000);
    // One log for both runs: the first run's backup only.
    expect(restarted.log().filter((line) => line.msg === 'taking a base backup')).toHaveLength(1);
    expect(backups()).toHaveLength(1);
  }, 60_000);
});

describe('a new database\'s first start, as the official image\'s entrypoint runs it', () => {
  it('no backup of the entrypoint\'s temporary server (the Unix socket only), which it stops with a fast shutdown; the first backup is of the server that follows, and the sidecar lives on', async () => {
    // A database of its own, archived apart, in pod fresh-0.
    const repository = path.join(scratch, 'fresh-archive');
    const env = { ARCHIVER_REPOSITORY: `file://${repository}`, ARCHIVER_SPOOL: path.join(scratch, 'fresh-0', 'spool') };
    for (const dir of [repository, path.join(scratch, 'fresh-0')]) fs.mkdirSync(dir);
    giveToPostgres(scratch);
    const archiving = { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` };
    const server = await PostgresCluster.create({ env: { ...env, ARCHIVER_DAEMON: 'external' }, settings: { ...archiving, listen_addresses: "''" } });
    try {
      const fresh = await sidecar('fresh-0', server, env);
      await waitUntil(() => fresh.log().some((line) => line.msg === 'waiting for PostgreSQL to accept connections'), 'the sidecar to wait for the server');

      // initdb is done: the temporary server, its init scripts, stopped as the entrypoint does.
      server.start();
      await waitUntil(() => fresh.log().some((line) => ['waiting for PostgreSQL to finish initialising', 'taking a base backup'].includes(line.msg)), 'the sidecar to look at the temporary server', 20_000);
      server.sql("create table t(id int); insert into t select generate_series(1, 100000); create table pad as select g, md5(g::text) from generate_series(1, 200000) g");
      server.stop('fast');
      // exec postgres: the server of the pod.
      server.configure({ listen_addresses: "'127.0.0.1'" });
      const serving = new Date();
      server.start();

      await waitUntil(() => backups(env).length === 1, 'the first backup', 60_000);
      const [backup] = backups(env);
      expect(backup).toMatchObject({ systemIdentifier: server.sql('select system_identifier from pg_control_system()'), timeline: 1, from: 'primary' });
      // Of the server that serves, not of the temporary one.
      expect(Date.parse(backup.startTime)).toBeGreaterThan(serving.getTime());
      const lines = fresh.log();
      expect(lines.find((line) => line.msg === 'waiting for PostgreSQL to finish initialising')?.why).toMatch(/^PostgreSQL listens on its Unix socket only \(listen_addresses is empty\)/);
      expect(lines.filter((line) => line.msg === 'taking a base backup')).toHaveLength(1);
      expect(lines.filter((line) => line.level === 'error' || line.level === 'warn')).toEqual([]);
      expect(fresh.process.exitCode).toBeNull();
      await stop(fresh.process);
    } finally {
      await server.remove();
    }
  }, 120_000);
});

describe('the scheduler never costs the WAL work', () => {
  it('a mistake in ARCHIVER_BACKUP_* is logged and the sidecar serves the WAL calls all the same', async () => {
    const logFile = path.join(scratch, 'bad-config.log');
    const env = { ...archiveEnv, ARCHIVER_SPOOL: path.join(scratch, 'bad-config-spool'), ARCHIVER_DAEMON_IDLE_SECONDS: '0', POD_NAME: 'db-0', ARCHIVER_BACKUP_SCHEDULE: '61 2 * * *' };
    // startSidecar resolves once it listens for calls.
    const started = await startSidecar([LAUNCHER, 'daemon'], env, { logFile, cwd: scratch, ...postgresUser() });
    sidecars.add(started);
    await waitUntil(() => logLines(fs.readFileSync(logFile, 'utf8')).some((line) => line.msg === 'scheduled backups are off'), 'the sidecar to give up on backups');
    const off = logLines(fs.readFileSync(logFile, 'utf8')).find((line) => line.msg === 'scheduled backups are off')!;
    expect(off).toMatchObject({ level: 'error', error_name: 'ConfigError' });
    expect(off.error).toMatch(/^ARCHIVER_BACKUP_SCHEDULE: "61 2 \* \* \*" is not a five-field cron expression \(Invalid value for minute: 61\): write minute hour/);
    expect(started.exitCode).toBeNull();
    await stop(started);
  }, 30_000);

  it('the scheduler and croner are a bundle of their own, which the WAL calls never load', () => {
    const lib = path.join(path.dirname(LAUNCHER), '..', 'lib');
    const main = fs.readFileSync(path.join(lib, 'archiver.cjs'), 'utf8');
    const scheduler = fs.readFileSync(path.join(lib, 'scheduler.cjs'), 'utf8');
    expect(main).toContain('./scheduler.cjs');
    expect(main).not.toContain('CronPattern');
    expect(main).not.toContain('function startBackupScheduler');
    expect(scheduler).toContain('CronPattern');
    expect(scheduler).toContain('function startBackupScheduler');
  });
});
