/**
 * Archives made by hand for the retention and wal-verify tests: backup manifests with only what
 * matters set (name, times, WAL range, timeline), and objects as a listing shows them.
 */
import { MANIFEST_FORMAT, type BackupManifest } from '../archiver/src/backup/manifest';
import type { ObjectInfo } from '../archiver/src/storage/storage';

export interface SyntheticBackup {
  /** `base_...`; also its start time unless `start` is given. */
  readonly name?: string;
  readonly start: Date;
  readonly stop: Date;
  readonly startWal: string;
  /** @default startWal */
  readonly stopWal?: string;
  /** @default the timeline of startWal */
  readonly timeline?: number;
  /** @default the start of startWal's segment + 0x28 */
  readonly startLsn?: string;
}

/** `base_20261130T060102Z` for `at`. */
export function nameAt(at: Date): string {
  return `base_${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

/** The LSN at `offset` in segment `name` (16 MiB segments). */
export function lsnIn(name: string, offset = 0x28): string {
  const log = parseInt(name.slice(8, 16), 16);
  const seg = parseInt(name.slice(16, 24), 16);
  return `${log.toString(16).toUpperCase()}/${(seg * 0x1000000 + offset).toString(16).toUpperCase()}`;
}

export function syntheticManifest(backup: SyntheticBackup): BackupManifest {
  const name = backup.name ?? nameAt(backup.start);
  return {
    format: MANIFEST_FORMAT,
    name,
    label: name,
    startLsn: backup.startLsn ?? lsnIn(backup.startWal),
    stopLsn: lsnIn(backup.stopWal ?? backup.startWal, 0x100),
    startWal: backup.startWal,
    stopWal: backup.stopWal ?? backup.startWal,
    timeline: backup.timeline ?? parseInt(backup.startWal.slice(0, 8), 16),
    startTime: backup.start.toISOString(),
    stopTime: backup.stop.toISOString(),
    systemIdentifier: '7300000000000000001',
    pgVersion: 150018,
    walSegmentSize: 16 * 1024 * 1024,
    fromStandby: false,
    dataDirectory: '/var/lib/postgresql/data',
    compression: 'zstd',
    size: 1000,
    storedSize: 100,
    hasTablespaceMap: false,
    stopSnapshot: undefined,
    parts: [{ key: 'parts/0000.tar', size: 1000, storedSize: 100 }],
    directories: [],
    files: [],
  };
}

/** The objects a complete backup leaves: parts, backup_label, manifest. */
export function backupKeys(name: string, complete = true): string[] {
  const prefix = `basebackups/${name}/`;
  return [`${prefix}backup_label`, ...(complete ? [`${prefix}manifest.json`] : []), `${prefix}parts/0000.tar`, `${prefix}parts/0001.tar`];
}

/** A segment name: timeline, then the segment number (16 MiB segments: 256 per log). */
export function seg(timeline: number, segno: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(Math.floor(segno / 256))}${hex(segno % 256)}`;
}

/** Segment names `from` .. `to` of `timeline`. */
export function segs(timeline: number, from: number, to: number): string[] {
  const out: string[] = [];
  for (let n = from; n <= to; n++) out.push(seg(timeline, n));
  return out;
}

/** A listing's entry. */
export function object(key: string, lastModified: Date = new Date(0), size = 10): ObjectInfo {
  return { key, size, lastModified };
}
