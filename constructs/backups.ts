/**
 * Base backups, taken by the `archiver` sidecar's own scheduler (no operator, no CronJob: only a
 * container of the database pod can read its data volume): one as soon as a new primary accepts
 * connections, then on a cron schedule, each followed by retention. Rendered as the sidecar's
 * environment (ARCHIVER_BACKUP_*), which the archiver reads.
 */
import { Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-27';
import { Cron } from 'croner';
import { ARCHIVER_ENV, BACKUP_FROM, BackupFrom, formatDuration } from '../contract';
import { show } from './validation';

/** The shortest recovery window retention may keep: a shorter one deletes backups minutes old. */
export const MIN_RETENTION_WINDOW = Duration.hours(1);

/** What retention keeps after each scheduled backup. Both rules together keep what either keeps. */
export interface BackupRetention {
  /**
   * Keep this many complete backups, the newest (`archiver delete retain N`); at least 1.
   * @default - no count rule
   */
  readonly count?: number;
  /**
   * Keep what a recovery to any point of this window needs (`archiver delete --window 30d`):
   * the newest backup that finished before the window starts, and everything after it. At
   * least an hour, in whole seconds.
   * @default - no window rule
   */
  readonly window?: Duration;
}

/** Base backups of the database (the archiver sidecar takes them). */
export interface BackupProps {
  /**
   * When to take a scheduled base backup: a five-field cron expression (minute, hour, day of
   * month, month, day of week; names such as `MON` and `JAN` allowed), in UTC, e.g. `0 2 * * *`
   * (daily at 02:00 UTC). Each scheduled backup is followed by `retention`. One member takes each
   * one (see `from`), never two at once.
   * @default - no scheduled backups: only the backup at ready (`atReady`) and those taken on demand
   */
  readonly schedule?: string;
  /**
   * What to keep after each scheduled backup; needs a `schedule`.
   * @default - everything is kept
   */
  readonly retention?: BackupRetention;
  /**
   * Which member takes the backups: `primary`, or `standby` (the streaming standby of the lowest
   * ordinal, the primary while none is streaming) to keep the load off the primary, as
   * CloudNativePG prefers. `standby` needs `replicas` of at least 2.
   * @default "primary"
   */
  readonly from?: BackupFrom;
  /**
   * Take a base backup as soon as the server accepts connections and the archive holds no
   * complete backup of its current timeline (a new database, or one just restored and promoted):
   * the database is recoverable from its first minutes. With `false` and no `schedule`, no backup
   * is ever taken, and the database cannot restore itself: refused at synth.
   * @default true
   */
  readonly atReady?: boolean;
}

/** The archiver's duration syntax (`delete --window`, contract/duration.ts). */
export function renderWindow(window: Duration): string {
  return formatDuration(window.toMilliseconds());
}

/** Month and day names a five-field expression may use, as standard cron knows them. */
const NAMES = /\b(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT)\b/gi;

/** A schedule: five standard cron fields that croner parses and that fire at least once. */
export function checkSchedule(schedule: unknown): string | undefined {
  const expected = 'write five cron fields in UTC (minute hour day-of-month month day-of-week), e.g. "0 2 * * *" for daily at 02:00 UTC';
  if (typeof schedule !== 'string') return `${show(schedule)} is not a cron expression: ${expected}`;
  const fields = schedule.trim().split(/\s+/).filter((f) => f.length > 0);
  if (fields.length !== 5) return `${show(schedule)} has ${fields.length} field${fields.length === 1 ? '' : 's'}: ${expected}`;
  // Only the standard syntax: croner's extensions (L, W, #, ?) and nicknames mean nothing to other crons.
  const nonStandard = fields.find((f) => !/^[0-9*,/-]+$/.test(f.replace(NAMES, '0')));
  if (nonStandard !== undefined) return `${show(schedule)}: the field ${show(nonStandard)} is not standard cron syntax (digits, names, '*', ',', '-', '/'): ${expected}`;
  let cron: Cron;
  try {
    cron = new Cron(fields.join(' '), { mode: '5-part', timezone: 'UTC', paused: true });
  } catch (error) {
    return `${show(schedule)} does not parse (${(error as Error).message.replace(/^CronPattern: /, '')}): ${expected}`;
  }
  try {
    if (cron.nextRun(new Date(Date.UTC(2000, 0, 1))) === null) return `${show(schedule)} never fires (no such date): ${expected}`;
  } finally {
    cron.stop();
  }
  return undefined;
}

/** Every problem of the `backups` prop, as `field.x: message` (`field` is the prop's name). */
export function checkBackups(field: string, backups: BackupProps | undefined, replicas: number): string[] {
  if (backups === undefined) return [];
  const errors: string[] = [];
  const add = (name: string, message: string | undefined) => {
    if (message) errors.push(`${field}.${name}: ${message}`);
  };
  if (backups.schedule !== undefined) add('schedule', checkSchedule(backups.schedule));
  const retention = backups.retention;
  if (retention !== undefined) {
    if (retention.count === undefined && retention.window === undefined) {
      add('retention', 'is empty: give count (the newest backups to keep) and/or window (a recovery window, e.g. Duration.days(30))');
    }
    if (retention.count !== undefined && !(Number.isInteger(retention.count) && retention.count >= 1)) {
      add('retention.count', `${show(retention.count)} is not a whole number of at least 1: the newest complete backups to keep, e.g. 7`);
    }
    if (retention.window !== undefined) {
      const ms = retention.window instanceof Duration ? retention.window.toMilliseconds() : NaN;
      if (Number.isNaN(ms)) {
        add('retention.window', `${show(retention.window)} is not a Duration: write e.g. Duration.days(30)`);
      } else if (ms % 1000 !== 0) {
        add('retention.window', `${ms} ms is not a whole number of seconds: write e.g. Duration.days(30) or Duration.hours(12)`);
      } else if (ms < MIN_RETENTION_WINDOW.toMilliseconds()) {
        add('retention.window', `${renderWindow(retention.window)} is shorter than 1h: a recovery window keeps what a recovery to any point within it needs; write e.g. Duration.days(7)`);
      }
    }
    if (backups.schedule === undefined) {
      add('retention', 'runs after each scheduled backup, and no schedule is set: add a schedule, e.g. "0 2 * * *" (daily at 02:00 UTC), or remove retention');
    }
  }
  if (backups.from !== undefined && !(BACKUP_FROM as readonly string[]).includes(backups.from)) {
    add('from', `${show(backups.from)} is not a member choice: use ${BACKUP_FROM.map((f) => `"${f}"`).join(' or ')}`);
  } else if (backups.from === 'standby' && replicas < 2) {
    add('from', `"standby" with ${show(replicas)} replica${replicas === 1 ? '' : 's'}: there is no standby, so the primary would take every backup; use "primary" (the default), or replicas of at least 2`);
  }
  if (backups.atReady !== undefined && typeof backups.atReady !== 'boolean') {
    add('atReady', `${show(backups.atReady)} is not true or false`);
  } else if (backups.atReady === false && backups.schedule === undefined) {
    add('atReady', 'is false and no schedule is set: no base backup would ever be taken, and after losing its volume the database would refuse to start (its archive holds WAL but no backup); add a schedule, e.g. "0 2 * * *", or keep atReady');
  }
  return errors;
}

/** The `archiver` sidecar's environment for `backups` (defaults rendered, optional rules only when set). */
export function backupEnvironment(backups: BackupProps | undefined): k8s.EnvVar[] {
  const env: k8s.EnvVar[] = [
    { name: ARCHIVER_ENV.backupAtReady, value: backups?.atReady === false ? 'off' : 'on' },
    { name: ARCHIVER_ENV.backupFrom, value: backups?.from ?? 'primary' },
  ];
  if (backups?.schedule !== undefined) env.push({ name: ARCHIVER_ENV.backupSchedule, value: String(backups.schedule).trim().split(/\s+/).join(' ') });
  if (backups?.retention?.count !== undefined) env.push({ name: ARCHIVER_ENV.backupRetain, value: String(backups.retention.count) });
  if (backups?.retention?.window instanceof Duration) env.push({ name: ARCHIVER_ENV.backupWindow, value: renderWindow(backups.retention.window) });
  return env;
}
