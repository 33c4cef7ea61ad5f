/**
 * The retention planner (backup/retention.ts), pure: which backups, WAL files and unfinished
 * backups `delete` removes, which it keeps and why (a kept delta keeps its chain), and in which order;
 * and delete's command line.
 */
import { describe, expect, it } from 'vitest';
import { RetentionInput, RetentionPlan, RetentionPolicy, describePlan, planRetention, planSummary, plannedDeletions } from '../../../archiver/src/backup/retention';
import { parseDeleteArgs, parseDuration } from '../../../archiver/src/commands/retention';
import { BackupNotFoundError, UsageError } from '../../../archiver/src/errors';
import type { BackupManifest } from '../../../archiver/src/backup/manifest';
import type { ObjectInfo } from '../../../archiver/src/storage/storage';
import { backupKeys, nameAt, object, seg, segs, syntheticManifest } from '../../../testkit/synthetic-archive';

const NOW = new Date('2026-11-30T12:00:00Z');
const DAY = 86_400_000;
const HOUR = 3_600_000;
const ago = (ms: number) => new Date(NOW.getTime() - ms);

/** A backup started `daysAgo` days before NOW, taking 10 minutes, starting at segment `segno` of `timeline`. */
function backup(daysAgo: number, segno: number, timeline = 1): BackupManifest {
  const start = ago(daysAgo * DAY);
  return syntheticManifest({ start, stop: new Date(start.getTime() + 600_000), startWal: seg(timeline, segno), stopWal: seg(timeline, segno + 1) });
}

interface Archive {
  readonly backups: BackupManifest[];
  readonly wal: string[];
  readonly extra?: ObjectInfo[];
}

function input(archive: Archive): RetentionInput {
  const objects: ObjectInfo[] = [
    object('archive.json'),
    ...archive.backups.flatMap((b) => backupKeys(b.name).map((key) => object(key, new Date(b.stopTime)))),
    ...archive.wal.map((name) => object(`wal/${name}`)),
    ...(archive.extra ?? []),
  ];
  return { objects, backups: archive.backups, now: NOW };
}

const plan = (archive: Archive, policy: RetentionPolicy): RetentionPlan => planRetention(input(archive), policy);
const kept = (p: RetentionPlan) => p.backups.filter((b) => b.keep).map((b) => b.name);
const gone = (p: RetentionPlan) => p.backups.filter((b) => !b.keep).map((b) => b.name);
const deletedKeys = (p: RetentionPlan) => p.steps.flatMap((s) => s.keys);
const deletedWal = (p: RetentionPlan) => p.steps.filter((s) => s.what === 'wal').flatMap((s) => s.keys.map((k) => k.slice(4)));

// Three backups 10, 5 and 1 day(s) ago, starting at segments 0x10, 0x20, 0x30; WAL 0x08..0x3F, a
// .backup file for each, and a history file of a timeline that never got segments.
const b1 = backup(10, 0x10);
const b2 = backup(5, 0x20);
const b3 = backup(1, 0x30);
const WAL = [...segs(1, 0x08, 0x3f), `${seg(1, 0x10)}.00000028.backup`, `${seg(1, 0x20)}.00000028.backup`, `${seg(1, 0x30)}.00000028.backup`, '00000002.history'];
const three: Archive = { backups: [b1, b2, b3], wal: WAL };

describe('delete retain N', () => {
  it('keeps the N newest backups and deletes the older ones', () => {
    const p = plan(three, { retain: 2 });
    expect(kept(p)).toEqual([b2.name, b3.name]);
    expect(gone(p)).toEqual([b1.name]);
    expect(p.backups.find((b) => b.name === b3.name)!.reasons).toEqual(['one of the 2 newest', 'the newest complete backup']);
    expect(p.backups.find((b) => b.name === b1.name)!.keys).toEqual(expect.arrayContaining(backupKeys(b1.name)));
  });

  it('deletes exactly the WAL before the oldest kept backup\'s startWal: its own segment and everything after stay', () => {
    const p = plan(three, { retain: 2 });
    expect(p.walKeptFrom).toBe(seg(1, 0x20));
    expect(deletedWal(p)).toEqual([...segs(1, 0x08, 0x1f), `${seg(1, 0x10)}.00000028.backup`].sort());
    expect(deletedWal(p)).not.toContain(seg(1, 0x20));
    expect(deletedWal(p)).toContain(seg(1, 0x1f));
    expect(p.walKept).toEqual([{ timeline: 1, first: seg(1, 0x20), last: seg(1, 0x3f), count: 0x20 + 2 }]);
    // Ranges are by name: a .backup file sorts just after its segment.
    expect(p.walDeleted).toEqual([{ timeline: 1, first: seg(1, 0x08), last: seg(1, 0x1f), count: 0x18 + 1 }]);
    expect(p.historyKept).toEqual(['00000002.history']);
  });

  it('keeps every backup when there are N or fewer, and still deletes the WAL older than the oldest', () => {
    const p = plan(three, { retain: 5 });
    expect(gone(p)).toEqual([]);
    expect(deletedWal(p)).toEqual(segs(1, 0x08, 0x0f));
    expect(p.steps.map((s) => s.what)).toEqual(['wal']);
  });

  it('retain 1 keeps the newest only', () => {
    const p = plan(three, { retain: 1 });
    expect(kept(p)).toEqual([b3.name]);
    expect(deletedWal(p)).not.toContain(seg(1, 0x30));
    expect(deletedWal(p)).toContain(seg(1, 0x2f));
  });

  it('orders the deletion: the deleted backups\' manifests first, then their other objects, then WAL', () => {
    const p = plan(three, { retain: 1 });
    expect(p.steps.map((s) => s.what)).toEqual(['manifests', 'backups', 'wal']);
    expect(p.steps[0].keys).toEqual([`basebackups/${b1.name}/manifest.json`, `basebackups/${b2.name}/manifest.json`]);
    expect(p.steps[1].keys.some((k) => k.endsWith('manifest.json'))).toBe(false);
    expect(p.steps[1].keys).toEqual(expect.arrayContaining([`basebackups/${b1.name}/parts/0000.tar`, `basebackups/${b2.name}/backup_label`]));
    expect(deletedKeys(p)).not.toContain('archive.json');
    expect(deletedKeys(p).filter((k) => k.includes(b3.name))).toEqual([]);
  });

  it('fails for N below 1', () => {
    expect(() => plan(three, { retain: 0 })).toThrow(UsageError);
  });
});

describe('delete before', () => {
  it('a time: deletes the backups finished before it, keeps one finished exactly at it', () => {
    const p = plan(three, { beforeTime: new Date(b2.stopTime) });
    expect(gone(p)).toEqual([b1.name]);
    expect(p.backups.find((b) => b.name === b2.name)!.reasons[0]).toBe(`finished at or after ${b2.stopTime}`);
    const later = plan(three, { beforeTime: new Date(Date.parse(b2.stopTime) + 1) });
    expect(gone(later)).toEqual([b1.name, b2.name]);
  });

  it('a time after every backup still keeps the newest backup and its WAL', () => {
    const p = plan(three, { beforeTime: NOW });
    expect(kept(p)).toEqual([b3.name]);
    expect(p.backups.find((b) => b.name === b3.name)!.reasons).toEqual(['the newest complete backup']);
    expect(p.walKeptFrom).toBe(b3.startWal);
  });

  it('a time before every backup deletes no backup', () => {
    const p = plan(three, { beforeTime: ago(30 * DAY) });
    expect(gone(p)).toEqual([]);
  });

  it('a backup name: keeps that one and the newer ones', () => {
    const p = plan(three, { beforeBackup: b2.name });
    expect(kept(p)).toEqual([b2.name, b3.name]);
    expect(p.backups.find((b) => b.name === b2.name)!.reasons).toEqual([`${b2.name} or newer`]);
  });

  it('fails for a backup name that is not a complete backup', () => {
    expect(() => plan(three, { beforeBackup: 'base_20200101T000000Z' })).toThrow(BackupNotFoundError);
  });
});

describe('delete --window', () => {
  it('keeps the newest backup finished before now − window and every newer one', () => {
    expect(kept(plan(three, { windowMs: 3 * DAY }))).toEqual([b2.name, b3.name]);
    expect(kept(plan(three, { windowMs: 7 * DAY }))).toEqual([b1.name, b2.name, b3.name]);
    expect(kept(plan(three, { windowMs: 12 * HOUR }))).toEqual([b3.name]);
  });

  it('keeps every backup when none finished before the window', () => {
    expect(gone(plan(three, { windowMs: 30 * DAY }))).toEqual([]);
  });

  it('a backup finished exactly at now − window is the one kept for it', () => {
    const windowMs = NOW.getTime() - Date.parse(b2.stopTime);
    expect(kept(plan(three, { windowMs }))).toEqual([b2.name, b3.name]);
    expect(kept(plan(three, { windowMs: windowMs - 1 }))).toEqual([b2.name, b3.name]);
    expect(kept(plan(three, { windowMs: windowMs + 1 }))).toEqual([b1.name, b2.name, b3.name]);
  });

  it('with retain keeps the union, each backup with every rule that keeps it', () => {
    const p = plan(three, { retain: 1, windowMs: 3 * DAY });
    expect(kept(p)).toEqual([b2.name, b3.name]);
    expect(p.backups.find((b) => b.name === b2.name)!.reasons).toEqual(['needed for the 3d recovery window']);
    expect(p.backups.find((b) => b.name === b3.name)!.reasons).toEqual(['one of the 1 newest', 'needed for the 3d recovery window', 'the newest complete backup']);
    expect(kept(plan(three, { retain: 2, windowMs: 12 * HOUR }))).toEqual([b2.name, b3.name]);
  });

  it('with before keeps the union', () => {
    expect(kept(plan(three, { beforeTime: NOW, windowMs: 3 * DAY }))).toEqual([b2.name, b3.name]);
  });
});

describe('WAL on several timelines', () => {
  // Timeline 1 until segment 0x24 (promotion at 0/25000100: 0x25 is .partial on 1, the first of 2),
  // the old primary archived 0x25..0x26 on 1 as well; timeline 2 from 0x25 to 0x40.
  const old = backup(6, 0x10);
  const onOne = backup(4, 0x20);
  const onTwo = backup(1, 0x30, 2);
  const wal = [
    '00000002.history',
    ...segs(1, 0x08, 0x26),
    `${seg(1, 0x25)}.partial`,
    ...segs(2, 0x25, 0x40),
    `${seg(2, 0x30)}.00000028.backup`,
    '00000003.history',
  ];
  const archive: Archive = { backups: [old, onOne, onTwo], wal };

  it('keeps the WAL from the oldest kept backup on, on the parent timeline and the child, and every history file', () => {
    const p = plan(archive, { retain: 2 });
    expect(kept(p)).toEqual([onOne.name, onTwo.name]);
    expect(deletedWal(p)).toEqual(segs(1, 0x08, 0x1f));
    expect(p.walKept.map((r) => [r.timeline, r.first, r.last])).toEqual([
      [1, seg(1, 0x20), seg(1, 0x26)],
      [2, seg(2, 0x25), seg(2, 0x40)],
    ]);
    expect(p.historyKept).toEqual(['00000002.history', '00000003.history']);
  });

  it('keeping only a backup on the new timeline deletes what both timelines hold before its start, .partial included', () => {
    const p = plan(archive, { retain: 1 });
    expect(p.walKeptFrom).toBe(seg(2, 0x30));
    expect(deletedWal(p)).toEqual([...segs(1, 0x08, 0x26), `${seg(1, 0x25)}.partial`, ...segs(2, 0x25, 0x2f)].sort());
    expect(deletedWal(p)).not.toContain('00000002.history');
    expect(p.walKept).toEqual([{ timeline: 2, first: seg(2, 0x30), last: seg(2, 0x40), count: 0x11 + 1 }]);
  });

  it('takes the earliest start among the kept backups, whatever their order in time', () => {
    // A point-in-time restore into the past made timeline 3, and a backup there starts before the older backup kept.
    const pitr = syntheticManifest({ start: ago(2 * HOUR), stop: ago(HOUR), startWal: seg(3, 0x18), timeline: 3 });
    const p = plan({ backups: [old, onOne, pitr], wal: [...wal, ...segs(3, 0x15, 0x1a)] }, { retain: 2 });
    expect(kept(p)).toEqual([onOne.name, pitr.name]);
    expect(p.walKeptFrom).toBe(seg(3, 0x18));
    expect(deletedWal(p)).toEqual([...segs(1, 0x08, 0x17), ...segs(3, 0x15, 0x17)].sort());
  });

  it('compares positions across log boundaries (…000000FF before …0100000000)', () => {
    const late = backup(1, 0x100);
    const p = plan({ backups: [backup(2, 0xf0), late], wal: segs(1, 0xf0, 0x105) }, { retain: 1 });
    expect(seg(1, 0x100)).toBe('000000010000000100000000');
    expect(deletedWal(p)).toEqual(segs(1, 0xf0, 0xff));
  });
});

describe('unfinished backups', () => {
  const unfinished = (name: string, lastWritten: Date): ObjectInfo[] => backupKeys(name, false).map((key) => object(key, lastWritten));

  it('deletes one started before the newest complete backup, even if written recently', () => {
    const name = nameAt(ago(2 * DAY));
    const p = plan({ ...three, extra: unfinished(name, ago(HOUR)) }, { retain: 3 });
    expect(p.unfinished).toEqual([expect.objectContaining({ name, keep: false, objects: 3, reason: `unfinished, started before the newest complete backup (${b3.name})` })]);
    expect(p.steps.find((s) => s.what === 'backups')!.keys).toEqual(expect.arrayContaining(backupKeys(name, false)));
  });

  it('keeps one newer than every complete backup and written within a day: it may be running', () => {
    const name = nameAt(ago(2 * HOUR));
    const p = plan({ ...three, extra: unfinished(name, ago(HOUR)) }, { retain: 1 });
    expect(p.unfinished).toEqual([expect.objectContaining({ name, keep: true })]);
    expect(deletedKeys(p).filter((k) => k.includes(name))).toEqual([]);
  });

  it('deletes one newer than every complete backup but last written over a day ago', () => {
    const name = nameAt(ago(DAY / 2));
    const p = plan({ backups: [backup(3, 0x10)], wal: [], extra: unfinished(name, ago(DAY + 1000)) }, { retain: 1 });
    expect(p.unfinished).toEqual([expect.objectContaining({ name, keep: false, reason: 'unfinished, last written over a day ago' })]);
  });

  it('with no complete backup, keeps a young one and deletes a stale one; deletes no WAL', () => {
    const young = nameAt(ago(HOUR));
    const stale = nameAt(ago(3 * DAY));
    const p = plan({ backups: [], wal: segs(1, 1, 5), extra: [...unfinished(young, ago(HOUR)), ...unfinished(stale, ago(3 * DAY))] }, { retain: 2 });
    expect(p.unfinished.map((u) => [u.name, u.keep])).toEqual([
      [stale, false],
      [young, true],
    ]);
    expect(deletedWal(p)).toEqual([]);
    expect(p.walKeptFrom).toBeUndefined();
  });

  it('takes the start of a backup not named by the archiver from its oldest object', () => {
    const objects = [object('basebackups/custom/parts/0000.tar', ago(3 * DAY)), object('basebackups/custom/backup_label', ago(HOUR))];
    const p = plan({ ...three, extra: objects }, { retain: 1 });
    expect(p.unfinished).toEqual([expect.objectContaining({ name: 'custom', startedAt: ago(3 * DAY).toISOString(), lastWritten: ago(HOUR).toISOString(), keep: false })]);
  });

  it('leaves alone a backup whose manifest appeared after the listing was read', () => {
    const name = nameAt(ago(HOUR));
    const p = plan({ ...three, extra: backupKeys(name).map((key) => object(key, ago(HOUR))) }, { retain: 1 });
    expect(p.unfinished).toEqual([]);
    expect(p.otherKept).toEqual(expect.arrayContaining(backupKeys(name)));
    expect(deletedKeys(p).filter((k) => k.includes(name))).toEqual([]);
  });
});

describe('delta chains', () => {
  /** A delta of `base` started `daysAgo` days before NOW at segment `segno` (see backup()). */
  const delta = (daysAgo: number, segno: number, base: BackupManifest | string): BackupManifest => ({ ...backup(daysAgo, segno), base: typeof base === 'string' ? base : base.name });
  const decision = (p: RetentionPlan, b: BackupManifest) => p.backups.find((d) => d.name === b.name)!;
  const manifestOf = (b: BackupManifest) => `basebackups/${b.name}/manifest.json`;

  // full ← d1 ← d2: 10, 5 and 1 day(s) ago, at segments 0x10, 0x20, 0x30.
  const full = backup(10, 0x10);
  const d1 = delta(5, 0x20, full);
  const d2 = delta(1, 0x30, d1);
  const chain: Archive = { backups: [full, d1, d2], wal: WAL };

  it('retain 1 on a chain keeps the whole chain, and the WAL from the full backup\'s startWal', () => {
    const p = plan(chain, { retain: 1 });
    expect(kept(p)).toEqual([full.name, d1.name, d2.name]);
    expect(decision(p, d2).reasons).toEqual(['one of the 1 newest', 'the newest complete backup']);
    expect(decision(p, d1).reasons).toEqual([`base of kept delta ${d2.name}`]);
    expect(decision(p, full).reasons).toEqual([`base of kept delta ${d1.name}`]);
    expect(p.walKeptFrom).toBe(full.startWal);
    expect(deletedWal(p)).toEqual(segs(1, 0x08, 0x0f));
    expect(p.steps.map((s) => s.what)).toEqual(['wal']);
  });

  it('retain 1 over two chains keeps the newest chain only, and deletes the WAL before its full backup', () => {
    // A ← dA 10 and 8 days ago (0x10, 0x14); B ← dB 5 days and 1 day ago (0x20, 0x30).
    const a = backup(10, 0x10);
    const dA = delta(8, 0x14, a);
    const b = backup(5, 0x20);
    const dB = delta(1, 0x30, b);
    const p = plan({ backups: [a, dA, b, dB], wal: WAL }, { retain: 1 });
    expect(kept(p)).toEqual([b.name, dB.name]);
    expect(gone(p)).toEqual([a.name, dA.name]);
    expect(decision(p, b).reasons).toEqual([`base of kept delta ${dB.name}`]);
    expect(decision(p, dA).reasons).toEqual(['older than every backup kept']);
    expect(p.walKeptFrom).toBe(b.startWal);
    expect(deletedWal(p)).toEqual([...segs(1, 0x08, 0x1f), `${seg(1, 0x10)}.00000028.backup`].sort());
    expect(deletedKeys(p).filter((k) => k.includes(b.name) || k.includes(dB.name))).toEqual([]);
    // A delete cut short never leaves dA listed without its base: dA's manifest goes a step before A's.
    expect(p.steps.map((s) => s.what)).toEqual(['manifests', 'manifests', 'backups', 'wal']);
    expect(p.steps[0].keys).toEqual([manifestOf(dA)]);
    expect(p.steps[1].keys).toEqual([manifestOf(a)]);
  });

  it('before <d2> keeps d2\'s chain, and deletes an older full backup', () => {
    const older = backup(20, 0x08);
    const p = plan({ backups: [older, full, d1, d2], wal: WAL }, { beforeBackup: d2.name });
    expect(kept(p)).toEqual([full.name, d1.name, d2.name]);
    expect(gone(p)).toEqual([older.name]);
    expect(decision(p, d2).reasons).toEqual([`${d2.name} or newer`, 'the newest complete backup']);
    expect(p.walKeptFrom).toBe(full.startWal);
  });

  it('--window keeps the chain of the backup it needs: a delta needs its full backup', () => {
    // The newest backup finished before now − 3d is d1: d1 and d2 are kept by the rule, full as their base.
    const p = plan(chain, { windowMs: 3 * DAY });
    expect(kept(p)).toEqual([full.name, d1.name, d2.name]);
    expect(decision(p, d1).reasons).toEqual(['needed for the 3d recovery window', `base of kept delta ${d2.name}`]);
    expect(decision(p, full).reasons).toEqual([`base of kept delta ${d1.name}`]);
    expect(p.walKeptFrom).toBe(full.startWal);
  });

  it('several kept deltas of one base: one reason names them all; a newer full backup no kept delta rests on goes', () => {
    // F ← d1 and F ← d3, with a full G between: retain 1 keeps d3, and F under it; G and d1 go.
    const f = backup(10, 0x10);
    const e1 = delta(8, 0x14, f);
    const g = backup(5, 0x20);
    const e3 = delta(1, 0x30, f);
    const p = plan({ backups: [f, e1, g, e3], wal: WAL }, { retain: 1 });
    expect(kept(p)).toEqual([f.name, e3.name]);
    expect(decision(p, g).reasons).toEqual(['kept by no rule, and no kept delta rests on it']);
    expect(decision(p, e1).reasons).toEqual(['kept by no rule, and no kept delta rests on it']);
    expect(p.walKeptFrom).toBe(f.startWal);
    expect(decision(plan({ backups: [f, e1, g, e3], wal: WAL }, { retain: 3 }), f).reasons).toEqual([`base of kept deltas ${e1.name}, ${e3.name}`]);
  });

  it('a broken chain (a base deleted by hand): no crash, the rules as they are, the plan says it cannot be restored', () => {
    const missing = nameAt(ago(7 * DAY));
    const old = backup(20, 0x08);
    const b1 = delta(5, 0x20, missing);
    const b2 = delta(1, 0x30, b1);
    const archive: Archive = { backups: [old, b1, b2], wal: WAL };
    const p = plan(archive, { retain: 1 });
    // b2 by the rule, b1 under it (what is left of the chain); nothing else goes because of the break.
    expect(kept(p)).toEqual([b1.name, b2.name]);
    expect(gone(p)).toEqual([old.name]);
    expect(decision(p, b1).broken).toBe(`its base ${missing} is missing`);
    expect(decision(p, b2).broken).toBe(`its chain rests on ${missing} (the base of ${b1.name}), which is missing`);
    expect(decision(p, old).broken).toBeUndefined();
    expect(p.walKeptFrom).toBe(b1.startWal);
    expect(gone(plan(archive, { retain: 3 }))).toEqual([]);
    const text = describePlan(p, false);
    expect(text).toContain(`keep   ${b1.name}  delta of ${missing} (broken: its base ${missing} is missing), finished ${b1.stopTime}  (base of kept delta ${b2.name})`);
    expect(text).toContain(`broken chains: 2 backup(s) cannot be restored (their chain rests on a backup that is missing or not theirs): ${b1.name}, ${b2.name}`);
    const summary = planSummary(p, false) as { backups: Record<string, unknown>[] };
    expect(summary.backups.map((b) => [b.name, b.base, b.broken])).toEqual([
      [old.name, null, null],
      [b1.name, missing, `its base ${missing} is missing`],
      [b2.name, b1.name, decision(p, b2).broken],
    ]);
  });

  it('a broken delta no rule keeps goes like any other backup', () => {
    const lone = delta(10, 0x10, nameAt(ago(11 * DAY)));
    const p = plan({ backups: [lone, backup(1, 0x30)], wal: WAL }, { retain: 1 });
    expect(gone(p)).toEqual([lone.name]);
    expect(p.walKeptFrom).toBe(seg(1, 0x30));
  });

  it('bases that loop do not hang the plan', () => {
    const x = delta(5, 0x20, 'base_loop');
    const y = { ...delta(1, 0x30, x), name: 'base_loop' };
    const p = plan({ backups: [backup(10, 0x10), x, y], wal: WAL }, { retain: 1 });
    expect(kept(p)).toEqual([x.name, 'base_loop']);
    expect(decision(p, x).broken).toMatch(/loops back/);
  });

  it('the plan names each backup full or a delta of its base, and why a base stays; JSON has base', () => {
    const older = backup(20, 0x08);
    const p = plan({ backups: [older, full, d1, d2], wal: WAL }, { retain: 1 });
    const text = describePlan(p, false);
    expect(text).toContain(`delete ${older.name}  full, finished ${older.stopTime}  (older than every backup kept)`);
    expect(text).toContain(`keep   ${full.name}  full, finished ${full.stopTime}  (base of kept delta ${d1.name})`);
    expect(text).toContain(`keep   ${d1.name}  delta of ${full.name}, finished ${d1.stopTime}  (base of kept delta ${d2.name})`);
    expect(text).toContain(`keep   ${d2.name}  delta of ${d1.name}, finished ${d2.stopTime}  (one of the 1 newest; the newest complete backup)`);
    expect(text).not.toContain('broken');
    const summary = planSummary(p, false) as { backups: Record<string, unknown>[]; wal: { keptFrom: string } };
    expect(summary.backups.map((b) => [b.name, b.keep, b.base, b.broken])).toEqual([
      [older.name, false, null, null],
      [full.name, true, null, null],
      [d1.name, true, full.name, null],
      [d2.name, true, d1.name, null],
    ]);
    expect(summary.wal.keptFrom).toBe(full.startWal);
  });

  it('delete everything deletes a chain\'s manifests from its newest delta down', () => {
    const p = planRetention(input(chain), { everything: true });
    expect(p.steps.map((s) => s.what)).toEqual(['manifests', 'manifests', 'manifests', 'backups', 'wal', 'identity']);
    expect(p.steps.slice(0, 3).map((s) => s.keys)).toEqual([[manifestOf(d2)], [manifestOf(d1)], [manifestOf(full)]]);
  });
});

describe('delete everything', () => {
  it('deletes every object, manifests first and archive.json last, history files too', () => {
    const extra = [...backupKeys(nameAt(ago(HOUR)), false).map((key) => object(key, ago(HOUR))), object('wal/notes.txt'), object('README')];
    const i = input({ ...three, extra });
    const p = planRetention(i, { everything: true });
    expect(p.steps.map((s) => s.what)).toEqual(['manifests', 'backups', 'wal', 'other', 'identity']);
    expect(p.steps[0].keys.every((k) => k.endsWith('/manifest.json'))).toBe(true);
    expect(p.steps[0].keys).toHaveLength(3);
    expect(p.steps[4].keys).toEqual(['archive.json']);
    expect([...deletedKeys(p)].sort()).toEqual(i.objects.map((o) => o.key).sort());
    expect(p.backups.every((b) => !b.keep && b.reasons[0] === 'everything')).toBe(true);
    expect(p.historyKept).toEqual([]);
    expect(plannedDeletions(p)).toBe(i.objects.length);
  });

  it('takes no other rule', () => {
    expect(() => plan(three, { everything: true, retain: 1 })).toThrow(UsageError);
    expect(() => plan(three, {})).toThrow(UsageError);
  });
});

describe('the plan as text and JSON', () => {
  it('names the backups, the WAL ranges with counts, and says a dry run deleted nothing', () => {
    const text = describePlan(plan(three, { retain: 2 }), false);
    expect(text).toContain(`delete ${b1.name}`);
    expect(text).toContain(`keep   ${b3.name}`);
    expect(text).toContain(`delete timeline 1: ${seg(1, 0x08)} .. ${seg(1, 0x1f)} (25 file(s))`);
    expect(text).toMatch(/dry run: \d+ object\(s\) would be deleted; nothing was\. Add --confirm to delete\.\n$/);
    expect(describePlan(plan(three, { retain: 2 }), true)).toMatch(/done: \d+ object\(s\) deleted\n$/);
  });

  it('JSON carries the decisions without the keys', () => {
    const summary = planSummary(plan(three, { retain: 2 }), false) as { dryRun: boolean; backups: Record<string, unknown>[]; wal: { keptFrom: string }; steps: unknown[] };
    expect(summary.dryRun).toBe(true);
    expect(summary.backups.map((b) => [b.name, b.keep])).toEqual([
      [b1.name, false],
      [b2.name, true],
      [b3.name, true],
    ]);
    expect(summary.backups[0]).not.toHaveProperty('keys');
    expect(summary.wal.keptFrom).toBe(seg(1, 0x20));
    expect(summary.steps).toEqual([
      { what: 'manifests', objects: 1 },
      { what: 'backups', objects: 3 },
      { what: 'wal', objects: 25 },
    ]);
  });
});

describe("delete's command line", () => {
  it('reads the rules, --window, --confirm and --json', () => {
    expect(parseDeleteArgs(['retain', '3'])).toEqual({ policy: { retain: 3 }, confirm: false, json: false });
    expect(parseDeleteArgs(['retain', '2', '--window', '7d', '--confirm', '--json'])).toEqual({ policy: { retain: 2, windowMs: 7 * DAY }, confirm: true, json: true });
    expect(parseDeleteArgs(['--window=12h'])).toEqual({ policy: { windowMs: 12 * HOUR }, confirm: false, json: false });
    expect(parseDeleteArgs(['before', '2026-11-30T07:00:00+01:00']).policy).toEqual({ beforeTime: new Date('2026-11-30T06:00:00Z') });
    expect(parseDeleteArgs(['before', 'base_20261130T060102Z']).policy).toEqual({ beforeBackup: 'base_20261130T060102Z' });
    expect(parseDeleteArgs(['everything', '--confirm'])).toEqual({ policy: { everything: true }, confirm: true, json: false });
  });

  it.each([
    [[], /needs a rule/],
    [['retain'], /takes one argument/],
    [['retain', '0'], /at least 1/],
    [['retain', '2x'], /at least 1/],
    [['before', '2026-11-30T06:00:00'], /no time zone/],
    [['before', 'yesterday'], /ISO 8601 time with a zone .* or a backup name/],
    [['everything', '--window', '1d'], /takes no --window/],
    [['everything', 'now'], /takes no argument/],
    [['purge'], /unknown rule "purge"/],
    [['retain', '1', '--force'], /unknown option --force/],
    [['--window', '7'], /duration such as 30d/],
  ])('fails for %j', (args, message) => {
    expect(() => parseDeleteArgs(args as string[])).toThrow(UsageError);
    expect(() => parseDeleteArgs(args as string[])).toThrow(message);
  });

  it('reads durations in s, m, h, d, w and sums them', () => {
    expect(parseDuration('30d')).toBe(30 * DAY);
    expect(parseDuration('1d12h')).toBe(36 * HOUR);
    expect(parseDuration('90m')).toBe(90 * 60_000);
    expect(parseDuration('2w')).toBe(14 * DAY);
    expect(parseDuration('45s')).toBe(45_000);
    expect(() => parseDuration('0d')).toThrow(/longer than 0/);
  });
});
