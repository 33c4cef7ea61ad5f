/**
 * ARCHIVER_BACKUP_SCHEDULE (backup/backup-schedule.ts): five-field cron expressions, ticks in UTC
 * whatever the machine's time zone, and a ConfigError naming the variable and the fix otherwise.
 */
import { describe, expect, it } from 'vitest';
import { BackupSchedule } from '../../../archiver/src/backup/backup-schedule';
import { ConfigError } from '../../../archiver/src/errors';

const next = (expression: string, after: string) => BackupSchedule.parse(expression).next(new Date(after)).toISOString();

describe('the next tick, in UTC', () => {
  it('daily at 02:00 UTC: later today, else tomorrow; a tick is never its own next', () => {
    expect(next('0 2 * * *', '2026-11-30T01:59:59.999Z')).toBe('2026-11-30T02:00:00.000Z');
    expect(next('0 2 * * *', '2026-11-30T02:00:00.000Z')).toBe('2026-12-01T02:00:00.000Z');
    expect(next('0 2 * * *', '2026-11-30T13:00:00Z')).toBe('2026-12-01T02:00:00.000Z');
  });

  it('ignores the machine time zone and daylight saving time (the night Europe moves its clocks)', () => {
    const zone = process.env.TZ;
    process.env.TZ = 'Europe/Berlin';
    try {
      expect(next('30 2 * * *', '2026-03-29T00:00:00Z')).toBe('2026-03-29T02:30:00.000Z');
      expect(next('30 2 * * *', '2026-10-25T02:00:00Z')).toBe('2026-10-25T02:30:00.000Z');
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it('reads steps, ranges, lists and names as cron does', () => {
    expect(next('*/15 * * * *', '2026-11-30T10:07:00Z')).toBe('2026-11-30T10:15:00.000Z');
    // Weekdays at 03:00: from Friday evening to Monday.
    expect(next('0 3 * * 1-5', '2026-11-27T20:00:00Z')).toBe('2026-11-30T03:00:00.000Z');
    expect(next('0 3 * * sun', '2026-11-27T20:00:00Z')).toBe('2026-11-29T03:00:00.000Z');
    expect(next('0 0,12 1 * *', '2026-11-30T13:00:00Z')).toBe('2026-12-01T00:00:00.000Z');
  });

  it('day of month and day of week restricted together: either matches (Vixie cron)', () => {
    // The 1st of the month or a Monday: Monday 2026-11-30 comes first.
    expect(next('0 4 1 * 1', '2026-11-28T00:00:00Z')).toBe('2026-11-30T04:00:00.000Z');
  });

  it('keeps the expression, whitespace normalized', () => {
    expect(BackupSchedule.parse('  0  2 * *   * ').expression).toBe('0 2 * * *');
  });
});

describe('a schedule that cannot work', () => {
  it.each([
    ['0 0 2 * * *', 'is not a five-field cron expression'],
    ['0 2 * *', 'is not a five-field cron expression'],
    ['61 * * * *', 'Invalid value for minute: 61'],
    ['0 25 * * *', 'is not a five-field cron expression'],
    ['daily', 'is not a five-field cron expression'],
    ['0 2 30 2 *', 'never fires (no such date)'],
  ])('fails on %j, naming ARCHIVER_BACKUP_SCHEDULE and the fix', (expression, message) => {
    const parse = () => BackupSchedule.parse(expression);
    expect(parse).toThrow(ConfigError);
    expect(parse).toThrow(message);
    expect(parse).toThrow(/^ARCHIVER_BACKUP_SCHEDULE: /);
    expect(parse).toThrow(/e\.g\. "0 2 /);
  });
});
