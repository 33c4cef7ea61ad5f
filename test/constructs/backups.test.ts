/**
 * Base backups (constructs/backups.ts): the `backups` prop of ArchivedPostgres, validated at synth
 * time and rendered as the `archiver` sidecar's environment.
 */
import { Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { BackupProps, backupEnvironment, checkBackups, checkSchedule, renderWindow } from '../../constructs';
import { collectValidationErrors } from '../../scripts/synthesize';
import { container, databaseChart, envOf, find, seedProps, synthDatabase } from './fixtures';

/** The sidecar's ARCHIVER_BACKUP_* variables of the seed database with `backups`. */
function sidecarBackupEnv(backups: BackupProps | undefined, replicas = 2): Record<string, unknown> {
  const statefulSet = find(synthDatabase(seedProps({ backups, replicas })).objects, 'StatefulSet', 'wal-postgres');
  return Object.fromEntries(Object.entries(envOf(container(statefulSet, 'archiver'))).filter(([name]) => name.startsWith('ARCHIVER_BACKUP_')));
}

describe('backups, rendered as the archiver sidecar\'s environment', () => {
  it('defaults to a backup at ready, from the primary, with no schedule and no retention', () => {
    expect(sidecarBackupEnv(undefined)).toStrictEqual({ ARCHIVER_BACKUP_AT_READY: 'on', ARCHIVER_BACKUP_FROM: 'primary' });
    expect(sidecarBackupEnv({})).toStrictEqual({ ARCHIVER_BACKUP_AT_READY: 'on', ARCHIVER_BACKUP_FROM: 'primary' });
  });

  it('renders a schedule, retention by count and window, backups from a standby', () => {
    // GIVEN
    const backups: BackupProps = { schedule: '0 2 * * *', retention: { count: 7, window: Duration.days(30) }, from: 'standby', atReady: true };
    // THEN
    expect(sidecarBackupEnv(backups)).toStrictEqual({
      ARCHIVER_BACKUP_AT_READY: 'on',
      ARCHIVER_BACKUP_FROM: 'standby',
      ARCHIVER_BACKUP_SCHEDULE: '0 2 * * *',
      ARCHIVER_BACKUP_RETAIN: '7',
      ARCHIVER_BACKUP_WINDOW: '30d',
    });
  });

  it('renders only the rules that are set, in the environment\'s order', () => {
    expect(backupEnvironment({ schedule: ' 30  */6 * * MON-FRI ', retention: { window: Duration.hours(36) }, atReady: false })).toStrictEqual([
      { name: 'ARCHIVER_BACKUP_AT_READY', value: 'off' },
      { name: 'ARCHIVER_BACKUP_FROM', value: 'primary' },
      { name: 'ARCHIVER_BACKUP_SCHEDULE', value: '30 */6 * * MON-FRI' },
      { name: 'ARCHIVER_BACKUP_WINDOW', value: '36h' },
    ]);
  });

  it('gives only the sidecar the backup settings, never the PostgreSQL container', () => {
    const statefulSet = find(synthDatabase(seedProps({ backups: { schedule: '0 2 * * *' } })).objects, 'StatefulSet', 'wal-postgres');
    expect(Object.keys(envOf(container(statefulSet, 'postgres'))).filter((name) => name.startsWith('ARCHIVER_BACKUP_'))).toStrictEqual([]);
  });
});

describe('renderWindow', () => {
  it.each([
    [Duration.days(30), '30d'],
    [Duration.days(14), '14d'],
    [Duration.hours(12), '12h'],
    [Duration.hours(36), '36h'],
    [Duration.minutes(90), '90m'],
    [Duration.seconds(3601), '3601s'],
  ])('writes %s in the archiver\'s --window syntax', (window, text) => {
    expect(renderWindow(window)).toBe(text);
  });
});

describe('checkSchedule', () => {
  it.each(['0 2 * * *', '*/15 * * * *', '0 2 * * MON-FRI', '0 3 1 JAN,JUL *', '0 2 * * 7', ' 0 2 * * * '])('accepts the five-field expression %j', (schedule) => {
    expect(checkSchedule(schedule)).toBeUndefined();
  });

  it.each([
    ['', '"" has 0 fields'],
    ['0 2 * *', '"0 2 * *" has 4 fields'],
    ['0 0 2 * * *', '"0 0 2 * * *" has 6 fields: write five cron fields in UTC'],
    ['@daily', '"@daily" has 1 field'],
    ['61 2 * * *', '"61 2 * * *" does not parse (Invalid value for minute: 61)'],
    ['0 25 * * *', '"0 25 * * *" does not parse'],
    ['0 2 L * *', 'the field "L" is not standard cron syntax'],
    ['0 2 * * 1#2', 'the field "1#2" is not standard cron syntax'],
    ['0 2 ? * *', 'the field "?" is not standard cron syntax'],
    ['0 0 30 2 *', '"0 0 30 2 *" never fires (no such date)'],
  ])('fails on %j', (schedule, message) => {
    expect(checkSchedule(schedule)).toContain(message);
  });
});

describe('checkBackups', () => {
  it('accepts no backups prop, an empty one and a full one', () => {
    expect(checkBackups('backups', undefined, 1)).toStrictEqual([]);
    expect(checkBackups('backups', {}, 1)).toStrictEqual([]);
    expect(checkBackups('backups', { schedule: '0 2 * * *', retention: { count: 1, window: Duration.hours(1) }, from: 'standby', atReady: false }, 2)).toStrictEqual([]);
  });

  it('fails on a retention count below 1 or not whole', () => {
    expect(checkBackups('backups', { schedule: '0 2 * * *', retention: { count: 0 } }, 1)).toStrictEqual([
      'backups.retention.count: 0 is not a whole number of at least 1: the newest complete backups to keep, e.g. 7',
    ]);
    expect(checkBackups('backups', { schedule: '0 2 * * *', retention: { count: 2.5 } }, 1)).toStrictEqual([
      'backups.retention.count: 2.5 is not a whole number of at least 1: the newest complete backups to keep, e.g. 7',
    ]);
  });

  it('fails on a retention window shorter than an hour or not in whole seconds', () => {
    expect(checkBackups('backups', { schedule: '0 2 * * *', retention: { window: Duration.minutes(59) } }, 1)).toStrictEqual([
      'backups.retention.window: 59m is shorter than 1h: a recovery window keeps what a recovery to any point within it needs; write e.g. Duration.days(7)',
    ]);
    expect(checkBackups('backups', { schedule: '0 2 * * *', retention: { window: Duration.millis(3_600_500) } }, 1)).toStrictEqual([
      'backups.retention.window: 3600500 ms is not a whole number of seconds: write e.g. Duration.days(30) or Duration.hours(12)',
    ]);
  });

  it('fails on an empty retention, and on retention without a schedule (it runs after each scheduled backup)', () => {
    expect(checkBackups('backups', { retention: {} }, 1)).toStrictEqual([
      'backups.retention: is empty: give count (the newest backups to keep) and/or window (a recovery window, e.g. Duration.days(30))',
      'backups.retention: runs after each scheduled backup, and no schedule is set: add a schedule, e.g. "0 2 * * *" (daily at 02:00 UTC), or remove retention',
    ]);
  });

  it('fails on backups from a standby of a database with one member, and on an unknown member', () => {
    expect(checkBackups('backups', { from: 'standby' }, 1)).toStrictEqual([
      'backups.from: "standby" with 1 replica: there is no standby, so the primary would take every backup; use "primary" (the default), or replicas of at least 2',
    ]);
    expect(checkBackups('backups', { from: 'replica' as any }, 2)).toStrictEqual(['backups.from: "replica" is not a member choice: use "primary" or "standby"']);
  });

  it('fails when no backup would ever be taken (atReady false, no schedule): the database could not restore itself', () => {
    expect(checkBackups('backups', { atReady: false }, 1)).toStrictEqual([
      'backups.atReady: is false and no schedule is set: no base backup would ever be taken, and after losing its volume the database would refuse to start (its archive holds WAL but no backup); add a schedule, e.g. "0 2 * * *", or keep atReady',
    ]);
  });

  it('is how ArchivedPostgres reports its backups prop: every problem at once, with its construct path', () => {
    const { app } = databaseChart(seedProps({ replicas: 1, backups: { schedule: '0 2 * *', retention: { count: 0, window: Duration.minutes(30) }, from: 'standby' } }));
    expect(collectValidationErrors(app)).toStrictEqual([
      '[test/wal-postgres] backups.schedule: "0 2 * *" has 4 fields: write five cron fields in UTC (minute hour day-of-month month day-of-week), e.g. "0 2 * * *" for daily at 02:00 UTC',
      '[test/wal-postgres] backups.retention.count: 0 is not a whole number of at least 1: the newest complete backups to keep, e.g. 7',
      '[test/wal-postgres] backups.retention.window: 30m is shorter than 1h: a recovery window keeps what a recovery to any point within it needs; write e.g. Duration.days(7)',
      '[test/wal-postgres] backups.from: "standby" with 1 replica: there is no standby, so the primary would take every backup; use "primary" (the default), or replicas of at least 2',
    ]);
  });
});
