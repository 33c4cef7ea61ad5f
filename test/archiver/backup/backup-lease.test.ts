/**
 * The backup lease (backup/backup-lease.ts): who may take it (pure), and taking, renewing and
 * releasing it in a real archive (a local directory, whose puts honour `ifAbsent`). Then that
 * backup-list, delete and wal-verify, run as the built CLI, ignore it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { BackupLease, LEASE_KEY, LEASE_TTL_MS, decideLease, decodeLease, encodeLease, readLease, type FoundLease, type Lease } from '../../../archiver/src/backup/backup-lease';
import { encodeManifest } from '../../../archiver/src/backup/manifest';
import { openStorage } from '../../../archiver/src/storage/open';
import type { Storage } from '../../../archiver/src/storage/storage';
import { runArchiver } from '../../../testkit/archiver';
import { capturingLogger } from '../../../testkit/doubles';
import { backupKeys, seg, segs, syntheticManifest } from '../../../testkit/synthetic-archive';

const NOW = new Date('2026-11-30T02:00:00Z');
const MINUTE = 60_000;
const SINCE = new Date(NOW.getTime() - 5 * MINUTE);

function lease(member: string, acquired: Date, expires: Date): Lease {
  return { format: 1, member, token: `${member}-token`, purpose: 'schedule', acquiredAt: acquired.toISOString(), renewedAt: acquired.toISOString(), expiresAt: expires.toISOString() };
}
function found(value: Lease | undefined, lastModified = NOW): FoundLease {
  return { lease: value, lastModified, body: value ? encodeLease(value) : Buffer.from('not a lease') };
}
const minutes = (n: number) => new Date(NOW.getTime() + n * MINUTE);

describe('who may take the lease', () => {
  const me = { member: 'db-0', since: SINCE };

  it('nobody holds it: take it', () => {
    expect(decideLease(undefined, me, NOW)).toEqual({ kind: 'take' });
  });

  it('another member holds it until a later time: held, naming the holder and until when', () => {
    expect(decideLease(found(lease('db-1', minutes(-1), minutes(9))), me, NOW)).toEqual({ kind: 'held', by: 'db-1', until: minutes(9) });
  });

  it('its holder stopped renewing it and it expired: replace it', () => {
    expect(decideLease(found(lease('db-1', minutes(-30), minutes(-20))), me, NOW)).toEqual({ kind: 'replace', why: `held by db-1, expired at ${minutes(-20).toISOString()}` });
    expect(decideLease(found(lease('db-1', minutes(-10), NOW)), me, NOW).kind).toBe('replace');
  });

  it('an earlier run of this very member left it (the pod restarted mid-backup): replace it at once', () => {
    expect(decideLease(found(lease('db-0', minutes(-6), minutes(4))), me, NOW)).toEqual({ kind: 'replace', why: `left by an earlier run of db-0 (acquired ${minutes(-6).toISOString()})` });
  });

  it('the same member name acquired it after this run started: not an earlier run, held', () => {
    expect(decideLease(found(lease('db-0', minutes(-1), minutes(9))), me, NOW).kind).toBe('held');
  });

  it('an object that is not a lease this archiver reads: held for LEASE_TTL_MS after it was written, then replaced', () => {
    expect(decideLease(found(undefined, minutes(-1)), me, NOW)).toEqual({ kind: 'held', by: 'an unreadable lease', until: new Date(minutes(-1).getTime() + LEASE_TTL_MS) });
    expect(decideLease(found(undefined, new Date(NOW.getTime() - LEASE_TTL_MS)), me, NOW).kind).toBe('replace');
  });

  it('reads back what it writes and refuses what is not a lease', () => {
    const value = lease('db-0', NOW, minutes(10));
    expect(decodeLease(encodeLease(value))).toEqual(value);
    expect(JSON.parse(encodeLease(value).toString())).toEqual({ format: 1, member: 'db-0', token: 'db-0-token', purpose: 'schedule', acquiredAt: NOW.toISOString(), renewedAt: NOW.toISOString(), expiresAt: minutes(10).toISOString() });
    expect(decodeLease(Buffer.from('{"format":2,"member":"db-0"}'))).toBeUndefined();
    expect(decodeLease(Buffer.from('{"format":1,"member":"db-0","token":"t","acquiredAt":"soon","renewedAt":"x","expiresAt":"y"}'))).toBeUndefined();
    expect(decodeLease(Buffer.from('garbage'))).toBeUndefined();
  });
});

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-lease-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('the lease in a real archive', () => {
  let storage: Storage;
  let clock: Date;
  const logged = capturingLogger();
  const options = (extra: object = {}) => ({ purpose: 'schedule', clock: () => clock, log: logged.log, ...extra });

  beforeEach(async () => {
    await storage?.close();
    storage = await openStorage({ kind: 'local', root: fs.mkdtempSync(path.join(scratch, 'archive-')) });
    clock = NOW;
  });

  it(`is taken as ${LEASE_KEY}, refused to another member while held, and free again once released`, async () => {
    const first = await BackupLease.acquire(storage, { member: 'db-0', since: SINCE }, options());
    expect(first.acquired).toBe(true);
    const stored = (await readLease(storage))!.lease!;
    expect(stored).toMatchObject({ format: 1, member: 'db-0', purpose: 'schedule', acquiredAt: NOW.toISOString(), expiresAt: new Date(NOW.getTime() + LEASE_TTL_MS).toISOString() });
    expect(stored.token).toMatch(/^[0-9a-f]{32}$/);

    const second = await BackupLease.acquire(storage, { member: 'db-1', since: SINCE }, options());
    expect(second).toEqual({ acquired: false, holder: 'db-0', why: `the backup lease is held by db-0 until ${stored.expiresAt}` });

    if (first.acquired) await first.lease.release();
    expect(await storage.stat(LEASE_KEY)).toBeUndefined();
    const third = await BackupLease.acquire(storage, { member: 'db-1', since: SINCE }, options());
    expect(third.acquired).toBe(true);
    if (third.acquired) await third.lease.release();
  });

  it('of members taking it at the same moment, exactly one gets it (ifAbsent)', async () => {
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all(['db-0', 'db-1', 'db-2'].map((member) => BackupLease.acquire(storage, { member, since: SINCE }, options())));
      const winners = results.filter((r) => r.acquired);
      expect(winners).toHaveLength(1);
      for (const loser of results.filter((r) => !r.acquired)) expect(loser).toMatchObject({ acquired: false, why: expect.stringMatching(/held by db-|taken by db-/) });
      for (const winner of winners) if (winner.acquired) await winner.lease.release();
    }
  });

  it('an expired lease is replaced, saying whose it was', async () => {
    const held = await BackupLease.acquire(storage, { member: 'db-1', since: SINCE }, options());
    expect(held.acquired).toBe(true);
    clock = new Date(NOW.getTime() + LEASE_TTL_MS + 1);
    const taken = await BackupLease.acquire(storage, { member: 'db-0', since: SINCE }, options());
    expect(taken).toMatchObject({ acquired: true, replaced: expect.stringMatching(/^held by db-1, expired at /) });
    expect((await readLease(storage))!.lease!.member).toBe('db-0');
    // The old holder, still alive, finds it lost: it renews nothing and releases nothing of db-0's.
    if (held.acquired) {
      expect(await held.lease.renew()).toBe(false);
      expect(logged.lines.some((line) => line.msg === 'the backup lease is no longer held by this member: another may start a backup' && line.lease_holder === 'db-0')).toBe(true);
      await held.lease.release();
    }
    expect((await readLease(storage))!.lease!.member).toBe('db-0');
    if (taken.acquired) await taken.lease.release();
  });

  it('renewal pushes the expiry back while the backup runs, and runs by itself every renewMs', async () => {
    const held = await BackupLease.acquire(storage, { member: 'db-0', since: SINCE }, options({ renewMs: 50 }));
    if (!held.acquired) throw new Error('not acquired');
    clock = minutes(3);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const renewed = (await readLease(storage))!.lease!;
    expect(renewed).toMatchObject({ member: 'db-0', token: held.lease.token, acquiredAt: NOW.toISOString(), renewedAt: minutes(3).toISOString(), expiresAt: new Date(minutes(3).getTime() + LEASE_TTL_MS).toISOString() });
    await held.lease.release();
    expect(await storage.stat(LEASE_KEY)).toBeUndefined();
  });
});

describe('backup-list, delete and wal-verify ignore the lease', () => {
  it('lists, plans and verifies an archive holding a lease as if it were not there, and deletes it only with everything', async () => {
    const root = fs.mkdtempSync(path.join(scratch, 'with-lease-'));
    const storage = await openStorage({ kind: 'local', root });
    const day = 86_400_000;
    const backups = [0, 1].map((i) => syntheticManifest({ start: new Date(NOW.getTime() - (2 - i) * day), stop: new Date(NOW.getTime() - (2 - i) * day + MINUTE), startWal: seg(1, 4 + 4 * i), stopWal: seg(1, 5 + 4 * i) }));
    for (const backup of backups) {
      for (const key of backupKeys(backup.name)) await storage.put(key, key.endsWith('manifest.json') ? encodeManifest(backup) : Buffer.from('part'));
    }
    for (const name of segs(1, 4, 10)) await storage.put(`wal/${name}`, Buffer.from('segment'));
    const held = await BackupLease.acquire(storage, { member: 'db-0', since: SINCE }, { purpose: 'schedule', log: capturingLogger().log });
    expect(held.acquired).toBe(true);
    await storage.close();

    const env = { ARCHIVER_REPOSITORY: `file://${root}`, ARCHIVER_DAEMON: 'off' };
    const listed = runArchiver(['backup-list', '--json'], env);
    expect(listed.status).toBe(0);
    expect(JSON.parse(listed.stdout).map((b: { name: string }) => b.name)).toEqual(backups.map((b) => b.name));

    const plan = runArchiver(['delete', 'retain', '1', '--json'], env);
    expect(plan.status).toBe(0);
    const summary = JSON.parse(plan.stdout);
    expect(summary.unfinished).toEqual([]);
    expect(summary.otherKept).toEqual([LEASE_KEY]);
    expect(summary.backups.map((b: { name: string; keep: boolean }) => [b.name, b.keep])).toEqual([
      [backups[0].name, false],
      [backups[1].name, true],
    ]);
    const confirmed = runArchiver(['delete', 'retain', '1', '--confirm'], env);
    expect(confirmed.status).toBe(0);
    expect(fs.existsSync(path.join(root, LEASE_KEY))).toBe(true);

    const verified = runArchiver(['wal-verify', '--json'], env);
    expect(verified.stderr).toBe('');
    expect(verified.status).toBe(0);
    expect(JSON.parse(verified.stdout).ok).toBe(true);

    const everything = runArchiver(['delete', 'everything', '--confirm'], env);
    expect(everything.status).toBe(0);
    expect(fs.existsSync(path.join(root, LEASE_KEY))).toBe(false);
  });
});
