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

/** The setting of each kind of recovery target: PostgreSQL takes at most one of them set. */
const TARGET_SETTINGS = {
  immediate: 'recovery_target',
  lsn: 'recovery_target_lsn',
  name: 'recovery_target_name',
  time: 'recovery_target_time',
  xid: 'recovery_target_xid',
} as const;

export function recoverySettings(options: RecoverySettingsOptions): string {
  const lines = [
    '',
    `# Recovery settings written by archiver backup-fetch (backup ${options.backupName}, ${options.writtenAt.toISOString()}).`,
    '# PostgreSQL removes recovery.signal when the recovery ends, not these lines: the archiver sidecar resets them then; elsewhere remove them.',
    `restore_command = ${confString(options.restoreCommand)}`,
  ];
  const target = options.target;
  // The restored postgresql.auto.conf may hold the settings of another recovery: the one the
  // backed-up server was itself restored with (they outlive it). The last line of a setting wins,
  // so each target setting is written here: the others empty first (PostgreSQL applies them in
  // file order and refuses a second target), then the one chosen; and the inclusiveness.
  const chosen = target.kind === 'latest' ? undefined : TARGET_SETTINGS[target.kind];
  for (const setting of Object.values(TARGET_SETTINGS)) if (setting !== chosen) lines.push(`${setting} = ''`);
  if (target.kind === 'time') lines.push(`recovery_target_time = ${confString(target.time)}`);
  else if (target.kind === 'lsn') lines.push(`recovery_target_lsn = ${confString(target.lsn)}`);
  else if (target.kind === 'xid') lines.push(`recovery_target_xid = ${confString(target.xid)}`);
  else if (target.kind === 'name') lines.push(`recovery_target_name = ${confString(target.name)}`);
  else if (target.kind === 'immediate') lines.push(`recovery_target = 'immediate'`);
  lines.push(`recovery_target_inclusive = ${options.inclusive === false && target.kind !== 'latest' && target.kind !== 'immediate' ? 'off' : 'on'}`);
  lines.push(`recovery_target_timeline = ${confString(options.timeline ?? 'latest')}`);
  if (target.kind !== 'latest') lines.push(`recovery_target_action = ${confString(options.action ?? 'promote')}`);
  return `${lines.join('\n')}\n`;
}
