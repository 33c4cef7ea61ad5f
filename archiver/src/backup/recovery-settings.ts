/**
 * The settings that make a restored data directory recover from the archive (PostgreSQL 12+):
 * appended to postgresql.auto.conf, plus recovery.signal. Pure text, so that it is specified by
 * itself.
 */
import type { RecoveryTarget } from './recovery-target';

export interface RecoverySettingsOptions {
  readonly restoreCommand: string;
  readonly target: RecoveryTarget;
  /** recovery_target_inclusive; only written when given. */
  readonly inclusive?: boolean;
  /** `latest`, `current` or a timeline number. @default 'latest' */
  readonly timeline?: string;
  /** @default 'promote' */
  readonly action?: 'promote' | 'pause' | 'shutdown';
  /** For the comment line: which backup, when. */
  readonly backupName: string;
  readonly writtenAt: Date;
}

/** A value quoted for postgresql.conf. */
export function confString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export function recoverySettings(options: RecoverySettingsOptions): string {
  const lines = [
    '',
    `# Recovery settings written by archiver backup-fetch (backup ${options.backupName}, ${options.writtenAt.toISOString()}).`,
    '# PostgreSQL removes recovery.signal when the recovery ends; remove these lines afterwards.',
    `restore_command = ${confString(options.restoreCommand)}`,
  ];
  const target = options.target;
  if (target.kind === 'time') lines.push(`recovery_target_time = ${confString(target.time)}`);
  else if (target.kind === 'lsn') lines.push(`recovery_target_lsn = ${confString(target.lsn)}`);
  else if (target.kind === 'xid') lines.push(`recovery_target_xid = ${confString(target.xid)}`);
  else if (target.kind === 'name') lines.push(`recovery_target_name = ${confString(target.name)}`);
  else if (target.kind === 'immediate') lines.push(`recovery_target = 'immediate'`);
  if (options.inclusive !== undefined && target.kind !== 'latest' && target.kind !== 'immediate') lines.push(`recovery_target_inclusive = ${options.inclusive ? 'on' : 'off'}`);
  lines.push(`recovery_target_timeline = ${confString(options.timeline ?? 'latest')}`);
  if (target.kind !== 'latest') lines.push(`recovery_target_action = ${confString(options.action ?? 'promote')}`);
  return `${lines.join('\n')}\n`;
}
