/**
 * `delete`, the pure part: given the archive's objects, its complete backups (oldest first), the
 * policy and the time, which objects go and which stay, each with its reason. The command
 * (commands/retention.ts) lists, plans here, prints the plan and, with --confirm, deletes in the
 * plan's order.
 *
 * 1. The backups the rules keep: the union of what each rule keeps (`retain N`: the N newest;
 *    `before T`: those finished at or after T; `before <backup>`: that one and the newer ones;
 *    `--window D`: the newest that finished before now − D, and every newer one), and always the
 *    newest complete backup. Every rule keeps a run of the newest. The rules count backups, full
 *    and delta alike: `retain 3` keeps the 3 newest backups, which may be one full backup and two
 *    deltas of it (backup-list shows the chains).
 * 2. The bases of the backups kept: every backup a kept delta rests on, down to its full backup
 *    (delta-chain.ts's withBases), is kept too, with the reason `base of kept delta <name>`: a
 *    listed backup is always restorable. The backups kept are then the newest ones and the chains
 *    they rest on. A delta whose chain is broken (a base missing, deleted by hand; a loop) cannot be
 *    restored: the plan says so (`broken`), and the rules treat it as any other backup — nothing
 *    more is deleted because of it, and the bases of its chain still there are kept with it.
 * 3. The WAL kept: everything at or after the earliest startWal of the backups kept (bases
 *    included: a kept base stays restorable to its own point), on every timeline (segments,
 *    `.partial` and `.backup` files by the segment their name starts with), and every `.history`
 *    file. What is older is of no use to any kept backup (each replays from its own startWal
 *    onwards) and goes. With no complete backup at all, no WAL goes.
 * 4. Unfinished backups (objects under `basebackups/<name>/` without a manifest) go when they
 *    cannot be running: last written over a day ago, or started before the newest complete
 *    backup started (backups of a database run one at a time).
 * 5. The order: the manifests of the backups deleted first — a backup stops being listed before
 *    any of its parts goes, so a delete cut short never leaves a listed backup with parts missing;
 *    a delta's manifest goes in a step before its base's (the newest of a chain first), so it never
 *    leaves a listed delta whose base is gone — then their other objects and the unfinished
 *    leftovers, then the WAL.
 *
 * `everything` deletes every object of the archive, in the same order, `archive.json` last.
 */
import { ARCHIVE_LAYOUT, formatDuration } from '../../../contract';
import { BackupNotFoundError, UsageError } from '../errors';
import type { ObjectInfo } from '../storage/storage';
import { walFileKind } from '../wal-names';
import { manifestKey } from './catalog';
import { withBases } from './delta-chain';
import { timelineOf } from './lsn';
import type { BackupManifest } from './manifest';

/** An unfinished backup younger than this, and newer than the newest complete one, may be running. */
export const UNFINISHED_GRACE_MS = 24 * 60 * 60 * 1000;

/** What to delete. At least one rule, or `everything` alone. */
export interface RetentionPolicy {
  /** Delete every object of the archive: WAL, backups, archive.json. @default false */
  readonly everything?: boolean;
  /** Keep the `retain` newest complete backups. @default - no such rule */
  readonly retain?: number;
  /** Keep the backups finished at or after this time. @default - no such rule */
  readonly beforeTime?: Date;
  /** Keep this backup and every newer one. @default - no such rule */
  readonly beforeBackup?: string;
  /** Keep what a recovery to any point of the last `windowMs` needs. @default - no such rule */
  readonly windowMs?: number;
}

export interface RetentionInput {
  /** Every object of the archive (a listing of ''). */
  readonly objects: readonly ObjectInfo[];
  /** The complete backups, oldest first (catalog.ts order). */
  readonly backups: readonly BackupManifest[];
  readonly now: Date;
}

export interface BackupDecision {
  readonly name: string;
  readonly startTime: string;
  readonly stopTime: string;
  readonly startWal: string;
  readonly timeline: number;
  /** The backup it is a delta of; undefined for a full backup. */
  readonly base: string | undefined;
  /** Why it cannot be restored (a backup its chain rests on is missing or of another database, or its bases loop); undefined when it can. */
  readonly broken: string | undefined;
  readonly keep: boolean;
  /** Why it is kept (every rule that keeps it, every kept delta resting on it), or why it goes. */
  readonly reasons: readonly string[];
  /** Its objects (the manifest's key first). */
  readonly keys: readonly string[];
}

export interface UnfinishedDecision {
  readonly name: string;
  readonly objects: number;
  readonly bytes: number;
  /** From its name (`base_20261130T060102Z`), else its oldest object's time. */
  readonly startedAt: string;
  readonly lastWritten: string;
  readonly keep: boolean;
  readonly reason: string;
  readonly keys: readonly string[];
}

/** Files `first` .. `last` (by name) of one timeline. */
export interface WalRange {
  readonly timeline: number;
  readonly first: string;
  readonly last: string;
  readonly count: number;
}

export interface DeletionStep {
  /** What the step removes, for messages: `manifests`, `backups`, `wal`, `other`, `identity`. */
  readonly what: 'manifests' | 'backups' | 'wal' | 'other' | 'identity';
  readonly keys: readonly string[];
}

export interface RetentionPlan {
  readonly everything: boolean;
  /** The complete backups, oldest first. */
  readonly backups: readonly BackupDecision[];
  readonly unfinished: readonly UnfinishedDecision[];
  /** The first segment kept (on any timeline): the earliest startWal of the kept backups, bases included. */
  readonly walKeptFrom: string | undefined;
  readonly walDeleted: readonly WalRange[];
  readonly walKept: readonly WalRange[];
  /** `.history` files kept (all, except with `everything`). */
  readonly historyKept: readonly string[];
  /** Objects kept that the plan does not know (neither WAL, backup nor identity). */
  readonly otherKept: readonly string[];
  /** Every deletion, in order: each step finishes before the next one starts. */
  readonly steps: readonly DeletionStep[];
}

/** Backup names carry their start time: `base_20261130T060102Z`. */
function timeOfName(name: string): Date | undefined {
  const match = /^base_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(name);
  if (!match) return undefined;
  const at = Date.parse(`${match[1]}-${match[2]}-${match[3]}T${match[4]}:${match[5]}:${match[6]}Z`);
  return Number.isNaN(at) ? undefined : new Date(at);
}


function ranges(names: readonly string[]): WalRange[] {
  const byTimeline = new Map<number, string[]>();
  for (const name of names) {
    const timeline = timelineOf(name);
    if (!byTimeline.has(timeline)) byTimeline.set(timeline, []);
    byTimeline.get(timeline)!.push(name);
  }
  return [...byTimeline.entries()]
    .sort(([a], [b]) => a - b)
    .map(([timeline, list]) => {
      const sorted = [...list].sort();
      return { timeline, first: sorted[0], last: sorted[sorted.length - 1], count: sorted.length };
    });
}

/**
 * Why `backup` cannot be restored, as delta-chain.ts's deltaChain would refuse it (a base missing,
 * of another database, or a loop); undefined for a full backup and a delta whose chain is whole.
 */
function brokenChain(backup: BackupManifest, byName: ReadonlyMap<string, BackupManifest>): string | undefined {
  const seen = new Set([backup.name]);
  for (let current = backup; current.base !== undefined; ) {
    const base = byName.get(current.base);
    if (!base) return current === backup ? `its base ${current.base} is missing` : `its chain rests on ${current.base} (the base of ${current.name}), which is missing`;
    if (base.systemIdentifier !== current.systemIdentifier) return `${current.name}'s base ${base.name} is a backup of another database (system ${base.systemIdentifier})`;
    if (seen.has(base.name)) return `its chain loops back to ${base.name}`;
    seen.add(base.name);
    current = base;
  }
  return undefined;
}

/** How many bases `backup` rests on among `byName` (0: a full backup, or a delta whose base is not there). */
function chainDepth(backup: BackupManifest, byName: ReadonlyMap<string, BackupManifest>): number {
  const seen = new Set([backup.name]);
  let depth = 0;
  for (let base = backup.base === undefined ? undefined : byName.get(backup.base); base && !seen.has(base.name); base = base.base === undefined ? undefined : byName.get(base.base)) {
    seen.add(base.name);
    depth++;
  }
  return depth;
}

/** The plan for `policy` (see the module's comment). Throws UsageError for a policy without a rule, BackupNotFoundError for an unknown `beforeBackup`. */
export function planRetention(input: RetentionInput, policy: RetentionPolicy): RetentionPlan {
  const everything = policy.everything ?? false;
  const rules = [policy.retain, policy.beforeTime, policy.beforeBackup, policy.windowMs].filter((rule) => rule !== undefined).length;
  if (everything && rules > 0) throw new UsageError('delete everything takes no other rule (retain, before, --window)');
  if (!everything && rules === 0) throw new UsageError('delete needs a rule: retain <N>, before <time|backup>, --window <duration> or everything');
  if (policy.retain !== undefined && !(Number.isInteger(policy.retain) && policy.retain >= 1)) throw new UsageError(`delete retain takes a whole number of at least 1, got ${policy.retain}`);
  if (policy.windowMs !== undefined && !(policy.windowMs > 0)) throw new UsageError('delete --window takes a positive duration');

  // The archive's objects by kind.
  const walNames: string[] = [];
  const backupObjects = new Map<string, ObjectInfo[]>();
  const others: string[] = [];
  let identity: string | undefined;
  for (const object of input.objects) {
    if (object.key === ARCHIVE_LAYOUT.identity) identity = object.key;
    else if (object.key.startsWith(ARCHIVE_LAYOUT.wal) && !object.key.slice(ARCHIVE_LAYOUT.wal.length).includes('/')) walNames.push(object.key.slice(ARCHIVE_LAYOUT.wal.length));
    else if (object.key.startsWith(ARCHIVE_LAYOUT.basebackups) && object.key.indexOf('/', ARCHIVE_LAYOUT.basebackups.length) > 0) {
      const name = object.key.slice(ARCHIVE_LAYOUT.basebackups.length).split('/')[0];
      if (!backupObjects.has(name)) backupObjects.set(name, []);
      backupObjects.get(name)!.push(object);
    } else others.push(object.key);
  }

  // 1. The backups the rules keep.
  const backups = input.backups;
  const reasons = backups.map(() => [] as string[]);
  const keepFrom = (index: number, reason: string) => {
    for (let i = Math.max(0, index); i < backups.length; i++) reasons[i].push(reason);
  };
  if (!everything) {
    if (policy.retain !== undefined) keepFrom(backups.length - policy.retain, `one of the ${policy.retain} newest`);
    if (policy.beforeTime !== undefined) {
      const limit = policy.beforeTime.getTime();
      const index = backups.findIndex((backup) => Date.parse(backup.stopTime) >= limit);
      if (index >= 0) keepFrom(index, `finished at or after ${policy.beforeTime.toISOString()}`);
    }
    if (policy.beforeBackup !== undefined) {
      const index = backups.findIndex((backup) => backup.name === policy.beforeBackup);
      if (index < 0) throw new BackupNotFoundError(`delete before ${policy.beforeBackup}: no complete backup has that name (backup-list shows them)`);
      keepFrom(index, `${policy.beforeBackup} or newer`);
    }
    if (policy.windowMs !== undefined) {
      const cutoff = input.now.getTime() - policy.windowMs;
      let index = 0;
      backups.forEach((backup, i) => {
        if (Date.parse(backup.stopTime) <= cutoff) index = i;
      });
      keepFrom(index, `needed for the ${formatDuration(policy.windowMs)} recovery window`);
    }
    if (backups.length > 0) reasons[backups.length - 1].push('the newest complete backup');
  }

  // 2. The bases of the backups kept, each with the kept deltas that rest on it directly.
  const byName = new Map(backups.map((backup) => [backup.name, backup]));
  const closed = withBases(backups.filter((_, i) => reasons[i].length > 0).map((backup) => backup.name), backups);
  const restingOn = new Map<string, string[]>();
  for (const backup of backups) {
    if (!closed.has(backup.name) || backup.base === undefined || backup.base === backup.name || !byName.has(backup.base)) continue;
    if (!restingOn.has(backup.base)) restingOn.set(backup.base, []);
    restingOn.get(backup.base)!.push(backup.name);
  }
  backups.forEach((backup, i) => {
    const deltas = restingOn.get(backup.name);
    if (deltas) reasons[i].push(`base of kept delta${deltas.length > 1 ? 's' : ''} ${deltas.join(', ')}`);
  });

  const firstKept = reasons.findIndex((list) => list.length > 0);
  const decisions: BackupDecision[] = backups.map((backup, i) => {
    const keep = reasons[i].length > 0;
    const own = (backupObjects.get(backup.name) ?? []).map((object) => object.key).filter((key) => key !== manifestKey(backup.name));
    const goes = everything ? 'everything' : firstKept < 0 || i < firstKept ? 'older than every backup kept' : 'kept by no rule, and no kept delta rests on it';
    return {
      name: backup.name,
      startTime: backup.startTime,
      stopTime: backup.stopTime,
      startWal: backup.startWal,
      timeline: backup.timeline,
      base: backup.base,
      broken: brokenChain(backup, byName),
      keep,
      reasons: keep ? reasons[i] : [goes],
      keys: [manifestKey(backup.name), ...own],
    };
  });
  const kept = decisions.filter((decision) => decision.keep);

  // 3. The WAL kept: from the earliest startWal of the kept backups (position only: the 16
  // hexadecimal digits after the timeline), and every history file.
  const walKeptFrom = everything ? undefined : kept.map((decision) => decision.startWal).sort((a, b) => a.slice(8).localeCompare(b.slice(8)))[0];
  const walGoes: string[] = [];
  const walStays: string[] = [];
  const historyKept: string[] = [];
  const otherKept: string[] = [];
  for (const name of walNames) {
    const kind = walFileKind(name);
    if (everything) walGoes.push(name);
    else if (kind === 'history') historyKept.push(name);
    else if (kind === undefined) otherKept.push(`${ARCHIVE_LAYOUT.wal}${name}`);
    else if (walKeptFrom !== undefined && name.slice(8, 24) < walKeptFrom.slice(8)) walGoes.push(name);
    else walStays.push(name);
  }

  // 4. Unfinished backups.
  const complete = new Set(backups.map((backup) => backup.name));
  const newest = backups[backups.length - 1];
  const unfinished: UnfinishedDecision[] = [];
  for (const [name, objects] of [...backupObjects.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    if (complete.has(name)) continue;
    const keys = objects.map((object) => object.key);
    if (keys.includes(manifestKey(name)) && !everything) {
      // A manifest that was not read (written after the listing): leave it to the next delete.
      otherKept.push(...keys);
      continue;
    }
    const times = objects.map((object) => object.lastModified.getTime());
    const startedAt = timeOfName(name) ?? new Date(Math.min(...times));
    const lastWritten = new Date(Math.max(...times));
    const stale = lastWritten.getTime() <= input.now.getTime() - UNFINISHED_GRACE_MS;
    const superseded = newest !== undefined && startedAt.getTime() < Date.parse(newest.startTime);
    const keep = !everything && !stale && !superseded;
    const reason = everything
      ? 'everything'
      : stale
        ? 'unfinished, last written over a day ago'
        : superseded
          ? `unfinished, started before the newest complete backup (${newest!.name})`
          : 'unfinished and may be running now (written within a day, newer than every complete backup)';
    unfinished.push({ name, objects: keys.length, bytes: objects.reduce((sum, object) => sum + object.size, 0), startedAt: startedAt.toISOString(), lastWritten: lastWritten.toISOString(), keep, reason, keys });
  }

  // 5. The order. The manifests by depth among the deleted, the deepest first: a delta's goes a step before its base's.
  const deleted = decisions.filter((decision) => !decision.keep);
  const deletedByName = new Map(deleted.map((decision) => [decision.name, byName.get(decision.name)!]));
  const depths = new Map([...deletedByName.values()].map((backup) => [backup.name, chainDepth(backup, deletedByName)]));
  const deepest = Math.max(0, ...depths.values());
  const leftoverKeys = unfinished.filter((u) => !u.keep).flatMap((u) => u.keys);
  const isManifest = (key: string) => key === manifestKey(key.slice(ARCHIVE_LAYOUT.basebackups.length).split('/')[0]);
  const manifests: string[][] = [];
  for (let depth = deepest; depth >= 0; depth--) manifests.push(deleted.filter((decision) => depths.get(decision.name) === depth).map((decision) => decision.keys[0]));
  // With `everything`, an unread manifest (written after the listing) goes in the first step too.
  manifests[0].push(...leftoverKeys.filter(isManifest));
  const steps: DeletionStep[] = [
    ...manifests.map((keys): DeletionStep => ({ what: 'manifests', keys })),
    { what: 'backups', keys: [...deleted.flatMap((decision) => decision.keys.slice(1)), ...leftoverKeys.filter((key) => !isManifest(key))] },
    { what: 'wal', keys: walGoes.sort().map((name) => `${ARCHIVE_LAYOUT.wal}${name}`) },
  ];
  if (everything) {
    steps.push({ what: 'other', keys: others });
    if (identity) steps.push({ what: 'identity', keys: [identity] });
  } else {
    otherKept.push(...others);
  }
  return {
    everything,
    backups: decisions,
    unfinished,
    walKeptFrom,
    walDeleted: ranges(walGoes.filter((name) => walFileKind(name) !== undefined)),
    walKept: ranges(walStays),
    historyKept: historyKept.sort(),
    otherKept: otherKept.sort(),
    steps: steps.filter((step) => step.keys.length > 0),
  };
}

/** How many objects the plan deletes. */
export function plannedDeletions(plan: RetentionPlan): number {
  return plan.steps.reduce((sum, step) => sum + step.keys.length, 0);
}

/** The plan as text, for people: what goes and what stays, with reasons. */
export function describePlan(plan: RetentionPlan, confirmed: boolean): string {
  const lines: string[] = [];
  const verb = confirmed ? 'deleted' : 'would delete';
  const gone = plan.backups.filter((b) => !b.keep);
  const stays = plan.backups.filter((b) => b.keep);
  const leftovers = plan.unfinished.filter((u) => !u.keep);
  const kind = (b: BackupDecision) => `${b.base === undefined ? 'full' : `delta of ${b.base}`}${b.broken ? ` (broken: ${b.broken})` : ''}`;
  lines.push(`backups: ${verb} ${gone.length}, kept ${stays.length}`);
  for (const b of gone) lines.push(`  delete ${b.name}  ${kind(b)}, finished ${b.stopTime}  (${b.reasons.join('; ')})`);
  for (const b of stays) lines.push(`  keep   ${b.name}  ${kind(b)}, finished ${b.stopTime}  (${b.reasons.join('; ')})`);
  const broken = plan.backups.filter((b) => b.broken !== undefined);
  if (broken.length > 0) lines.push(`broken chains: ${broken.length} backup(s) cannot be restored (their chain rests on a backup that is missing or not theirs): ${broken.map((b) => b.name).join(', ')}`);
  if (plan.unfinished.length > 0) {
    lines.push(`unfinished backups: ${verb} ${leftovers.length}, kept ${plan.unfinished.length - leftovers.length}`);
    for (const u of plan.unfinished) lines.push(`  ${u.keep ? 'keep  ' : 'delete'} ${u.name}  ${u.objects} object(s), last written ${u.lastWritten}  (${u.reason})`);
  }
  const walGone = plan.walDeleted.reduce((sum, r) => sum + r.count, 0);
  const walKept = plan.walKept.reduce((sum, r) => sum + r.count, 0);
  lines.push(`WAL: ${verb} ${walGone} file(s), kept ${walKept}${plan.walKeptFrom ? ` from ${plan.walKeptFrom} on` : ''} and ${plan.historyKept.length} history file(s)`);
  for (const r of plan.walDeleted) lines.push(`  delete timeline ${r.timeline}: ${r.first} .. ${r.last} (${r.count} file(s))`);
  for (const r of plan.walKept) lines.push(`  keep   timeline ${r.timeline}: ${r.first} .. ${r.last} (${r.count} file(s))`);
  if (plan.otherKept.length > 0) lines.push(`other objects kept: ${plan.otherKept.length} (${plan.otherKept.slice(0, 3).join(', ')}${plan.otherKept.length > 3 ? ', ...' : ''})`);
  if (plan.everything) lines.push(`everything: ${verb} every object of the archive (${plannedDeletions(plan)}), archive.json last`);
  lines.push(confirmed ? `done: ${plannedDeletions(plan)} object(s) deleted` : `dry run: ${plannedDeletions(plan)} object(s) would be deleted; nothing was. Add --confirm to delete.`);
  return `${lines.join('\n')}\n`;
}

/** The plan as JSON (`delete --json`). */
export function planSummary(plan: RetentionPlan, confirmed: boolean): Record<string, unknown> {
  return {
    dryRun: !confirmed,
    everything: plan.everything,
    objects: plannedDeletions(plan),
    backups: plan.backups.map(({ keys: _keys, base, broken, ...decision }) => ({ ...decision, base: base ?? null, broken: broken ?? null })),
    unfinished: plan.unfinished.map(({ keys: _keys, ...decision }) => decision),
    wal: { keptFrom: plan.walKeptFrom ?? null, deleted: plan.walDeleted, kept: plan.walKept, history: plan.historyKept },
    otherKept: plan.otherKept,
    steps: plan.steps.map((step) => ({ what: step.what, objects: step.keys.length })),
  };
}
