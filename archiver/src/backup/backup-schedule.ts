/**
 * ARCHIVER_BACKUP_SCHEDULE: a five-field cron expression (minute hour day-of-month month
 * day-of-week), always in UTC, parsed by croner. Only the scheduler's bundle (lib/scheduler.cjs)
 * holds croner: the WAL calls, which start once per segment, never load it.
 */
import { Cron } from 'croner';
import { ARCHIVER_ENV } from '../../../contract';
import { ConfigError } from '../errors';

export class BackupSchedule {
  /** Parses `expression`; throws ConfigError naming ARCHIVER_BACKUP_SCHEDULE and the fix. */
  static parse(expression: string): BackupSchedule {
    const normalized = expression.trim().replace(/\s+/g, ' ');
    let cron: Cron;
    try {
      // '5-part': exactly five fields, seconds fixed at 0. Day-of-month and day-of-week combine
      // with OR when both are restricted, as in Vixie cron.
      cron = new Cron(normalized, { mode: '5-part', timezone: 'Etc/UTC' });
    } catch (error) {
      const reason = (error as Error).message.replace(/^CronPattern: /, '');
      throw new ConfigError(ARCHIVER_ENV.backupSchedule, `${JSON.stringify(expression)} is not a five-field cron expression (${reason}): write minute hour day-of-month month day-of-week, in UTC (e.g. "0 2 * * *" for 02:00 UTC daily)`);
    }
    if (cron.nextRun(new Date()) === null) {
      throw new ConfigError(ARCHIVER_ENV.backupSchedule, `${JSON.stringify(expression)} never fires (no such date): choose days that exist, e.g. "0 2 28 2 *" rather than "0 2 30 2 *"`);
    }
    return new BackupSchedule(normalized, cron);
  }

  private constructor(
    /** The expression, whitespace normalized. */
    public readonly expression: string,
    private readonly cron: Cron,
  ) {}

  /** The first tick strictly after `after` (UTC). */
  next(after: Date): Date {
    const next = this.cron.nextRun(after);
    // parse() refused expressions that never fire; one that stops firing (none does in 5 fields
    // without years) would be a bug of the library.
    if (next === null) throw new Error(`the schedule ${this.expression} has no tick after ${after.toISOString()}`);
    return next;
  }
}
