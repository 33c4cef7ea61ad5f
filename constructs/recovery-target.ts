/**
 * Where a recovery from an archive stops (PostgreSQL's `recovery_target_*`): the end of the WAL,
 * the first consistent point, a time, an LSN, a transaction or a named restore point. Rendered as
 * the value of ARCHIVER_BOOTSTRAP_TARGET (`latest`, `immediate`, `time:<ISO 8601 with a zone>`,
 * `lsn:<X/Y>`, `xid:<n>`, `name:<restore point>`), which `archiver bootstrap` turns into the
 * recovery settings. The factories never throw: `validate()` says what is wrong, and the database
 * reports it with every other problem of the app.
 */
import { show } from './validation';

/** The kinds of recovery target. */
export type RecoveryTargetKind = 'latest' | 'immediate' | 'time' | 'lsn' | 'xid' | 'name';

/**
 * An ISO 8601 time with a zone, as the archiver reads one (`YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]]`,
 * then `Z` or a numeric offset `±HH`, `±HHMM`, `±HH:MM`).
 */
const TIME_WITH_ZONE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?\s*(Z|[+-](\d{2})(?::?(\d{2}))?)$/i;
/** A date, possibly with a time, but without a zone. */
const TIME_WITHOUT_ZONE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/;
/** An LSN as PostgreSQL prints it: two hexadecimal numbers of up to 8 digits. */
const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
/** The first normal transaction id: 0 to 2 are PostgreSQL's own (invalid, bootstrap, frozen). */
const FIRST_NORMAL_XID = 3;
/** PostgreSQL's limit on a restore point's name (NAMEDATALEN - 1). */
const MAX_RESTORE_POINT_NAME = 63;

/**
 * Where recovery from an archive stops.
 *
 * ```ts
 * RecoveryTarget.time('2026-11-30T10:00:00Z')   // the last commit at or before (inclusive) 10:00 UTC
 * RecoveryTarget.lsn('0/3000028')
 * RecoveryTarget.latest()                       // every archived segment
 * ```
 */
export class RecoveryTarget {
  /** Replay every archived WAL segment (PostgreSQL's default). */
  public static latest(): RecoveryTarget {
    return new RecoveryTarget('latest');
  }

  /** Stop as soon as the restored backup is consistent: the backup's own end, no later WAL. */
  public static immediate(): RecoveryTarget {
    return new RecoveryTarget('immediate');
  }

  /**
   * Stop at a time: an ISO 8601 time with a zone, e.g. `2026-11-30T10:00:00Z` or
   * `2026-11-30T11:00:00+01:00`. A time without a zone is refused at synth: PostgreSQL would read
   * it in the server's zone.
   */
  public static time(time: string): RecoveryTarget {
    return new RecoveryTarget('time', typeof time === 'string' ? time.trim() : time);
  }

  /** Stop at a WAL location, as PostgreSQL prints one: `0/3000028` (`pg_current_wal_lsn()`). */
  public static lsn(lsn: string): RecoveryTarget {
    return new RecoveryTarget('lsn', typeof lsn === 'string' ? lsn.trim().toUpperCase() : lsn);
  }

  /** Stop at the commit of a transaction (`txid_current()`, or `pg_current_xact_id()`). */
  public static xid(xid: number): RecoveryTarget {
    return new RecoveryTarget('xid', xid);
  }

  /** Stop at a restore point made with `SELECT pg_create_restore_point('name')`. */
  public static restorePoint(name: string): RecoveryTarget {
    return new RecoveryTarget('name', name);
  }

  private constructor(
    public readonly kind: RecoveryTargetKind,
    private readonly value?: unknown,
  ) {}

  /**
   * Whether `inclusive` means anything for this target: PostgreSQL's recovery_target_inclusive
   * applies to a time, an LSN and a transaction only.
   */
  public get takesInclusive(): boolean {
    return this.kind === 'time' || this.kind === 'lsn' || this.kind === 'xid';
  }

  /** The value of ARCHIVER_BOOTSTRAP_TARGET: `latest`, `immediate`, `time:...`, `lsn:...`, `xid:...` or `name:...`. */
  public render(): string {
    if (this.value === undefined) return this.kind;
    // A time as ISO 8601 writes it: 'T' between date and time, the zone right after the time.
    const value = this.kind === 'time' ? String(this.value).replace(/^(\d{4}-\d{2}-\d{2}) /, '$1T').replace(/\s+(?=(Z|[+-]\d{2}(:?\d{2})?)$)/i, '') : String(this.value);
    return `${this.kind}:${value}`;
  }

  /** What is wrong with the target, or undefined when PostgreSQL accepts it. */
  public validate(): string | undefined {
    switch (this.kind) {
      case 'time':
        return checkTargetTime(this.value);
      case 'lsn':
        if (typeof this.value !== 'string' || !LSN.test(this.value)) {
          return `RecoveryTarget.lsn(${show(this.value)}) is not an LSN: write two hexadecimal numbers of up to 8 digits as PostgreSQL prints them (pg_current_wal_lsn()), e.g. "0/3000028"`;
        }
        return undefined;
      case 'xid':
        if (typeof this.value !== 'number' || !Number.isSafeInteger(this.value) || this.value < FIRST_NORMAL_XID) {
          return `RecoveryTarget.xid(${show(this.value)}) is not a transaction id: give a whole number of at least ${FIRST_NORMAL_XID} as txid_current() returns it, e.g. 1234`;
        }
        return undefined;
      case 'name':
        if (typeof this.value !== 'string' || this.value.trim().length === 0) {
          return `RecoveryTarget.restorePoint(${show(this.value)}) has an empty name: give the name passed to pg_create_restore_point(), e.g. "before-migration"`;
        }
        if (this.value.length > MAX_RESTORE_POINT_NAME) {
          return `RecoveryTarget.restorePoint(${show(this.value)}) is ${this.value.length} characters long: PostgreSQL's restore point names have at most ${MAX_RESTORE_POINT_NAME}`;
        }
        return undefined;
      default:
        return undefined;
    }
  }
}

/** A target time: ISO 8601 with a zone, a real calendar date and clock time. */
function checkTargetTime(value: unknown): string | undefined {
  const expected = 'write an ISO 8601 time with a zone, e.g. "2026-11-30T10:00:00Z" or "2026-11-30T11:00:00+01:00"';
  if (typeof value !== 'string') return `RecoveryTarget.time(${show(value)}) is not a time: ${expected}`;
  const match = TIME_WITH_ZONE.exec(value);
  if (!match) {
    if (TIME_WITHOUT_ZONE.test(value)) {
      return `RecoveryTarget.time(${show(value)}) has no time zone: PostgreSQL would read it in the server's zone; add one, e.g. ${show(`${value}${value.includes('T') ? '' : 'T00:00:00'}Z`)}`;
    }
    return `RecoveryTarget.time(${show(value)}) does not parse: ${expected}`;
  }
  const [, year, month, day, hour, minute, second, , offsetHours, offsetMinutes] = match;
  const daysInMonth = new Date(Date.UTC(Number(year), Number(month), 0)).getUTCDate();
  const fields: [string, number, number, number][] = [
    ['month', Number(month), 1, 12],
    ['day', Number(day), 1, Number(month) >= 1 && Number(month) <= 12 ? daysInMonth : 31],
    ['hour', Number(hour), 0, 23],
    ['minute', Number(minute), 0, 59],
    ['second', Number(second ?? 0), 0, 59],
    ['zone offset hours', Number(offsetHours ?? 0), 0, 14],
    ['zone offset minutes', Number(offsetMinutes ?? 0), 0, 59],
  ];
  for (const [name, number, min, max] of fields) {
    if (number < min || number > max) return `RecoveryTarget.time(${show(value)}) does not parse: its ${name} ${number} is outside ${min}-${max}; ${expected}`;
  }
  return undefined;
}
