/**
 * Recovery targets (point-in-time recovery): what the user asks for, checked before anything is
 * downloaded, and which backup reaches it — the newest that finished before the target.
 */
import { RecoveryTargetError } from '../errors';
import { isLsn, parseLsn } from './lsn';
import type { BackupManifest } from './manifest';

export type RecoveryTarget =
  | { readonly kind: 'latest' }
  | { readonly kind: 'immediate' }
  | { readonly kind: 'time'; readonly time: string; readonly at: number }
  | { readonly kind: 'lsn'; readonly lsn: string }
  | { readonly kind: 'xid'; readonly xid: string }
  | { readonly kind: 'name'; readonly name: string };

/**
 * An ISO 8601 time with a zone: `2026-11-30T06:00:00Z`, `2026-11-30 07:00:00+01:00`. A time
 * without a zone is refused: PostgreSQL would read it in the server's time zone, the most common
 * point-in-time-recovery mistake.
 */
export function parseTargetTime(text: string): { time: string; at: number } {
  const match = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)\s*(Z|[+-]\d{2}(:?\d{2})?)$/i.exec(text.trim());
  if (!match) {
    const zoneless = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/.test(text.trim());
    throw new RecoveryTargetError(
      zoneless
        ? `--target-time ${JSON.stringify(text)} has no time zone: PostgreSQL would read it in the server's zone. Add one, e.g. ${text.trim().replace(' ', 'T')}Z or ${text.trim()}+01:00`
        : `--target-time ${JSON.stringify(text)} is not an ISO 8601 time with a zone, e.g. 2026-11-30T06:00:00Z`,
    );
  }
  let zone = match[5].toUpperCase();
  if (zone === 'Z') zone = '+00:00';
  else if (/^[+-]\d{2}$/.test(zone)) zone = `${zone}:00`;
  else if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const at = Date.parse(`${match[1]}T${match[2]}${zone}`);
  if (Number.isNaN(at)) throw new RecoveryTargetError(`--target-time ${JSON.stringify(text)} is not a valid time`);
  // As PostgreSQL reads it while it loads its configuration: a numeric offset, not 'Z' (time zone
  // abbreviations are not loaded yet then: "invalid value for parameter recovery_target_time").
  return { time: `${match[1]} ${match[2]}${zone}`, at };
}

/** The target from the command's options; at most one may be given. */
export function parseRecoveryTarget(options: { time?: string; lsn?: string; xid?: string; name?: string; immediate?: boolean }): RecoveryTarget {
  const given = Object.entries(options).filter(([, value]) => value !== undefined && value !== false);
  if (given.length > 1) throw new RecoveryTargetError(`give one recovery target, not ${given.map(([key]) => `--target-${key}`).join(' and ')}`);
  if (options.time !== undefined) return { kind: 'time', ...parseTargetTime(options.time) };
  if (options.lsn !== undefined) {
    if (!isLsn(options.lsn)) throw new RecoveryTargetError(`--target-lsn ${JSON.stringify(options.lsn)} is not an LSN, e.g. 0/3000028`);
    return { kind: 'lsn', lsn: options.lsn.trim().toUpperCase() };
  }
  if (options.xid !== undefined) {
    if (!/^\d+$/.test(options.xid.trim())) throw new RecoveryTargetError(`--target-xid ${JSON.stringify(options.xid)} is not a transaction id (a whole number)`);
    return { kind: 'xid', xid: options.xid.trim() };
  }
  if (options.name !== undefined) {
    if (options.name === '' || options.name.length > 63) throw new RecoveryTargetError('--target-name takes the name given to pg_create_restore_point (1 to 63 characters)');
    return { kind: 'name', name: options.name };
  }
  return options.immediate ? { kind: 'immediate' } : { kind: 'latest' };
}

/** Whether `backup` ends before `target`, so that replaying WAL from it can reach the target. */
export function reaches(backup: BackupManifest, target: RecoveryTarget): boolean {
  switch (target.kind) {
    case 'time':
      return Date.parse(backup.stopTime) <= target.at;
    case 'lsn':
      return parseLsn(backup.stopLsn) <= parseLsn(target.lsn);
    case 'xid': {
      // The transaction must commit after the backup's consistency point: it was still running,
      // or not yet started, when the backup stopped.
      const snapshot = backup.stopSnapshot;
      if (!snapshot) return false;
      const xid = BigInt(target.xid);
      return xid >= BigInt(snapshot.xmax) || snapshot.xip.some((running) => BigInt(running) === xid);
    }
    default:
      return true;
  }
}

/**
 * The backup to restore for `target`: the newest one that reaches it. `backups` oldest first.
 * A restore point's position is not known before replay: the newest backup is taken (name one
 * with --backup when the restore point is older than it).
 */
export function chooseBackup(backups: readonly BackupManifest[], target: RecoveryTarget, location: string): BackupManifest {
  if (backups.length === 0) throw new RecoveryTargetError(`the archive at ${location} holds no complete backup (take one with backup-push)`);
  for (let i = backups.length - 1; i >= 0; i--) if (reaches(backups[i], target)) return backups[i];
  throw unreachable(backups, target);
}

/** Refuses `target` for a backup named by the user that does not reach it. */
export function checkReachable(backup: BackupManifest, target: RecoveryTarget): void {
  if (!reaches(backup, target)) throw unreachable([backup], target);
}

function unreachable(backups: readonly BackupManifest[], target: RecoveryTarget): RecoveryTargetError {
  const oldest = backups[0];
  const earliest = `the earliest reachable point is ${oldest.stopTime} (LSN ${oldest.stopLsn}), the end of backup ${oldest.name}`;
  const inside = backups.find((backup) => {
    if (target.kind === 'time') return Date.parse(backup.startTime) <= target.at && target.at < Date.parse(backup.stopTime);
    if (target.kind === 'lsn') return parseLsn(backup.startLsn) <= parseLsn(target.lsn) && parseLsn(target.lsn) < parseLsn(backup.stopLsn);
    return false;
  });
  const what = describeTarget(target);
  if (inside) return new RecoveryTargetError(`${what} falls inside backup ${inside.name}'s own window (${inside.startTime} to ${inside.stopTime}), and no earlier backup reaches it: ${earliest}`);
  if (target.kind === 'xid') return new RecoveryTargetError(`${what} committed before every backup finished (or the backups record no snapshot): ${earliest}`);
  return new RecoveryTargetError(`${what} is before the end of every backup: ${earliest}`);
}

export function describeTarget(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'time':
      return `the target time ${target.time}`;
    case 'lsn':
      return `the target LSN ${target.lsn}`;
    case 'xid':
      return `the target transaction ${target.xid}`;
    case 'name':
      return `the restore point ${target.name}`;
    case 'immediate':
      return 'the end of the backup';
    default:
      return 'the end of the archive';
  }
}
