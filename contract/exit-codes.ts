/**
 * The archiver's exit codes, and the one table that maps its named errors onto them. The CLI,
 * the background archiver's answers and the launcher's bash helper all use this table: an
 * answer carries the exit code, so the helper never maps names itself.
 */

/**
 * Exit codes of the archiver. PostgreSQL treats any code of restore_command from 1 to 125 as "not
 * there" (a standby retries, archive recovery ends) and any code above 125 as fatal.
 */
export const EXIT_CODES = {
  ok: 0,
  /**
   * Any failure: nothing was reported as stored. PostgreSQL retries `archive_command`; a standby
   * retries `restore_command`. Never the answer of `wal-fetch` in archive recovery (stopRecovery).
   */
  error: 1,
  /** The command line or the configuration is wrong; the message names the flag or variable. */
  usage: 2,
  /**
   * `wal-fetch`: the file is not in the archive (wal-g uses the same code). A normal event: a
   * standby asks for the next segment before the primary has archived it, and archive recovery
   * ends when the next segment does not exist — in archive recovery only when nothing later of
   * its timeline is archived either (else it is a gap: stopRecovery). Also `check --storage` on
   * a location that holds no archive yet, and `stop` when no background archiver runs.
   */
  notFound: 74,
  /**
   * `wal-fetch` in archive recovery (not standby mode, contract/recovery.ts): the archive cannot
   * be read (storage down past ARCHIVER_RECOVERY_DEADLINE_SECONDS, a damaged object), has a gap,
   * or anything else but "not in the archive" went wrong. PostgreSQL treats an exit status above 125
   * as fatal and stops recovery, instead of taking any code from 1 to 125 for "no more WAL",
   * ending recovery early and promoting with data missing. PostgreSQL prints it as "child process
   * exited with exit code 128" (126 and 127 would read "command not executable / not found").
   */
  stopRecovery: 128,
} as const;

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

/**
 * The exit code of each named error (archiver/src/errors.ts defines the classes under these
 * names). Any error not named here exits with EXIT_CODES.error.
 */
export const ERROR_EXIT_CODES: Readonly<Record<string, ExitCode>> = {
  UsageError: EXIT_CODES.usage,
  ConfigError: EXIT_CODES.usage,
  CompressionConfigError: EXIT_CODES.usage,
  WalNotFoundError: EXIT_CODES.notFound,
  ArchiveNotFoundError: EXIT_CODES.notFound,
  DaemonNotRunningError: EXIT_CODES.notFound,
  /** The sidecar runs but cannot open the archive (configuration, storage): PostgreSQL retries. */
  ArchiveUnavailableError: EXIT_CODES.error,
  /** ARCHIVER_DAEMON=external and no sidecar answers: PostgreSQL retries. */
  SidecarUnavailableError: EXIT_CODES.error,
  ArchiveConflictError: EXIT_CODES.error,
  ForeignArchiveError: EXIT_CODES.error,
  CorruptObjectError: EXIT_CODES.error,
  /** Archive recovery only: a segment is missing but a later one of its timeline is archived. */
  WalGapError: EXIT_CODES.stopRecovery,
  /** Archive recovery only: any failure but "not in the archive" (the message says which). */
  RecoveryStopError: EXIT_CODES.stopRecovery,
  UnsupportedObjectError: EXIT_CODES.error,
  StorageError: EXIT_CODES.error,
  PostgresError: EXIT_CODES.error,
  BackupError: EXIT_CODES.error,
  BackupInProgressError: EXIT_CODES.error,
  BackupNotFoundError: EXIT_CODES.notFound,
  RecoveryTargetError: EXIT_CODES.usage,
  TargetNotEmptyError: EXIT_CODES.usage,
  RestoreWriteError: EXIT_CODES.error,
  BootstrapRefusedError: EXIT_CODES.error,
  WalNotContinuousError: EXIT_CODES.error,
  /** `delete --only-when-gone`: the database still exists; nothing deleted. */
  DatabaseStillExistsError: EXIT_CODES.error,
  /** `delete --only-when-gone`: the Kubernetes API gave no clear answer; nothing deleted (fail closed). */
  KubernetesApiError: EXIT_CODES.error,
};

/** The exit code for an error reported under `name`. */
export function exitCodeForErrorName(name: string): ExitCode {
  return ERROR_EXIT_CODES[name] ?? EXIT_CODES.error;
}
