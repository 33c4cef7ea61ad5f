/**
 * Who takes the sidecar's base backups (backup/backup-duty.ts), pure: by ARCHIVER_BACKUP_FROM and
 * what each member sees of its own server; whether that server is the one to back up yet; and
 * whether a backup is due (at ready: none of this database and timeline yet; at a tick: none
 * started since).
 */
import { describe, expect, it } from 'vitest';
import { CLOCK_SKEW_MS, PRIMARY_FALLBACK_MS, STANDBY_STEP_MS, backupDuty, hasBackupOf, notYetServing, servedSince, type MemberState } from '../../../archiver/src/backup/backup-duty';
import { seg, syntheticManifest } from '../../../testkit/synthetic-archive';

const primary = (streamingStandbys = 0): MemberState => ({ ordinal: 0, inRecovery: false, streaming: false, streamingStandbys });
const standby = (ordinal: number, streaming = true): MemberState => ({ ordinal, inRecovery: true, streaming, streamingStandbys: 0 });

describe('ARCHIVER_BACKUP_FROM=primary', () => {
  it('the member whose server is not in recovery takes the backups, at once', () => {
    expect(backupDuty('primary', primary())).toEqual({ takes: true, role: 'primary', delayMs: 0, why: 'the primary' });
    expect(backupDuty('primary', primary(2))).toMatchObject({ takes: true, delayMs: 0 });
  });

  it('a standby never does, streaming or not', () => {
    expect(backupDuty('primary', standby(1))).toEqual({ takes: false, why: 'a standby, and ARCHIVER_BACKUP_FROM=primary' });
    expect(backupDuty('primary', standby(2, false)).takes).toBe(false);
  });

  it('goes by the server, not the ordinal: a promoted standby (ordinal 1) is the primary', () => {
    expect(backupDuty('primary', { ordinal: 1, inRecovery: false, streaming: false, streamingStandbys: 0 })).toMatchObject({ takes: true, role: 'primary' });
    expect(backupDuty('primary', { ordinal: 0, inRecovery: true, streaming: true, streamingStandbys: 0 }).takes).toBe(false);
  });
});

describe('ARCHIVER_BACKUP_FROM=standby', () => {
  it('the streaming standby of ordinal 1 goes first, at once; each higher ordinal one step later', () => {
    expect(backupDuty('standby', standby(1))).toEqual({ takes: true, role: 'standby', delayMs: 0, why: 'the first streaming standby' });
    expect(backupDuty('standby', standby(2))).toMatchObject({ takes: true, role: 'standby', delayMs: STANDBY_STEP_MS });
    expect(backupDuty('standby', standby(4))).toMatchObject({ takes: true, delayMs: 3 * STANDBY_STEP_MS });
  });

  it('a standby that does not stream (catching up from the archive, cut off) never takes them', () => {
    expect(backupDuty('standby', standby(1, false))).toEqual({ takes: false, why: 'a standby that does not stream from the primary' });
  });

  it('the primary takes them at once when no standby streams from it', () => {
    expect(backupDuty('standby', primary(0))).toEqual({ takes: true, role: 'primary', delayMs: 0, why: 'the primary, and no standby streams' });
  });

  it('with streaming standbys, the primary is only the fallback, after the standbys had their turn', () => {
    const duty = backupDuty('standby', primary(2));
    expect(duty).toMatchObject({ takes: true, role: 'primary', delayMs: PRIMARY_FALLBACK_MS });
    expect(PRIMARY_FALLBACK_MS).toBeGreaterThan(5 * STANDBY_STEP_MS);
  });

  it('takes its steps from the timing given (the tests shorten them)', () => {
    expect(backupDuty('standby', standby(3), { standbyStepMs: 100 })).toMatchObject({ delayMs: 200 });
    expect(backupDuty('standby', primary(1), { primaryFallbackMs: 50 })).toMatchObject({ delayMs: 50 });
  });
});

describe('whether the server is the one to back up yet', () => {
  it('not one that listens on its Unix socket only: the temporary server of the image\'s entrypoint, initialising a new database', () => {
    expect(notYetServing({ listenAddresses: '' })).toMatch(/^PostgreSQL listens on its Unix socket only \(listen_addresses is empty\): the temporary server the image's entrypoint runs/);
    expect(notYetServing({ listenAddresses: ' ' })).toBeDefined();
  });

  it('the server of the pod (\'*\'), or one on any address (the tests\' 127.0.0.1), is', () => {
    for (const listenAddresses of ['*', '127.0.0.1', 'localhost', '0.0.0.0,::']) expect(notYetServing({ listenAddresses })).toBeUndefined();
  });
});

describe('whether a backup is due', () => {
  const at = (iso: string, timeline = 1, systemIdentifier = '7300000000000000001') => ({
    ...syntheticManifest({ start: new Date(iso), stop: new Date(Date.parse(iso) + 60_000), startWal: seg(timeline, 4) }),
    systemIdentifier,
  });

  it('at ready: one is due when no complete backup of this database holds its current timeline', () => {
    const backups = [at('2026-11-30T02:00:00Z', 1)];
    expect(hasBackupOf(backups, { systemIdentifier: '7300000000000000001', timeline: 1 })).toBe(true);
    // Restored and promoted onto timeline 2: the backups of timeline 1 do not count.
    expect(hasBackupOf(backups, { systemIdentifier: '7300000000000000001', timeline: 2 })).toBe(false);
    // A new database (initdb) in an archive of an old one: another system identifier.
    expect(hasBackupOf(backups, { systemIdentifier: '7400000000000000002', timeline: 1 })).toBe(false);
    expect(hasBackupOf([], { systemIdentifier: '7300000000000000001', timeline: 1 })).toBe(false);
  });

  it('at a tick: served when a backup of this database started at or after it (within the clock skew)', () => {
    const tick = new Date('2026-11-30T02:00:00Z');
    const backups = [at('2026-11-29T02:00:01Z'), at('2026-11-30T02:00:03Z')];
    expect(servedSince(backups, tick, '7300000000000000001')?.name).toBe(backups[1].name);
    expect(servedSince([backups[0]], tick, '7300000000000000001')).toBeUndefined();
    expect(servedSince([at(new Date(tick.getTime() - CLOCK_SKEW_MS).toISOString())], tick, '7300000000000000001')).toBeDefined();
    expect(servedSince([at(new Date(tick.getTime() - CLOCK_SKEW_MS - 1000).toISOString())], tick, '7300000000000000001')).toBeUndefined();
    expect(servedSince([backups[1]], tick, '7400000000000000002')).toBeUndefined();
  });
});
