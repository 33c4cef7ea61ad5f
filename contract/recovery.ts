/**
 * How PostgreSQL is running restore_command, read from its data directory, and what the archiver
 * then answers. PostgreSQL (12+) starts in recovery when the data directory holds one of these
 * files: with `standby.signal` it is a standby (it retries restore_command every
 * wal_retrieve_retry_interval and never ends recovery on a miss); with only `recovery.signal` it
 * does archive recovery, which ENDS at the first restore_command that exits 1–125, promotes onto a
 * new timeline and opens — with whatever WAL it did not get missing for good. So in archive
 * recovery `wal-fetch` exits only 0, EXIT_CODES.notFound (a true end of the archive) or
 * EXIT_CODES.stopRecovery (anything else); in standby mode and outside recovery a failure stays a
 * retryable miss (EXIT_CODES.error).
 *
 * The launcher reads the same files with shell builtins (names filled in at build time) and tells
 * the background archiver the mode in its fetch request (protocol.ts).
 */

/** The files in the data directory that start recovery. Both present: standby mode. */
export const RECOVERY_SIGNAL_FILES = {
  recovery: 'recovery.signal',
  standby: 'standby.signal',
} as const;

/** How restore_command is being run. The words are the protocol's (a fetch request's last field). */
export const RECOVERY_MODES = {
  /** recovery.signal without standby.signal: a miss ends recovery and promotes. */
  archiveRecovery: 'archive-recovery',
  /** standby.signal: a miss is retried; the standby never promotes on its own. */
  standby: 'standby',
  /** Neither file, or no data directory (a command run by hand). */
  none: 'none',
} as const;

export type RecoveryMode = (typeof RECOVERY_MODES)[keyof typeof RECOVERY_MODES];

/** The mode word `word`, or undefined when it is none of RECOVERY_MODES. */
export function parseRecoveryMode(word: string): RecoveryMode | undefined {
  return (Object.values(RECOVERY_MODES) as string[]).includes(word) ? (word as RecoveryMode) : undefined;
}

/**
 * How long, in archive recovery, `wal-fetch` keeps retrying an archive it cannot read before it
 * stops recovery (ARCHIVER_RECOVERY_DEADLINE_SECONDS overrides it). A short storage outage is
 * ridden out; a long one stops recovery, which a restart of PostgreSQL resumes where it stopped.
 */
export const DEFAULT_RECOVERY_DEADLINE_SECONDS = 60;
