/**
 * The manifest of a base backup (`basebackups/<name>/manifest.json`), written last: its presence
 * is what makes a backup complete, listed and restorable. It records where the backup starts and
 * stops in the WAL, when, on which cluster and server, and every file with its checksum and the
 * part that holds it.
 */
import { CompressionName } from '../compression';
import { crc32Combine } from '../crc32-combine';
import { formatChecksum } from '../envelope';
import { CorruptObjectError, UnsupportedObjectError } from '../errors';

/**
 * 2: a file larger than a part is stored as ranges (`ranges`); parts' envelopes carry no CRC-32 of
 * their own (FLAG_UNCHECKED). Format 1 manifests (no ranges) are read as they are.
 */
export const MANIFEST_FORMAT = 2;
const READABLE_FORMATS = new Set([1, 2]);

export interface ManifestFile {
  /** Relative to the data directory, '/'-separated. */
  readonly path: string;
  /** Bytes stored (a file that shrank while it was read is padded with zeros, as pg_basebackup does). */
  readonly size: number;
  /** Permission bits, e.g. 0o600. */
  readonly mode: number;
  /** Modification time, seconds since the epoch. */
  readonly mtime: number;
  /** CRC-32 of the stored bytes, 8 hexadecimal digits (envelope.ts's form). */
  readonly checksum: string;
  /** Index into `parts` (of the first range, for a file stored as ranges). */
  readonly part: number;
  /** A file larger than a part: its ranges, in order, covering [0, size). */
  readonly ranges?: readonly ManifestRange[];
}

/**
 * A relation file of a delta backup, stored as the pages changed since its base backup started
 * (page-delta.ts's blob: a header, the block numbers, the pages). Restored by laying down the
 * file as the base restores it, then applying the blob.
 */
export interface ManifestDelta {
  readonly path: string;
  /** The file's size when it was read (what it is after the blob is applied). */
  readonly size: number;
  readonly mode: number;
  readonly mtime: number;
  /** Bytes of the blob (or of all its ranges' blobs). */
  readonly blobSize: number;
  /** Pages in the blob (in all its ranges' blobs). */
  readonly pages: number;
  /** CRC-32 of the blob (a file stored as ranges: of its ranges' blobs one after the other). */
  readonly checksum: string;
  /** Index into `parts` (of the first range). */
  readonly part: number;
  /**
   * A file larger than a part: one blob per range of the file, each holding the pages of its
   * range; `offset` is the range's start in the file, `size` and `checksum` the blob's.
   */
  readonly ranges?: readonly ManifestRange[];
}

/** A byte range of a file, stored as a tar entry of its own in `part`. */
export interface ManifestRange {
  readonly part: number;
  readonly offset: number;
  readonly size: number;
  /** CRC-32 of the range's bytes. */
  readonly checksum: string;
}

export interface ManifestDirectory {
  readonly path: string;
  readonly mode: number;
}

export interface ManifestPart {
  /** Key relative to the backup's prefix, e.g. `parts/0001.tar`. */
  readonly key: string;
  /** Bytes of the tar stream before compression. */
  readonly size: number;
  /** Bytes of the stored object. */
  readonly storedSize: number;
}

/**
 * The snapshot of running transactions just after the backup stopped: a transaction is committed
 * after the backup's consistency point when it is at or after `xmax`, or listed in `xip`. Used to
 * pick a backup for a transaction-id recovery target.
 */
export interface StopSnapshot {
  readonly xmin: string;
  readonly xmax: string;
  readonly xip: readonly string[];
}

export interface BackupManifest {
  readonly format: 1 | typeof MANIFEST_FORMAT;
  readonly name: string;
  /** The label given to pg_backup_start. */
  readonly label: string;
  readonly startLsn: string;
  readonly stopLsn: string;
  /** The first and the last WAL segment a restore of this backup needs. */
  readonly startWal: string;
  readonly stopWal: string;
  readonly timeline: number;
  /** ISO 8601, UTC. */
  readonly startTime: string;
  readonly stopTime: string;
  readonly systemIdentifier: string;
  /** server_version_num, e.g. 150018. */
  readonly pgVersion: number;
  readonly walSegmentSize: number;
  /** Taken while the server was in recovery (a standby). */
  readonly fromStandby: boolean;
  /** The data directory it was read from, for messages. */
  readonly dataDirectory: string;
  readonly compression: CompressionName;
  /** Bytes of the files, and of the stored objects (parts, label, manifest excluded). */
  readonly size: number;
  readonly storedSize: number;
  readonly hasTablespaceMap: boolean;
  readonly stopSnapshot: StopSnapshot | undefined;
  readonly parts: readonly ManifestPart[];
  readonly directories: readonly ManifestDirectory[];
  /** The files stored whole. */
  readonly files: readonly ManifestFile[];
  /**
   * A delta backup: the backup it is a delta of (which may be a delta itself), whose start LSN is
   * the threshold of its pages. Absent: a full backup.
   */
  readonly base?: string;
  /** A delta backup's relation files, stored as their changed pages. */
  readonly deltas?: readonly ManifestDelta[];
  /** BLCKSZ of the server (absent in backups taken before delta backups existed). */
  readonly pageSize?: number;
}

/**
 * The bytes and CRC-32 of ranges stored one after the other, combined from theirs: what the
 * manifest records for a file (or a delta's blobs) stored as ranges. backup-push writes it;
 * backup-fetch checks a manifest against it before writing anything.
 */
export function combinedRanges(ranges: readonly { readonly size: number; readonly checksum: string }[]): { size: number; checksum: string } {
  let crc = 0;
  let size = 0;
  for (const range of ranges) {
    crc = crc32Combine(crc, parseInt(range.checksum, 16), range.size);
    size += range.size;
  }
  return { size, checksum: formatChecksum(crc) };
}

export function encodeManifest(manifest: BackupManifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`);
}

/** Parses a manifest read from `what`, refusing what this archiver cannot restore. */
export function decodeManifest(body: Buffer, what: string): BackupManifest {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new CorruptObjectError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  const manifest = value as Partial<BackupManifest> | null;
  if (!manifest || typeof manifest !== 'object') throw new CorruptObjectError(`${what} is not a backup manifest`);
  if (typeof manifest.format === 'number' && manifest.format > MANIFEST_FORMAT) {
    throw new UnsupportedObjectError(`${what} has manifest format ${manifest.format}; this archiver reads formats up to ${MANIFEST_FORMAT}: upgrade the archiver`);
  }
  const required: (keyof BackupManifest)[] = ['name', 'startLsn', 'stopLsn', 'startWal', 'stopWal', 'timeline', 'startTime', 'stopTime', 'systemIdentifier', 'pgVersion', 'walSegmentSize', 'parts', 'files', 'directories'];
  const missing = required.filter((key) => manifest[key] === undefined);
  if (typeof manifest.format !== 'number' || !READABLE_FORMATS.has(manifest.format) || missing.length > 0) {
    throw new CorruptObjectError(`${what} is not a complete backup manifest (missing: ${missing.join(', ') || 'format'})`);
  }
  return manifest as BackupManifest;
}
