/**
 * wal-verify's planner (backup/wal-verify.ts), pure: WAL continuity from the oldest backup's start
 * to the newest segment, on every timeline a recovery may follow through the history files.
 */
import { describe, expect, it } from 'vitest';
import { TimelineHistory, VerifiedBackup, WalVerifyInput, describeWalVerify, historyFileName, parseTimelineHistory, segmentName, segmentNumber, verifyWal } from '../../../archiver/src/backup/wal-verify';
import { CorruptObjectError } from '../../../archiver/src/errors';
import { lsnIn, seg, segs, syntheticManifest } from '../../../testkit/synthetic-archive';

const MiB = 1024 * 1024;
const T0 = new Date('2026-11-20T00:00:00Z');

function backupAt(timeline: number, start: number, stop = start + 1, minutes = 0): VerifiedBackup {
  const at = new Date(T0.getTime() + minutes * 60_000);
  return syntheticManifest({ start: at, stop: new Date(at.getTime() + 60_000), startWal: seg(timeline, start), stopWal: seg(timeline, stop) });
}

/** A history file's text as PostgreSQL writes it. */
function historyText(lines: [number, string][]): string {
  return lines.map(([timeline, lsn]) => `${timeline}\t${lsn}\tno recovery target specified\n\n`).join('');
}

function verify(walNames: string[], backups: VerifiedBackup[], histories: Record<number, [number, string][]> = {}, segmentSize = 16 * MiB) {
  const parsed: TimelineHistory[] = Object.entries(histories).map(([timeline, lines]) => parseTimelineHistory(Number(timeline), historyText(lines)));
  const input: WalVerifyInput = { walNames: [...walNames, ...Object.keys(histories).map((t) => historyFileName(Number(t)))], histories: parsed, backups, segmentSize };
  return verifyWal(input);
}

const without = (names: string[], ...gone: string[]) => names.filter((name) => !gone.includes(name));

describe('one timeline', () => {
  const wal = segs(1, 0x08, 0x20);
  const backup = backupAt(1, 0x10);

  it('is continuous from the backup\'s startWal to the newest segment', () => {
    const report = verify(wal, [backup]);
    expect(report.ok).toBe(true);
    expect(report.from).toEqual({ backup: backup.name, segment: seg(1, 0x10) });
    expect(report.newest).toBe(seg(1, 0x20));
    expect(report.timelines).toEqual([{ timeline: 1, parent: undefined, switchLsn: undefined, first: seg(1, 0x10), last: seg(1, 0x20), expected: 17, segments: 17, gaps: [] }]);
    expect(report.segments).toBe(17);
    expect(report.unchecked).toBe(8);
    expect(report.missingHistory).toEqual([]);
  });

  it('reports each gap as its first and last missing segment', () => {
    const report = verify(without(wal, seg(1, 0x14), seg(1, 0x15), seg(1, 0x16), seg(1, 0x1a)), [backup]);
    expect(report.ok).toBe(false);
    expect(report.gaps).toEqual([
      { timeline: 1, first: seg(1, 0x14), last: seg(1, 0x16), missing: 3 },
      { timeline: 1, first: seg(1, 0x1a), last: seg(1, 0x1a), missing: 1 },
    ]);
  });

  it('the backup\'s own first segment missing is a gap; a segment missing before it is not', () => {
    expect(verify(without(wal, seg(1, 0x10)), [backup]).gaps).toEqual([{ timeline: 1, first: seg(1, 0x10), last: seg(1, 0x10), missing: 1 }]);
    expect(verify(without(wal, seg(1, 0x0f)), [backup]).ok).toBe(true);
  });

  it('the WAL must reach the backup\'s stopWal', () => {
    const report = verify(segs(1, 0x08, 0x11), [backupAt(1, 0x10, 0x13)]);
    expect(report.gaps).toEqual([{ timeline: 1, first: seg(1, 0x12), last: seg(1, 0x13), missing: 2 }]);
  });

  it('starts at the oldest backup when there are several', () => {
    const report = verify(without(wal, seg(1, 0x0d)), [backupAt(1, 0x18, 0x19, 60), backupAt(1, 0x0c)]);
    expect(report.from?.segment).toBe(seg(1, 0x0c));
    expect(report.gaps.map((g) => g.first)).toEqual([seg(1, 0x0d)]);
  });

  it('crosses log boundaries (…000000FF then …0100000000)', () => {
    expect(verify(segs(1, 0xfe, 0x102), [backupAt(1, 0xfe)]).ok).toBe(true);
    expect(verify(without(segs(1, 0xfe, 0x102), '000000010000000100000000'), [backupAt(1, 0xfe)]).gaps).toEqual([{ timeline: 1, first: '000000010000000100000000', last: '000000010000000100000000', missing: 1 }]);
  });

  it('with 64 MiB segments a log holds 64 of them', () => {
    const size = 64 * MiB;
    const names = ['00000001000000000000003E', '00000001000000000000003F', '000000010000000100000000', '000000010000000100000001'];
    const backup64 = { ...syntheticManifest({ start: T0, stop: T0, startWal: names[0] }), startLsn: '0/F8000028', walSegmentSize: size };
    expect(verify(names, [backup64], {}, size).ok).toBe(true);
    expect(verify(without(names, names[1]), [backup64], {}, size).gaps).toEqual([{ timeline: 1, first: names[1], last: names[1], missing: 1 }]);
    expect(segmentNumber('000000010000000100000000', size)).toBe(64n);
    expect(segmentName(1, 63n, size)).toBe('00000001000000000000003F');
  });

  it('ignores .partial and .backup files and names it does not know', () => {
    expect(verify([...wal, `${seg(1, 0x10)}.00000028.backup`, `${seg(1, 0x21)}.partial`, 'notes.txt'], [backup]).ok).toBe(true);
  });
});

describe('timeline switches', () => {
  // A promotion at 0/25000100 (segment 0x25): timeline 1 up to 0x24 (its 0x25 is the .partial),
  // timeline 2 from 0x25 on.
  const switched = [...segs(1, 0x08, 0x24), `${seg(1, 0x25)}.partial`, ...segs(2, 0x25, 0x30)];
  const histories = { 2: [[1, '0/25000100']] as [number, string][] };
  const backup = backupAt(1, 0x10);

  it('follows a backup\'s timeline into its child from the switch point', () => {
    const report = verify(switched, [backup], histories);
    expect(report.ok).toBe(true);
    expect(report.timelines.map((t) => [t.timeline, t.first, t.last, t.parent, t.switchLsn])).toEqual([
      [1, seg(1, 0x10), seg(1, 0x24), undefined, undefined],
      [2, seg(2, 0x25), seg(2, 0x30), 1, '0/25000100'],
    ]);
    expect(report.newest).toBe(seg(2, 0x30));
  });

  it('the child\'s first segment missing is a gap', () => {
    expect(verify(without(switched, seg(2, 0x25)), [backup], histories).gaps).toEqual([{ timeline: 2, first: seg(2, 0x25), last: seg(2, 0x25), missing: 1 }]);
  });

  it('the parent must reach the segment before the switch, even when nothing newer is archived on it', () => {
    expect(verify(without(switched, seg(1, 0x24)), [backup], histories).gaps).toEqual([{ timeline: 1, first: seg(1, 0x24), last: seg(1, 0x24), missing: 1 }]);
  });

  it('a switch exactly at a segment boundary: the parent ends just before it', () => {
    const atBoundary = { 2: [[1, '0/25000000']] as [number, string][] };
    expect(verify(switched, [backup], atBoundary).ok).toBe(true);
    expect(verify(without(switched, seg(1, 0x24)), [backup], atBoundary).ok).toBe(false);
  });

  it('follows a chain of switches (1 → 2 → 3)', () => {
    const chain = [...segs(1, 0x10, 0x1f), ...segs(2, 0x20, 0x2f), ...segs(3, 0x30, 0x35)];
    const h = { 2: [[1, '0/20000000']] as [number, string][], 3: [[1, '0/20000000'], [2, '0/30000000']] as [number, string][] };
    const report = verify(chain, [backup], h);
    expect(report.ok).toBe(true);
    expect(report.timelines.map((t) => t.timeline)).toEqual([1, 2, 3]);
    expect(verify(without(chain, seg(2, 0x2f)), [backup], h).gaps).toEqual([{ timeline: 2, first: seg(2, 0x2f), last: seg(2, 0x2f), missing: 1 }]);
  });

  it('a backup on the new timeline is not held to the older timeline\'s segments', () => {
    const report = verify(without(switched, seg(1, 0x12)), [backupAt(2, 0x28)], histories);
    expect(report.ok).toBe(true);
    expect(report.timelines.map((t) => t.timeline)).toEqual([2]);
    expect(report.from).toEqual({ backup: expect.any(String), segment: seg(2, 0x28) });
  });

  it('does not follow a timeline that branched off before the backup started', () => {
    // Timeline 3 left timeline 1 at 0x18; the backup started at 0x20 on 1: its replay can never reach 3,
    // so a hole in 3 after the backup's start (0x21) is no gap of this archive's recovery.
    const wal = [...segs(1, 0x10, 0x28), ...segs(3, 0x18, 0x20), ...segs(3, 0x22, 0x24)];
    const report = verify(wal, [backupAt(1, 0x20)], { 3: [[1, '0/18000000']] });
    expect(report.ok).toBe(true);
    expect(report.timelines.map((t) => t.timeline)).toEqual([1]);
  });

  it('a later timeline with segments but no history file fails: recovery cannot switch into it', () => {
    const report = verify(switched, [backup]);
    expect(report.ok).toBe(false);
    expect(report.missingHistory).toEqual([2]);
    expect(describeWalVerify(report)).toContain('MISSING 00000002.history');
  });

  it('an old timeline only before the backup needs no history file', () => {
    expect(verify([...segs(2, 0x01, 0x05), ...segs(3, 0x10, 0x12)], [backupAt(3, 0x10)], { 3: [[2, '0/8000000']] }).ok).toBe(true);
  });
});

describe('delta backups', () => {
  /** A delta of `base`, taken `minutes` after T0 from segment `start` of `timeline`. */
  const deltaOf = (base: VerifiedBackup, timeline: number, start: number, minutes: number) => ({ ...backupAt(timeline, start, start + 1, minutes), base: base.name });

  it('starts at the start of a delta\'s base, the older backup: a hole between the two is a gap', () => {
    const full = backupAt(1, 0x10);
    const delta = deltaOf(full, 1, 0x20, 60);
    const wal = segs(1, 0x08, 0x28);
    // The delta first: the order of the backups does not matter.
    const report = verify(without(wal, seg(1, 0x15)), [delta, full]);
    expect(report.from).toEqual({ backup: full.name, segment: seg(1, 0x10) });
    expect(report.gaps).toEqual([{ timeline: 1, first: seg(1, 0x15), last: seg(1, 0x15), missing: 1 }]);
    expect(describeWalVerify(report)).toContain(`from ${seg(1, 0x10)} (start of the oldest backup, ${full.name}) to ${seg(1, 0x28)}`);
    expect(verify(wal, [delta, full]).ok).toBe(true);
  });

  it('a delta on a new timeline, its base on the parent: the parent is checked from the base\'s start to the switch', () => {
    // Promotion at 0/25000100: the full backup on 1 at 0x10, a delta of it on 2 at 0x28.
    const switched = [...segs(1, 0x08, 0x24), `${seg(1, 0x25)}.partial`, ...segs(2, 0x25, 0x30)];
    const histories = { 2: [[1, '0/25000100']] as [number, string][] };
    const full = backupAt(1, 0x10);
    const delta = deltaOf(full, 2, 0x28, 60);
    const report = verify(without(switched, seg(1, 0x12)), [delta, full], histories);
    expect(report.from).toEqual({ backup: full.name, segment: seg(1, 0x10) });
    expect(report.timelines.map((t) => [t.timeline, t.first, t.last])).toEqual([
      [1, seg(1, 0x10), seg(1, 0x24)],
      [2, seg(2, 0x25), seg(2, 0x30)],
    ]);
    expect(report.gaps).toEqual([{ timeline: 1, first: seg(1, 0x12), last: seg(1, 0x12), missing: 1 }]);
  });
});

describe('without backups', () => {
  it('checks from the oldest archived segment', () => {
    const report = verify(without(segs(1, 0x05, 0x09), seg(1, 0x07)), []);
    expect(report.from).toEqual({ backup: undefined, segment: seg(1, 0x05) });
    expect(report.gaps).toEqual([{ timeline: 1, first: seg(1, 0x07), last: seg(1, 0x07), missing: 1 }]);
  });

  it('an empty archive is fine', () => {
    const report = verify([], []);
    expect(report).toEqual(expect.objectContaining({ ok: true, from: undefined, timelines: [], segments: 0 }));
    expect(describeWalVerify(report)).toMatch(/nothing to verify/);
  });
});

describe('the report as text', () => {
  it('a summary per timeline, each gap, and the verdict', () => {
    const wal = without(segs(1, 0x08, 0x20), seg(1, 0x14), seg(1, 0x15), seg(1, 0x16));
    const backup = backupAt(1, 0x10);
    const text = describeWalVerify(verify(wal, [backup]));
    expect(text).toContain(`from ${seg(1, 0x10)} (start of the oldest backup, ${backup.name}) to ${seg(1, 0x20)}`);
    expect(text).toContain(`timeline 1: ${seg(1, 0x10)} .. ${seg(1, 0x20)}, 14 of 17 segments, 1 gap(s)`);
    expect(text).toContain(`GAP timeline 1: ${seg(1, 0x14)} .. ${seg(1, 0x16)} (3 missing)`);
    expect(text).toMatch(/FAILED: 1 timeline\(s\), 14 segment\(s\); 8 older or unreachable segment\(s\) not checked\n$/);
    expect(describeWalVerify(verify(segs(1, 0x10, 0x12), [backup]))).toMatch(/^ok: 1 timeline\(s\), 3 segment\(s\)$/m);
  });
});

describe('history files', () => {
  it('reads PostgreSQL\'s format: comments, blank lines, reasons with spaces', () => {
    const text = '# a comment\n1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tat restore point "before migration"\n';
    expect(parseTimelineHistory(3, text)).toEqual({ timeline: 3, ancestors: [{ timeline: 1, switchLsn: 0x3000158n }, { timeline: 2, switchLsn: 0x5000000n }] });
    expect(parseTimelineHistory(2, '1\t0/3000158\n').ancestors).toHaveLength(1);
  });

  it.each([
    ['a line that is not "<timeline> <LSN>"', 'one\t0/3000000\treason\n'],
    ['an ancestor not below the timeline', '3\t0/3000000\treason\n'],
    ['timelines going back', '2\t0/3000000\tx\n1\t0/4000000\ty\n'],
    ['switch points going back', '1\t0/5000000\tx\n2\t0/4000000\ty\n'],
  ])('fails for %s', (_what, text) => {
    expect(() => parseTimelineHistory(3, text)).toThrow(CorruptObjectError);
  });

  it('names history files in hexadecimal', () => {
    expect(historyFileName(10)).toBe('0000000A.history');
    expect(lsnIn(seg(1, 0x25), 0x100)).toBe('0/25000100');
  });
});
