/**
 * Durations as people write them for retention windows: `30d`, `12h`, `1d12h`, `90m`, `2w`
 * (units s, m, h, d, w). Read by `delete --window` and ARCHIVER_BACKUP_WINDOW, written by the
 * constructs (`backups.retention.window`) and by the retention plan's reasons: one definition of
 * the syntax on both sides of the contract.
 */

/** What a duration looks like, for messages. */
export const DURATION_SYNTAX = 'a duration such as 30d, 12h, 1d12h or 90m (units s, m, h, d, w)';

const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** The duration in milliseconds (0 for `0d`), or undefined when `text` is not one. */
export function durationMs(text: string): number | undefined {
  const trimmed = text.trim().toLowerCase();
  if (!/^(\d+[smhdw])+$/.test(trimmed)) return undefined;
  let ms = 0;
  for (const match of trimmed.matchAll(/(\d+)([smhdw])/g)) ms += Number(match[1]) * UNITS[match[2]];
  return ms;
}

/** `ms` in that syntax, in the largest unit that divides it (`30d`, `36h`); `<n>ms` otherwise. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's']) if (ms % UNITS[unit] === 0) return `${ms / UNITS[unit]}${unit}`;
  return `${ms}ms`;
}
