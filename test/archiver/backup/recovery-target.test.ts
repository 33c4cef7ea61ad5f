import { describe, expect, it } from 'vitest';
import { BackupManifest } from '../../../archiver/src/backup/manifest';
import { chooseBackup, checkReachable, parseRecoveryTarget, parseTargetTime } from '../../../archiver/src/backup/recovery-target';
import { recoverySettings } from '../../../archiver/src/backup/recovery-settings';
import { RecoveryTargetError } from '../../../archiver/src/errors';

function backup(name: string, start: string, stop: string, startLsn: string, stopLsn: string, snapshot?: BackupManifest['stopSnapshot']): BackupManifest {
  return {
    format: 1, name, label: name, startLsn, stopLsn, startWal: '', stopWal: '', timeline: 1, startTime: start, stopTime: stop, systemIdentifier: '1', pgVersion: 150000,
    walSegmentSize: 16 << 20, fromStandby: false, dataDirectory: '/d', compression: 'zstd', size: 0, storedSize: 0, hasTablespaceMap: false, stopSnapshot: snapshot, parts: [], directories: [], files: [],
  };
}

const A = backup('base_A', '2026-11-30T01:00:00.000Z', '2026-11-30T01:10:00.000Z', '0/2000028', '0/3000100', { xmin: '740', xmax: '745', xip: ['740', '742'] });
const B = backup('base_B', '2026-11-30T02:00:00.000Z', '2026-11-30T02:10:00.000Z', '0/9000028', '0/A000100', { xmin: '900', xmax: '901', xip: ['900'] });
const backups = [A, B];

describe('recovery target times', () => {
  it('takes ISO 8601 times with a zone, in the forms people write', () => {
    // Written for PostgreSQL with a numeric offset: it cannot read 'Z' while loading its settings.
    expect(parseTargetTime('2026-11-30T06:00:00Z')).toEqual({ time: '2026-11-30 06:00:00+00:00', at: Date.parse('2026-11-30T06:00:00Z') });
    expect(parseTargetTime('2026-11-30 07:00:00+01').time).toBe('2026-11-30 07:00:00+01:00');
    expect(parseTargetTime('2026-11-30T07:00:00.123456+0100').at).toBe(Date.parse('2026-11-30T06:00:00.123Z'));
  });

  it('refuses a time without a zone, and says how to add one', () => {
    expect(() => parseTargetTime('2026-11-30 06:00:00')).toThrow(new RecoveryTargetError('--target-time "2026-11-30 06:00:00" has no time zone: PostgreSQL would read it in the server\'s zone. Add one, e.g. 2026-11-30T06:00:00Z or 2026-11-30 06:00:00+01:00'));
    expect(() => parseTargetTime('yesterday')).toThrow(/is not an ISO 8601 time with a zone/);
  });

  it('takes one target at most', () => {
    expect(() => parseRecoveryTarget({ time: '2026-11-30T06:00:00Z', lsn: '0/1' })).toThrow('give one recovery target, not --target-time and --target-lsn');
    expect(parseRecoveryTarget({})).toEqual({ kind: 'latest' });
    expect(() => parseRecoveryTarget({ lsn: 'x' })).toThrow(/is not an LSN/);
    expect(() => parseRecoveryTarget({ xid: '-1' })).toThrow(/is not a transaction id/);
  });
});

describe('which backup a target is restored from: the newest that finished before it', () => {
  it('by time', () => {
    expect(chooseBackup(backups, parseRecoveryTarget({ time: '2026-11-30T03:00:00Z' }), 'x').name).toBe('base_B');
    expect(chooseBackup(backups, parseRecoveryTarget({ time: '2026-11-30T01:30:00Z' }), 'x').name).toBe('base_A');
    // Inside B's own window: A reaches it.
    expect(chooseBackup(backups, parseRecoveryTarget({ time: '2026-11-30T02:05:00Z' }), 'x').name).toBe('base_A');
  });

  it('by LSN', () => {
    expect(chooseBackup(backups, parseRecoveryTarget({ lsn: '0/B000000' }), 'x').name).toBe('base_B');
    expect(chooseBackup(backups, parseRecoveryTarget({ lsn: '0/A000100' }), 'x').name).toBe('base_B');
    expect(chooseBackup(backups, parseRecoveryTarget({ lsn: '0/A0000FF' }), 'x').name).toBe('base_A');
  });

  it('by transaction id: one still running, or not begun, when the backup stopped', () => {
    expect(chooseBackup(backups, parseRecoveryTarget({ xid: '901' }), 'x').name).toBe('base_B');
    expect(chooseBackup(backups, parseRecoveryTarget({ xid: '900' }), 'x').name).toBe('base_B');
    // 899 had committed when B stopped; A's snapshot says it had not begun.
    expect(chooseBackup(backups, parseRecoveryTarget({ xid: '899' }), 'x').name).toBe('base_A');
    expect(chooseBackup(backups, parseRecoveryTarget({ xid: '742' }), 'x').name).toBe('base_A');
  });

  it('refuses a target before every backup, naming the earliest reachable point', () => {
    expect(() => chooseBackup(backups, parseRecoveryTarget({ time: '2026-11-30T00:59:00Z' }), 'x')).toThrow(
      new RecoveryTargetError('the target time 2026-11-30 00:59:00+00:00 is before the end of every backup: the earliest reachable point is 2026-11-30T01:10:00.000Z (LSN 0/3000100), the end of backup base_A'),
    );
    expect(() => chooseBackup(backups, parseRecoveryTarget({ xid: '741' }), 'x')).toThrow(/committed before every backup finished.*earliest reachable point is 2026-11-30T01:10:00.000Z/);
  });

  it('refuses a target inside the oldest backup\'s own window', () => {
    expect(() => chooseBackup(backups, parseRecoveryTarget({ time: '2026-11-30T01:05:00Z' }), 'x')).toThrow(/falls inside backup base_A's own window \(2026-11-30T01:00:00.000Z to 2026-11-30T01:10:00.000Z\)/);
    expect(() => chooseBackup(backups, parseRecoveryTarget({ lsn: '0/2500000' }), 'x')).toThrow(/falls inside backup base_A's own window/);
  });

  it('checks a backup the user named', () => {
    expect(() => checkReachable(B, parseRecoveryTarget({ time: '2026-11-30T01:30:00Z' }))).toThrow(RecoveryTargetError);
    expect(() => checkReachable(A, parseRecoveryTarget({ time: '2026-11-30T01:30:00Z' }))).not.toThrow();
  });

  it('says when the archive has no backup at all', () => {
    expect(() => chooseBackup([], parseRecoveryTarget({}), 's3://b/p')).toThrow('the archive at s3://b/p holds no complete backup (take one with backup-push)');
  });
});

describe('the recovery settings backup-fetch --recovery writes', () => {
  const common = { restoreCommand: "/opt/archiver/bin/archiver wal-fetch %f %p", backupName: 'base_A', writtenAt: new Date('2026-11-30T06:00:00Z') };

  it('replays to a target and promotes', () => {
    expect(recoverySettings({ ...common, target: parseRecoveryTarget({ time: '2026-11-30T01:30:00Z' }) })).toBe(
      [
        '',
        '# Recovery settings written by archiver backup-fetch (backup base_A, 2026-11-30T06:00:00.000Z).',
        '# PostgreSQL removes recovery.signal when the recovery ends, not these lines: the archiver sidecar resets them then; elsewhere remove them.',
        "restore_command = '/opt/archiver/bin/archiver wal-fetch %f %p'",
        "recovery_target = ''",
        "recovery_target_lsn = ''",
        "recovery_target_name = ''",
        "recovery_target_xid = ''",
        "recovery_target_time = '2026-11-30 01:30:00+00:00'",
        "recovery_target_inclusive = on",
        "recovery_target_timeline = 'latest'",
        "recovery_target_action = 'promote'",
        '',
      ].join('\n'),
    );
  });

  it('replays the whole archive with no target, and quotes what it writes', () => {
    const text = recoverySettings({ ...common, restoreCommand: "it's \\ here", target: parseRecoveryTarget({}) });
    expect(text).toContain("restore_command = 'it''s \\\\ here'");
    expect(text).not.toMatch(/recovery_target_action|recovery_target(_time|_lsn|_xid|_name)? = '[^']/);
  });

  it('empties every other target, before the one chosen, so that a target an earlier restore left in postgresql.auto.conf is overridden', () => {
    // A backup of a server that was itself restored to a target holds that restore's settings.
    const none = recoverySettings({ ...common, target: parseRecoveryTarget({}) });
    for (const setting of ['recovery_target', 'recovery_target_lsn', 'recovery_target_name', 'recovery_target_time', 'recovery_target_xid']) expect(none).toContain(`\n${setting} = ''\n`);
    expect(none).toContain('recovery_target_inclusive = on\n');
    const name = recoverySettings({ ...common, target: parseRecoveryTarget({ name: 'before-migration' }) });
    expect(name).not.toContain("recovery_target_name = ''");
    // PostgreSQL applies the settings in file order and refuses a second target: the empty ones first.
    expect(name.lastIndexOf(" = ''")).toBeLessThan(name.indexOf("recovery_target_name = 'before-migration'"));
  });

  it('writes exclusive targets, timelines and actions when asked', () => {
    const text = recoverySettings({ ...common, target: parseRecoveryTarget({ xid: '901' }), inclusive: false, timeline: 'current', action: 'pause' });
    expect(text).toContain("recovery_target_xid = '901'\nrecovery_target_inclusive = off\nrecovery_target_timeline = 'current'\nrecovery_target_action = 'pause'\n");
    expect(recoverySettings({ ...common, target: parseRecoveryTarget({ immediate: true }) })).toContain("recovery_target = 'immediate'");
  });
});
