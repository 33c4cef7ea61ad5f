/**
 * `wal-verify`, the pure part: is the archived WAL continuous from the backups' start to the newest
 * archived segment, on every timeline a recovery may follow?
 *
 * 1. Every complete backup is a starting point (its timeline, its startWal); with no backup, the
 *    oldest archived segment is. Deltas and the backups they rest on alike: a delta's chain begins
 *    with older backups (its base, down to a full backup), which stay listed as long as the delta
 *    (retention keeps them) and each stay restorable to their own point, so the check starts at
 *    the oldest of them, not at the delta's own start.
 * 2. A timeline is followed from a starting point when it is the backup's own, or when its history
 *    (`0000000N.history`: every ancestor with the LSN where it switched to the next) names the
 *    backup's timeline with a switch at or after the backup's start: replay of that backup can
 *    switch into it.
 * 3. On each followed timeline the expected range starts at the backup's startWal (its own
 *    timeline) or at the segment holding the switch point (a descendant: PostgreSQL copies the
 *    parent's part of that segment into the new timeline's first one), and ends at the newest
 *    segment archived on that timeline, at least at the backup's stopWal, and at least just before
 *    the switch point of every followed child timeline (the parent's own segment there is the
 *    `.partial` one a promotion leaves, which recovery never reads).
 * 4. Every missing segment in those ranges is a gap; a timeline after the first with segments
 *    archived but no history file is one too (recovery cannot switch into it).
 *
 * The I/O (listing, reading the history files) is the command's (commands/retention.ts).
 */
import { CorruptObjectError } from '../errors';
import { walFileKind } from '../wal-names';
import { formatLsn, parseLsn, segmentNameOf, timelineOf } from './lsn';

/** A timeline's history file, parsed. */
export interface TimelineHistory {
  readonly timeline: number;
  /** Its ancestors, oldest first, each with the LSN where it switched to the next one. */
  readonly ancestors: readonly { readonly timeline: number; readonly switchLsn: bigint }[];
}

/** The name of timeline `timeline`'s history file: `00000002.history`. */
export function historyFileName(timeline: number): string {
  return `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

/**
 * Parses a history file as PostgreSQL writes it (timeline.c): `parentTLI<TAB>switchpoint<TAB>reason`
 * per line, `#` comments and blank lines ignored. `what` names it in errors.
 */
export function parseTimelineHistory(timeline: number, text: string, what: string = historyFileName(timeline)): TimelineHistory {
  const ancestors: { timeline: number; switchLsn: bigint }[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(\d+)\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})(\s|$)/.exec(line);
    if (!match) throw new CorruptObjectError(`${what}, line ${index + 1}: ${JSON.stringify(raw)} is not "<timeline> <switch LSN> <reason>"`);
    const parent = Number(match[1]);
    const previous = ancestors[ancestors.length - 1];
    if (parent >= timeline || (previous && (parent <= previous.timeline || parseLsn(match[2]) < previous.switchLsn))) {
      throw new CorruptObjectError(`${what}, line ${index + 1}: timelines must increase below ${timeline} and switch points must not go back`);
    }
    ancestors.push({ timeline: parent, switchLsn: parseLsn(match[2]) });
  }
  return { timeline, ancestors };
}

/** The number of segment `name` (timeline ignored): its position in the WAL. */
export function segmentNumber(name: string, segmentSize: number): bigint {
  const perLog = 0x1_0000_0000n / BigInt(segmentSize);
  return BigInt(`0x${name.slice(8, 16)}`) * perLog + BigInt(`0x${name.slice(16, 24)}`);
}

/** The name of segment number `segno` of `timeline`. */
export function segmentName(timeline: number, segno: bigint, segmentSize: number): string {
  return segmentNameOf(timeline, segno * BigInt(segmentSize), segmentSize);
}

/** What wal-verify needs of a backup (a BackupManifest has it). */
export interface VerifiedBackup {
  readonly name: string;
  readonly timeline: number;
  readonly startWal: string;
  readonly stopWal: string;
  readonly startLsn: string;
}

export interface WalVerifyInput {
  /** Every name under `wal/` (segments, `.history`, `.backup`, `.partial`; others are ignored). */
  readonly walNames: readonly string[];
  /** The archived history files, parsed. */
  readonly histories: readonly TimelineHistory[];
  /** The complete backups (any order), deltas and their bases alike. */
  readonly backups: readonly VerifiedBackup[];
  /** The cluster's WAL segment size (archive.json). */
  readonly segmentSize: number;
}

/** Missing segments `first` .. `last` of one timeline. */
export interface WalGap {
  readonly timeline: number;
  readonly first: string;
  readonly last: string;
  readonly missing: number;
}

export interface TimelineReport {
  readonly timeline: number;
  /** The timeline it branched from, and where (a history file says). */
  readonly parent: number | undefined;
  readonly switchLsn: string | undefined;
  /** The expected range: its first and last segment. */
  readonly first: string;
  readonly last: string;
  readonly expected: number;
  /** Segments of the range that are archived. */
  readonly segments: number;
  readonly gaps: readonly WalGap[];
}

export interface WalVerifyReport {
  readonly ok: boolean;
  /** Where checking starts: the oldest backup's startWal (a full backup deltas rest on, often), or the oldest segment when there is no backup. */
  readonly from: { readonly backup: string | undefined; readonly segment: string } | undefined;
  /** The newest segment checked: the last of the newest timeline. */
  readonly newest: string | undefined;
  readonly timelines: readonly TimelineReport[];
  readonly gaps: readonly WalGap[];
  /** Timelines after the first with segments archived at or after the start but no history file. */
  readonly missingHistory: readonly number[];
  /** Segments inside the checked ranges, and outside them (older ones, unreachable timelines). */
  readonly segments: number;
  readonly unchecked: number;
}

interface Seed {
  readonly backup: string | undefined;
  readonly timeline: number;
  readonly start: bigint;
  readonly startLsn: bigint;
  readonly stop: bigint;
}

export function verifyWal(input: WalVerifyInput): WalVerifyReport {
  const size = input.segmentSize;
  const present = new Map<number, bigint[]>();
  const historyFiles = new Set<number>();
  for (const name of input.walNames) {
    const kind = walFileKind(name);
    if (kind === 'segment') {
      const timeline = timelineOf(name);
      if (!present.has(timeline)) present.set(timeline, []);
      present.get(timeline)!.push(segmentNumber(name, size));
    } else if (kind === 'history') {
      historyFiles.add(parseInt(name.slice(0, 8), 16));
    }
  }
  for (const list of present.values()) list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const histories = new Map(input.histories.map((history) => [history.timeline, history]));

  // 1. The starting points.
  const seeds: Seed[] = input.backups.map((backup) => ({
    backup: backup.name,
    timeline: backup.timeline,
    start: segmentNumber(backup.startWal, size),
    startLsn: parseLsn(backup.startLsn),
    stop: segmentNumber(backup.stopWal, size),
  }));
  if (seeds.length === 0) {
    let oldest: { timeline: number; segno: bigint } | undefined;
    for (const [timeline, list] of present) {
      if (!oldest || list[0] < oldest.segno || (list[0] === oldest.segno && timeline < oldest.timeline)) oldest = { timeline, segno: list[0] };
    }
    if (!oldest) return { ok: true, from: undefined, newest: undefined, timelines: [], gaps: [], missingHistory: [], segments: 0, unchecked: 0 };
    seeds.push({ backup: undefined, timeline: oldest.timeline, start: oldest.segno, startLsn: oldest.segno * BigInt(size), stop: oldest.segno });
  }
  const first = seeds.reduce((a, b) => (b.start < a.start || (b.start === a.start && b.timeline < a.timeline) ? b : a));

  /** A timeline's ancestors: its own history file, else the part before it of a descendant's. */
  const ancestry = (timeline: number): TimelineHistory['ancestors'] | undefined => {
    const own = histories.get(timeline);
    if (own) return own.ancestors;
    if (timeline === 1) return [];
    for (const history of histories.values()) {
      const index = history.ancestors.findIndex((ancestor) => ancestor.timeline === timeline);
      if (index >= 0) return history.ancestors.slice(0, index);
    }
    return undefined;
  };

  // 2. Where each timeline begins for the seeds that reach it.
  const timelines = new Set<number>([...present.keys(), ...histories.keys(), ...seeds.map((seed) => seed.timeline)]);
  const begins = new Map<number, bigint>();
  const stops = new Map<number, bigint>();
  for (const timeline of timelines) {
    const ancestors = ancestry(timeline);
    for (const seed of seeds) {
      let begin: bigint | undefined;
      if (seed.timeline === timeline) {
        begin = seed.start;
        if (seed.stop > (stops.get(timeline) ?? -1n)) stops.set(timeline, seed.stop);
      } else if (ancestors && ancestors.length > 0) {
        const via = ancestors.find((ancestor) => ancestor.timeline === seed.timeline);
        if (via && via.switchLsn >= seed.startLsn) {
          const branch = ancestors[ancestors.length - 1].switchLsn / BigInt(size);
          begin = branch > seed.start ? branch : seed.start;
        }
      }
      if (begin !== undefined && begin < (begins.get(timeline) ?? begin + 1n)) begins.set(timeline, begin);
    }
  }

  // 3. Where each followed timeline must reach: its newest segment, its backups' stop, its followed children's switch.
  const ends = new Map<number, bigint>();
  const raise = (timeline: number, segno: bigint) => {
    if (segno > (ends.get(timeline) ?? -1n)) ends.set(timeline, segno);
  };
  for (const [timeline, begin] of begins) {
    const list = present.get(timeline) ?? [];
    if (list.length > 0 && list[list.length - 1] >= begin) raise(timeline, list[list.length - 1]);
    const stop = stops.get(timeline);
    if (stop !== undefined) raise(timeline, stop);
    const ancestors = ancestry(timeline);
    const parent = ancestors?.[ancestors.length - 1];
    if (parent && begins.has(parent.timeline)) raise(parent.timeline, parent.switchLsn / BigInt(size) - 1n);
  }

  // 4. The gaps.
  const reports: TimelineReport[] = [];
  let checked = 0;
  for (const timeline of [...begins.keys()].sort((a, b) => a - b)) {
    const begin = begins.get(timeline)!;
    const end = ends.get(timeline);
    if (end === undefined || end < begin) continue;
    const inRange = (present.get(timeline) ?? []).filter((segno) => segno >= begin && segno <= end);
    const gaps: WalGap[] = [];
    let expected = begin;
    for (const segno of [...inRange, end + 1n]) {
      if (segno > expected) gaps.push({ timeline, first: segmentName(timeline, expected, size), last: segmentName(timeline, segno - 1n, size), missing: Number(segno - expected) });
      expected = segno + 1n;
    }
    checked += inRange.length;
    const ancestors = ancestry(timeline);
    const parent = ancestors?.[ancestors.length - 1];
    reports.push({
      timeline,
      parent: parent?.timeline,
      switchLsn: parent ? formatLsn(parent.switchLsn) : undefined,
      first: segmentName(timeline, begin, size),
      last: segmentName(timeline, end, size),
      expected: Number(end - begin + 1n),
      segments: inRange.length,
      gaps,
    });
  }
  const missingHistory = [...present.entries()]
    .filter(([timeline, list]) => timeline > 1 && !historyFiles.has(timeline) && list[list.length - 1] >= first.start)
    .map(([timeline]) => timeline)
    .sort((a, b) => a - b);
  const gaps = reports.flatMap((report) => report.gaps);
  const total = [...present.values()].reduce((sum, list) => sum + list.length, 0);
  return {
    ok: gaps.length === 0 && missingHistory.length === 0,
    from: { backup: first.backup, segment: segmentName(first.timeline, first.start, size) },
    newest: reports.length > 0 ? reports[reports.length - 1].last : undefined,
    timelines: reports,
    gaps,
    missingHistory,
    segments: checked,
    unchecked: total - checked,
  };
}

/** The report as text: a summary line per timeline, then every problem. */
export function describeWalVerify(report: WalVerifyReport): string {
  if (!report.from) return 'wal-verify: the archive holds no WAL segment and no backup: nothing to verify\n';
  const lines: string[] = [];
  lines.push(`from ${report.from.segment}${report.from.backup ? ` (start of the oldest backup, ${report.from.backup})` : ' (the oldest archived segment: no complete backup)'} to ${report.newest ?? report.from.segment}`);
  for (const t of report.timelines) {
    const branch = t.parent === undefined ? '' : ` (from timeline ${t.parent} at ${t.switchLsn})`;
    lines.push(`timeline ${t.timeline}${branch}: ${t.first} .. ${t.last}, ${t.segments} of ${t.expected} segments${t.gaps.length > 0 ? `, ${t.gaps.length} gap(s)` : ''}`);
  }
  for (const gap of report.gaps) lines.push(`GAP timeline ${gap.timeline}: ${gap.first} .. ${gap.last} (${gap.missing} missing)`);
  for (const timeline of report.missingHistory) lines.push(`MISSING ${historyFileName(timeline)}: timeline ${timeline} has segments but no history file; recovery cannot switch into it`);
  const outside = report.unchecked > 0 ? `; ${report.unchecked} older or unreachable segment(s) not checked` : '';
  lines.push(`${report.ok ? 'ok' : 'FAILED'}: ${report.timelines.length} timeline(s), ${report.segments} segment(s)${outside}`);
  return `${lines.join('\n')}\n`;
}
