/**
 * What a member's data volume must hold, and the WAL settings sized from it. The volume holds the
 * data directory, its WAL (pg_wal) and the archiver's spool; PostgreSQL's defaults (max_wal_size
 * 1 GB) plus the standbys' wal_keep_size would fill a 1Gi volume with WAL alone, so the WAL
 * settings are sized from the volume:
 *
 *   max_wal_size   a quarter of the volume, 64 MB to 1 GB (PostgreSQL's default): the WAL kept
 *                  between checkpoints (a soft limit: a burst of writes can pass it for a while)
 *   wal_keep_size  an eighth of the volume, 32 MB to 256 MB: what a standby that fell behind can
 *                  still stream; beyond it, it catches up from the archive (restore_command)
 *   min_wal_size   half of max_wal_size, 32 MB to 80 MB (PostgreSQL's default): the segments kept
 *                  for reuse after a checkpoint
 *
 * so that WAL takes at most three eighths of the volume, the archiver's spool at most
 * ARCHIVER_SPOOL_BUDGET_MIB (the segments it prefetches for a recovery), and the rest is the
 * database's. Every size is a whole number of 16 MiB segments. A volume smaller than
 * MIN_DATA_VOLUME_MIB cannot hold that and is refused. Nothing bounds pg_wal while archiving
 * fails (PostgreSQL keeps every segment not yet archived): watch for it.
 */

const MIB = 2 ** 20;
const SEGMENT_MIB = 16;

/** The archiver's spool: up to 8 prefetched 16 MiB segments during a recovery (ARCHIVER_PREFETCH's default). */
export const ARCHIVER_SPOOL_BUDGET_MIB = 8 * SEGMENT_MIB;

/**
 * The smallest data volume: initdb's data directory (about 40 MB on PostgreSQL 15), its WAL at the
 * smallest sizes (64 MB + 32 MB), the archiver's spool (128 MiB), and room for a little data and the
 * filesystem's own overhead.
 */
export const MIN_DATA_VOLUME_MIB = 512;

/** The WAL settings of one member, in MB (PostgreSQL's MB are MiB). */
export interface WalSizes {
  readonly maxWalSizeMb: number;
  readonly minWalSizeMb: number;
  readonly walKeepSizeMb: number;
}

/** `mib` rounded down to whole segments, within `[low, high]`. */
function segments(mib: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, Math.floor(mib / SEGMENT_MIB) * SEGMENT_MIB));
}

/** The WAL settings for a data volume of `volumeBytes` (see the rule above). */
export function walSizesFor(volumeBytes: number): WalSizes {
  const volumeMib = volumeBytes / MIB;
  const maxWalSizeMb = segments(volumeMib / 4, 64, 1024);
  return {
    maxWalSizeMb,
    minWalSizeMb: segments(maxWalSizeMb / 2, 32, 80),
    walKeepSizeMb: segments(volumeMib / 8, 32, 256),
  };
}
