/**
 * RecoveryTarget (constructs/recovery-target.ts): where a recovery from an archive stops, rendered
 * as ARCHIVER_BOOTSTRAP_TARGET and checked at synth time.
 */
import { describe, expect, it } from 'vitest';
import { RecoveryTarget } from '../../constructs';

describe('RecoveryTarget', () => {
  it.each([
    [RecoveryTarget.latest(), 'latest'],
    [RecoveryTarget.immediate(), 'immediate'],
    [RecoveryTarget.time('2026-11-30T10:00:00Z'), 'time:2026-11-30T10:00:00Z'],
    [RecoveryTarget.time('2026-11-30 11:00:00+01:00'), 'time:2026-11-30T11:00:00+01:00'],
    [RecoveryTarget.time('2026-11-30T10:00:00.123456-0530'), 'time:2026-11-30T10:00:00.123456-0530'],
    [RecoveryTarget.time(' 2026-11-30 10:00:00 +01 '), 'time:2026-11-30T10:00:00+01'],
    [RecoveryTarget.time('2026-11-30 10:00:00 z'), 'time:2026-11-30T10:00:00z'],
    [RecoveryTarget.lsn('0/3000028'), 'lsn:0/3000028'],
    [RecoveryTarget.lsn('1a/ff00a0'), 'lsn:1A/FF00A0'],
    [RecoveryTarget.xid(1234), 'xid:1234'],
    [RecoveryTarget.restorePoint('before-migration'), 'name:before-migration'],
  ])('renders %o as %j, a target PostgreSQL accepts', (target, rendered) => {
    expect(target.render()).toBe(rendered);
    expect(target.validate()).toBeUndefined();
  });

  it('takes inclusive for a time, an LSN and a transaction only (PostgreSQL\'s recovery_target_inclusive)', () => {
    expect([RecoveryTarget.time('2026-11-30T10:00:00Z'), RecoveryTarget.lsn('0/1'), RecoveryTarget.xid(5)].map((t) => t.takesInclusive)).toStrictEqual([true, true, true]);
    expect([RecoveryTarget.latest(), RecoveryTarget.immediate(), RecoveryTarget.restorePoint('x')].map((t) => t.takesInclusive)).toStrictEqual([false, false, false]);
  });

  it.each([
    ['2026-11-30T10:00:00', 'RecoveryTarget.time("2026-11-30T10:00:00") has no time zone: PostgreSQL would read it in the server\'s zone; add one, e.g. "2026-11-30T10:00:00Z"'],
    ['2026-11-30', 'RecoveryTarget.time("2026-11-30") has no time zone: PostgreSQL would read it in the server\'s zone; add one, e.g. "2026-11-30T00:00:00Z"'],
  ])('fails on a time without a zone: %j', (time, message) => {
    expect(RecoveryTarget.time(time).validate()).toBe(message);
  });

  it.each([
    ['yesterday', 'RecoveryTarget.time("yesterday") does not parse: write an ISO 8601 time with a zone'],
    ['2026-11-30T10:00:00 CET', 'RecoveryTarget.time("2026-11-30T10:00:00 CET") does not parse'],
    ['2026-02-30T10:00:00Z', 'its day 30 is outside 1-28'],
    ['2028-02-30T10:00:00Z', 'its day 30 is outside 1-29'],
    ['2026-13-01T10:00:00Z', 'its month 13 is outside 1-12'],
    ['2026-11-30T24:00:00Z', 'its hour 24 is outside 0-23'],
    ['2026-11-30T10:60:00Z', 'its minute 60 is outside 0-59'],
    ['2026-11-30T10:00:00+15:00', 'its zone offset hours 15 is outside 0-14'],
  ])('fails on a time that does not parse: %j', (time, message) => {
    expect(RecoveryTarget.time(time).validate()).toContain(message);
  });

  it.each(['0/', '3000028', '0/123456789', 'x/1', '', '0x0/1'])('fails on the malformed LSN %j', (lsn) => {
    expect(RecoveryTarget.lsn(lsn).validate()).toContain('is not an LSN: write two hexadecimal numbers of up to 8 digits as PostgreSQL prints them (pg_current_wal_lsn()), e.g. "0/3000028"');
  });

  it.each([0, 2, -5, 12.5, Number.NaN, '1234' as unknown as number])('fails on the malformed transaction id %j', (xid) => {
    expect(RecoveryTarget.xid(xid).validate()).toContain('is not a transaction id: give a whole number of at least 3 as txid_current() returns it, e.g. 1234');
  });

  it('fails on an empty or over-long restore point name', () => {
    expect(RecoveryTarget.restorePoint('').validate()).toBe('RecoveryTarget.restorePoint("") has an empty name: give the name passed to pg_create_restore_point(), e.g. "before-migration"');
    expect(RecoveryTarget.restorePoint('  ').validate()).toContain('has an empty name');
    expect(RecoveryTarget.restorePoint('x'.repeat(64)).validate()).toContain('is 64 characters long: PostgreSQL\'s restore point names have at most 63');
  });
});
