/**
 * The settings of a finished recovery do not outlive it (archiver/src/backup/recovery-end.ts),
 * against real PostgreSQL 15: out of recovery, `restore_command` and every `recovery_target*`
 * in postgresql.auto.conf are reset (ALTER SYSTEM) and the configuration reloaded, every other
 * setting kept; a base backup of such a server never carries them (backup-push resets them first).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearEndedRecoverySettings } from '../../../archiver/src/backup/recovery-end';
import { Logger } from '../../../archiver/src/logger';
import { LAUNCHER, logLines, runArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { PostgresCluster, giveToPostgres } from '../../../testkit/postgres';
import { testScratch } from '../../../testkit/scratch';

const scratch = testScratch('recovery-end-');

/** What backup-fetch --recovery appends after a restore, then a setting of the user's. */
const AFTER_A_RESTORE = [
  "restore_command = '/opt/archiver/bin/archiver wal-fetch %f %p'",
  "recovery_target = ''",
  "recovery_target_lsn = ''",
  "recovery_target_name = ''",
  "recovery_target_xid = ''",
  "recovery_target_time = '2026-11-30 06:00:00+00'",
  'recovery_target_inclusive = on',
  "recovery_target_timeline = 'latest'",
  "recovery_target_action = 'promote'",
  "work_mem = '8MB'",
];

const PENDING = "select string_agg(name, ',' order by name) from pg_file_settings where sourcefile like '%/postgresql.auto.conf'";

/** A logger whose lines are kept. */
function capturingLogger(): { log: Logger; lines: () => string } {
  const chunks: string[] = [];
  return { log: new Logger('info', (line) => void chunks.push(line)), lines: () => chunks.join('') };
}

describe('the settings of a finished recovery', () => {
  let cluster: PostgresCluster;
  beforeAll(async () => {
    cluster = await PostgresCluster.create();
    fs.appendFileSync(path.join(cluster.dataDir, 'postgresql.auto.conf'), `${AFTER_A_RESTORE.join('\n')}\n`);
    cluster.start();
  }, 60_000);
  afterAll(async () => {
    await cluster?.remove();
  });

  it('are reset once the server is out of recovery, and the configuration reloaded; other settings stay', async () => {
    expect(cluster.sql(PENDING)).toBe('recovery_target,recovery_target_action,recovery_target_inclusive,recovery_target_lsn,recovery_target_name,recovery_target_time,recovery_target_timeline,recovery_target_xid,restore_command,work_mem');
    const { log, lines } = capturingLogger();
    const outcome = await clearEndedRecoverySettings({ host: cluster.baseDir, port: cluster.port, user: 'postgres' }, log);
    expect(outcome).toEqual({
      kind: 'reset',
      settings: ['recovery_target', 'recovery_target_action', 'recovery_target_inclusive', 'recovery_target_lsn', 'recovery_target_name', 'recovery_target_time', 'recovery_target_timeline', 'recovery_target_xid', 'restore_command'],
    });
    expect(cluster.sql(PENDING)).toBe('work_mem');
    expect(cluster.sql('show work_mem')).toBe('8MB');
    // Reloaded: the server's own value is back.
    expect(cluster.sql('show restore_command')).toBe('');
    expect(logLines(lines()).map((l) => l.msg)).toEqual(['the recovery is over: its settings are removed from postgresql.auto.conf and the configuration reloaded']);
  });

  it('a second look finds nothing to do', async () => {
    const { log, lines } = capturingLogger();
    expect(await clearEndedRecoverySettings({ host: cluster.baseDir, port: cluster.port, user: 'postgres' }, log)).toEqual({ kind: 'clean' });
    expect(lines()).toBe('');
  });

  it('a server that cannot be reached is reported, not thrown', async () => {
    const { log } = capturingLogger();
    const outcome = await clearEndedRecoverySettings({ host: path.join(scratch.dir, 'no-socket-here'), port: cluster.port, user: 'postgres' }, log);
    expect(outcome.kind).toBe('unreachable');
  });
});

describe('a base backup of a server whose recovery is over', () => {
  let cluster: PostgresCluster;
  let env: Record<string, string>;
  beforeAll(async () => {
    const base = scratch.postgresDirectory();
    const archive = path.join(base, 'archive');
    fs.mkdirSync(archive);
    giveToPostgres(archive);
    env = { ARCHIVER_REPOSITORY: `file://${archive}`, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'spool') };
    cluster = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` } });
    fs.appendFileSync(path.join(cluster.dataDir, 'postgresql.auto.conf'), `${AFTER_A_RESTORE.join('\n')}\n`);
    cluster.start();
  }, 60_000);
  afterAll(async () => {
    stopArchiver(env);
    await cluster?.remove();
  });

  it('carries none of its settings: backup-push resets them first', () => {
    const pg = { PGHOST: cluster.baseDir, PGPORT: String(cluster.port), PGUSER: 'postgres' };
    const push = runArchiverAsPostgres(['backup-push'], { ...env, ...pg });
    expect(push.status, push.stderr).toBe(0);
    const restored = path.join(scratch.postgresDirectory(), 'restored');
    const fetch = runArchiverAsPostgres(['backup-fetch', 'LATEST', restored], env);
    expect(fetch.status, fetch.stderr).toBe(0);
    const autoConf = fs.readFileSync(path.join(restored, 'postgresql.auto.conf'), 'utf8');
    expect(autoConf).not.toMatch(/^(restore_command|recovery_target)/m);
    expect(autoConf).toContain("work_mem = '8MB'");
  }, 120_000);
});
