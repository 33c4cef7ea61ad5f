/**
 * What the sidecar's metrics look at, one function each: the WAL waiting in pg_wal/archive_status,
 * the data volume (statfs), the server over its socket (pg_stat_archiver, the insert position,
 * replication), the archive's backups. Each look is cheap (a directory listing, one connection
 * with two queries, one listing of basebackups/ with the manifests read once each) and throws on
 * failure; metrics.ts runs them and never lets a failure reach the WAL work.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ARCHIVE_LAYOUT, BACKUP_LAYOUT } from '../../../contract';
import { readManifest } from '../backup/catalog';
import { parseLsn } from '../backup/lsn';
import { PostgresSession, type ConnectionSettings } from '../backup/postgres-session';
import type { Storage } from '../storage/storage';
import { DEFAULT_WAL_SEGMENT_SIZE, archiveOrder, walFileKind } from '../wal-names';

/** The WAL files PostgreSQL has marked ready and not yet archived. */
export interface Backlog {
  readonly files: number;
  readonly bytes: number;
  /** Seconds since PostgreSQL marked the next file to archive ready; 0 when none waits. */
  readonly oldestAgeSeconds: number;
  /** The segment of the lowest position among them, if any (history and backup files have none). */
  readonly oldestSegment: string | undefined;
}

/**
 * The .ready files of `walDirectory`/archive_status. A segment counts `segmentSize` bytes (they
 * all have that size); the other files (history, backup label, partial) are stat'ed.
 */
export async function readBacklog(walDirectory: string, segmentSize: number = DEFAULT_WAL_SEGMENT_SIZE, now: number = Date.now()): Promise<Backlog> {
  const status = path.join(walDirectory, 'archive_status');
  const names = (await fs.readdir(status))
    .filter((f) => f.endsWith('.ready'))
    .map((f) => f.slice(0, -'.ready'.length))
    .filter((name) => walFileKind(name) !== undefined)
    .sort(archiveOrder);
  let bytes = 0;
  let oldestSegment: string | undefined;
  for (const name of names) {
    if (walFileKind(name) === 'segment') {
      bytes += segmentSize;
      if (oldestSegment === undefined || name.slice(8) < oldestSegment.slice(8)) oldestSegment = name;
    } else {
      bytes += (await fs.stat(path.join(walDirectory, name)).catch(() => undefined))?.size ?? 0;
    }
  }
  let oldestAgeSeconds = 0;
  if (names.length > 0) {
    const marked = await fs.stat(path.join(status, `${names[0]}.ready`)).catch(() => undefined);
    if (marked) oldestAgeSeconds = Math.max(0, (now - marked.mtimeMs) / 1000);
  }
  return { files: names.length, bytes, oldestAgeSeconds, oldestSegment };
}

/** The WAL position where segment `name` starts (its timeline aside). */
export function segmentStart(name: string, segmentSize: number): bigint {
  const log = BigInt(`0x${name.slice(8, 16)}`);
  const seg = BigInt(`0x${name.slice(16, 24)}`);
  return (log << 32n) + seg * BigInt(segmentSize);
}

/** SizeOfXLogLongPHD: the header of a segment's first page. */
const LONG_PAGE_HEADER_BYTES = 40n;

/**
 * The end of the archived WAL: every byte before it is archived. PostgreSQL archives segments
 * in order once each is complete, so it is the start of the oldest segment still waiting, or,
 * with none waiting, the start of the segment being written (its bytes are archived only when it
 * is complete: at its end or at archive_timeout).
 */
export function archivedPosition(insert: bigint, oldestWaitingSegment: string | undefined, segmentSize: number): bigint {
  const current = insert - (insert % BigInt(segmentSize));
  // Right after a switch the insert position is just past the header of the new segment's first
  // page: nothing is written there yet, so nothing is missing from the archive.
  if (oldestWaitingSegment === undefined) return insert - current <= LONG_PAGE_HEADER_BYTES ? insert : current;
  const waiting = segmentStart(oldestWaitingSegment, segmentSize);
  return waiting < current ? waiting : current;
}

/**
 * The archive lag in seconds: how long ago the oldest WAL not yet archived was written. It keeps
 * the insert positions it saw (each time it is told one that moved) and finds the first at which
 * the insert position had passed the archived position: that WAL was written by then. The
 * samples before the archived position are dropped as it advances.
 */
export class LagClock {
  private samples: { readonly at: number; readonly insert: bigint }[] = [];

  constructor(private readonly maxSamples = 5000) {}

  /** Records the insert position seen at `at` (ms). */
  sample(at: number, insert: bigint): void {
    const last = this.samples[this.samples.length - 1];
    if (last && insert <= last.insert) {
      // A new server on the volume (restored) starts lower: forget the old one's history.
      if (insert < last.insert) this.samples = [{ at, insert }];
      return;
    }
    this.samples.push({ at, insert });
    if (this.samples.length > this.maxSamples) {
      // Thin out the older half: the lag's precision falls where it is largest.
      const half = Math.floor(this.samples.length / 2);
      this.samples = [...this.samples.slice(0, half).filter((_, i) => i % 2 === 0), ...this.samples.slice(half)];
    }
  }

  /**
   * Seconds since the first sample past `archived`; 0 when no sample is past it. `atLeastSeconds`
   * is another lower bound (the age of the oldest ready file), used when the samples start after
   * the lag began (the sidecar started since).
   */
  lagSeconds(archived: bigint, now: number, atLeastSeconds = 0): number {
    // Every sample at or before the archived position is of no further use.
    let drop = 0;
    while (drop < this.samples.length - 1 && this.samples[drop].insert <= archived) drop++;
    if (drop > 0) this.samples = this.samples.slice(drop);
    const first = this.samples[0];
    if (!first || first.insert <= archived) return 0;
    return Math.max((now - first.at) / 1000, atLeastSeconds);
  }
}

/** What one look at the server found. */
export interface ServerLook {
  readonly inRecovery: boolean;
  readonly dataDirectory: string;
  readonly segmentSize: number;
  /** pg_current_wal_insert_lsn(); undefined in recovery. */
  readonly insert: bigint | undefined;
  readonly archivedCount: number;
  readonly failedCount: number;
  /** Unix seconds; 0 for never. */
  readonly lastArchived: number;
  readonly lastFailed: number;
  /** pg_stat_replication: standbys streaming from it. */
  readonly streamingStandbys: number;
  /** pg_stat_wal_receiver: its WAL receiver streams. */
  readonly streaming: boolean;
}

const LOOK_SQL = `SELECT a.archived_count::int AS archived_count, a.failed_count::int AS failed_count,
  COALESCE(extract(epoch FROM a.last_archived_time), 0)::float8 AS last_archived,
  COALESCE(extract(epoch FROM a.last_failed_time), 0)::float8 AS last_failed,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END AS insert_lsn,
  (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming')::int AS standbys,
  COALESCE((SELECT status = 'streaming' FROM pg_stat_wal_receiver LIMIT 1), false) AS streaming
  FROM pg_stat_archiver a`;

/** One connection over the socket (PGHOST), one query; throws when the server cannot be reached. */
export async function lookAtServer(connection?: ConnectionSettings): Promise<ServerLook> {
  const session = await PostgresSession.open({ ...connection, applicationName: 'archiver metrics' });
  try {
    const [row] = await session.rows<{
      archived_count: number;
      failed_count: number;
      last_archived: number;
      last_failed: number;
      insert_lsn: string | null;
      standbys: number;
      streaming: boolean;
    }>(LOOK_SQL);
    return {
      inRecovery: session.facts.inRecovery,
      dataDirectory: session.facts.dataDirectory,
      segmentSize: session.facts.walSegmentSize,
      insert: row.insert_lsn === null ? undefined : parseLsn(row.insert_lsn),
      archivedCount: Number(row.archived_count),
      failedCount: Number(row.failed_count),
      lastArchived: Number(row.last_archived),
      lastFailed: Number(row.last_failed),
      streamingStandbys: Number(row.standbys),
      streaming: row.streaming === true,
    };
  } finally {
    await session.close();
  }
}

/** The data volume as statfs sees it (the spool is on it, beside pg_wal). */
export interface VolumeLook {
  readonly sizeBytes: number;
  readonly availableBytes: number;
  readonly usedBytes: number;
}

export async function lookAtVolume(directory: string): Promise<VolumeLook> {
  const stats = await fs.statfs(directory);
  return {
    sizeBytes: stats.blocks * stats.bsize,
    availableBytes: stats.bavail * stats.bsize,
    usedBytes: (stats.blocks - stats.bfree) * stats.bsize,
  };
}

/** What the metrics keep of a backup's manifest (a manifest lists every file: it can be large). */
export interface BackupSummary {
  readonly name: string;
  /** Unix milliseconds. */
  readonly startMs: number;
  readonly stopMs: number;
  readonly bytes: number;
}

/** The archive's complete backups, each manifest read once (they never change once written). */
export class BackupCatalog {
  private readonly known = new Map<string, BackupSummary>();

  constructor(private readonly storage: Storage) {}

  /** The complete backups, oldest first (by stop time): one listing of basebackups/, and the manifests not read yet. */
  async look(): Promise<BackupSummary[]> {
    const objects = await this.storage.list(ARCHIVE_LAYOUT.basebackups);
    const names = objects
      .map((object) => object.key.slice(ARCHIVE_LAYOUT.basebackups.length).split('/'))
      .filter((parts) => parts.length === 2 && parts[1] === BACKUP_LAYOUT.manifest)
      .map((parts) => parts[0]);
    const present = new Set(names);
    for (const name of this.known.keys()) if (!present.has(name)) this.known.delete(name);
    for (const name of names) {
      if (this.known.has(name)) continue;
      const manifest = await readManifest(this.storage, name);
      this.known.set(name, { name, startMs: Date.parse(manifest.startTime), stopMs: Date.parse(manifest.stopTime), bytes: manifest.size });
    }
    return [...this.known.values()].sort((a, b) => a.stopMs - b.stopMs || a.name.localeCompare(b.name));
  }
}
