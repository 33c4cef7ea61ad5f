/**
 * Every named error of the archiver, in one module. Code throws these; only the entry point
 * (cli.ts) turns them into exit codes, through the one table in contract/exit-codes.ts
 * (`exitCodeOf` below), which the background archiver's answers and the launcher's bash helper
 * use too.
 *
 * The build gives this module a bundle of its own (lib/errors.cjs) that every other bundle
 * requires, so that `instanceof` holds across the CLI and the lazily loaded storage backends.
 */
import { ExitCode, exitCodeForErrorName } from '../../contract';

// ---------------------------------------------------------------------------------------------
// The command line and the configuration

/** The command line is wrong. The message names the command and the fix. */
export class UsageError extends Error {
  public override readonly name = 'UsageError';
}

/** The configuration (environment) is missing or malformed. The message names the variable. */
export class ConfigError extends Error {
  public override readonly name = 'ConfigError';

  constructor(
    public readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

/** A compression setting that cannot work: an unknown name, a level out of range. */
export class CompressionConfigError extends Error {
  public override readonly name = 'CompressionConfigError';

  constructor(
    message: string,
    /** The environment variable or flag the value came from, when known. */
    public readonly variable?: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// The archive

/** `wal-fetch`: the file is not in the archive. A normal event, with its own exit code. */
export class WalNotFoundError extends Error {
  public override readonly name = 'WalNotFoundError';

  constructor(
    public readonly walName: string,
    location: string,
  ) {
    super(`${walName} is not in the archive at ${location}`);
  }
}

/**
 * `wal-fetch` in archive recovery: a segment is missing while a later WAL file of its timeline is
 * archived. Not the end of the archive (which would end recovery and promote) but a hole in it:
 * recovery stops here, and resumes when the file is put back and PostgreSQL started again.
 */
export class WalGapError extends Error {
  public override readonly name = 'WalGapError';

  constructor(
    public readonly walName: string,
    /** The first later WAL file of the timeline found in the archive. */
    public readonly later: string,
    location: string,
  ) {
    super(
      `${walName} is missing from the archive but ${later} is there: a gap; recovery stops here rather than end early ` +
        `(archive ${location}: put ${walName} back, e.g. from the old primary's pg_wal, and start PostgreSQL again)`,
    );
  }
}

/**
 * `wal-fetch` in archive recovery: the archive could not be read within
 * ARCHIVER_RECOVERY_DEADLINE_SECONDS, an object is damaged, or anything else but "not in the
 * archive" failed. PostgreSQL would take any exit code from 1 to 125 for the end of the archive
 * and promote with WAL missing; this error's code stops recovery instead. `cause` is the failure.
 */
export class RecoveryStopError extends Error {
  public override readonly name = 'RecoveryStopError';
}

/** `check --storage`: nothing has been archived at the location yet (no archive.json). */
export class ArchiveNotFoundError extends Error {
  public override readonly name = 'ArchiveNotFoundError';
}

/** `wal-push`: a different file is already archived under this name. Never overwritten. */
export class ArchiveConflictError extends Error {
  public override readonly name = 'ArchiveConflictError';
}

/** The archive was started by another database cluster (another system identifier). */
export class ForeignArchiveError extends Error {
  public override readonly name = 'ForeignArchiveError';
}

/**
 * An archived object fails its own verification: truncated, a size or CRC-32 that does not match
 * its header, a frame that does not decompress. It is a copy of nothing (an upload cut short by a
 * crash), which a push of the same name may replace; a fetch refuses it.
 */
export class CorruptObjectError extends Error {
  public override readonly name = 'CorruptObjectError';
}

/**
 * An object this archiver cannot read but which may be intact: a newer format version, an
 * unknown codec or checksum algorithm, or no archiver header at all (another tool's file). Never
 * replaced.
 */
export class UnsupportedObjectError extends Error {
  public override readonly name = 'UnsupportedObjectError';
}

/** Compressed input that cannot be decompressed: corrupted, truncated, empty or another format. */
export class DecompressionError extends Error {
  public override readonly name = 'DecompressionError';

  constructor(
    public readonly codec: string,
    reason: string,
    options?: { readonly cause?: unknown },
  ) {
    super(`cannot decompress ${codec} data (corrupted, truncated or not ${codec}): ${reason}`, options);
  }

  /** `error` as a `DecompressionError` of `codec` (unchanged if it already is one). */
  static from(codec: string, error: unknown): DecompressionError {
    if (error instanceof DecompressionError) return error;
    const reason = error instanceof Error ? error.message || error.name : String(error);
    return new DecompressionError(codec, reason, { cause: error });
  }
}

// ---------------------------------------------------------------------------------------------
// Storage (the contract of storage/storage.ts)

/** What a failed storage operation was doing; part of every `StorageError` message. */
export type StorageOperation = 'get' | 'getStream' | 'stat' | 'put' | 'putStream' | 'list' | 'delete';

/** The object `key` does not exist at `location`. */
export class ObjectNotFoundError extends Error {
  public override readonly name = 'ObjectNotFoundError';

  constructor(
    public readonly key: string,
    public readonly location: string,
  ) {
    super(`object not found: ${key} at ${location}`);
  }
}

/** A put with `ifAbsent` found the object `key` already there. */
export class ObjectExistsError extends Error {
  public override readonly name = 'ObjectExistsError';

  constructor(
    public readonly key: string,
    public readonly location: string,
  ) {
    super(`object already exists: ${key} at ${location}`);
  }
}

/** A key or prefix that no backend accepts (storage.ts `validateKey`). Thrown before any I/O. */
export class InvalidKeyError extends Error {
  public override readonly name = 'InvalidKeyError';

  constructor(
    public readonly key: string,
    reason: string,
  ) {
    super(`invalid storage key ${JSON.stringify(key)}: ${reason}`);
  }
}

/**
 * Every other storage failure: network, timeout, permission, server error. The message names the
 * operation, the location and the key, never credentials; `cause` holds the backend's original
 * error. `transient` tells the retry policy (storage/resilient.ts) whether another attempt may
 * succeed.
 */
export class StorageError extends Error {
  public override readonly name = 'StorageError';
  public readonly operation: StorageOperation;
  public readonly location: string;
  /** The key (or list prefix) concerned, when there is one. */
  public readonly key: string | undefined;
  public readonly transient: boolean;

  constructor(props: {
    readonly operation: StorageOperation;
    readonly location: string;
    readonly key?: string;
    readonly cause: unknown;
    /** @default true */
    readonly transient?: boolean;
    /** Said after the cause, e.g. "after 3 attempts". */
    readonly detail?: string;
  }) {
    const target = props.key === undefined ? props.location : `${props.key} at ${props.location}`;
    super(`storage ${props.operation} ${target} failed: ${describeCause(props.cause)}${props.detail ? ` (${props.detail})` : ''}`, { cause: props.cause });
    this.operation = props.operation;
    this.location = props.location;
    this.key = props.key;
    this.transient = props.transient ?? true;
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof StorageError) return cause.message.replace(/^storage \S+ .*? failed: /, '');
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    const message = cause.message || cause.name;
    return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
  }
  return String(cause);
}

// ---------------------------------------------------------------------------------------------
// The background archiver

/** The background archiver could not be reached: nothing was sent. The caller works alone. */
export class DaemonUnavailableError extends Error {
  public override readonly name = 'DaemonUnavailableError';
}

/**
 * The background archiver took the request and then went silent or away before answering. The
 * caller works alone (the work is idempotent); it never takes this for a success.
 */
export class DaemonLostError extends Error {
  public override readonly name = 'DaemonLostError';
}

/**
 * The sidecar runs but cannot work: its configuration is wrong or the archive could not be opened.
 * It answers every WAL call with this (exit 1: PostgreSQL keeps the segment and retries) while it
 * retries in the background; the message names the variable or the failure and the fix.
 */
export class ArchiveUnavailableError extends Error {
  public override readonly name = 'ArchiveUnavailableError';
}

/**
 * A call with ARCHIVER_DAEMON=external (the pod's PostgreSQL container, which holds no storage
 * credentials) found no sidecar to answer it. Exit 1: PostgreSQL keeps the segment and retries.
 */
export class SidecarUnavailableError extends Error {
  public override readonly name = 'SidecarUnavailableError';
}

/** `archiver stop`: no background archiver serves this spool. */
export class DaemonNotRunningError extends Error {
  public override readonly name = 'DaemonNotRunningError';
}

// ---------------------------------------------------------------------------------------------
// Base backups

/** PostgreSQL could not be reached, or refused what a backup asked of it. */
export class PostgresError extends Error {
  public override readonly name = 'PostgresError';
}

/** A base backup could not be completed; nothing of it is listed. The message says why. */
export class BackupError extends Error {
  public override readonly name = 'BackupError';
}

/** Another backup of this database is running here. */
export class BackupInProgressError extends Error {
  public override readonly name = 'BackupInProgressError';
}

/** No complete backup by that name (or none at all, for LATEST). */
export class BackupNotFoundError extends Error {
  public override readonly name = 'BackupNotFoundError';
}

/**
 * A recovery target that no backup can reach (before the oldest backup, inside a backup's own
 * start-stop window) or that is ill-formed (a time without a zone). Names the earliest reachable
 * point where there is one.
 */
export class RecoveryTargetError extends Error {
  public override readonly name = 'RecoveryTargetError';
}

/**
 * `backup-fetch` could not write a file of the restore (a full disk, permissions): the message
 * names the file and the system's reason (e.g. ENOSPC). What it wrote is removed.
 */
export class RestoreWriteError extends Error {
  public override readonly name = 'RestoreWriteError';
}

/**
 * `archiver bootstrap` will not start a database on this volume: its archive holds WAL but no
 * backup, or holds a backup where a new database was asked for, or the directory holds something
 * else. Nothing was done; the message says why and what to do.
 */
export class BootstrapRefusedError extends Error {
  public override readonly name = 'BootstrapRefusedError';
}

/** `backup-fetch` into a directory that is not empty: nothing is overwritten. */
export class TargetNotEmptyError extends Error {
  public override readonly name = 'TargetNotEmptyError';
}

// ---------------------------------------------------------------------------------------------
// Retention and verification

/**
 * `wal-verify`: the archive's WAL has a gap (or a timeline whose history file is missing) between
 * the oldest backup's start and the newest archived segment: a recovery across it would stop
 * there. The message names every gap.
 */
export class WalNotContinuousError extends Error {
  public override readonly name = 'WalNotContinuousError';
}

/**
 * `delete --only-when-gone`: the database's StatefulSet or its pod 0 still exists after the wait.
 * Nothing was deleted; the message names the object and whether it is being deleted.
 */
export class DatabaseStillExistsError extends Error {
  public override readonly name = 'DatabaseStillExistsError';
}

/**
 * `delete --only-when-gone` could not tell whether the database is gone: the Kubernetes API could
 * not be reached, its certificate was not signed by the ServiceAccount's CA, or it answered
 * anything but the object or "not found" (401, 403, 5xx). Nothing was deleted (fail closed); the
 * message names the answer and the fix.
 */
export class KubernetesApiError extends Error {
  public override readonly name = 'KubernetesApiError';
}

// ---------------------------------------------------------------------------------------------

const REVIVABLE: Record<string, new (message: string) => Error> = {
  UsageError,
  ArchiveConflictError,
  ArchiveNotFoundError,
  CorruptObjectError,
  UnsupportedObjectError,
  ForeignArchiveError,
  DaemonNotRunningError,
  RecoveryStopError,
  ArchiveUnavailableError,
  SidecarUnavailableError,
};

/**
 * Rebuilds a named error reported across a process or thread boundary (by a codec worker) as
 * `{ name, message }`, so that `instanceof` and exit codes hold.
 */
export function reviveError(error: { name: string; message: string }): Error {
  if (error.name === 'WalNotFoundError' || error.name === 'WalGapError') {
    const revived = error.name === 'WalGapError' ? new WalGapError('', '', '') : new WalNotFoundError('', '');
    revived.message = error.message;
    return revived;
  }
  const Type = REVIVABLE[error.name];
  const revived = Type ? new Type(error.message) : new Error(error.message);
  if (!Type) revived.name = error.name;
  return revived;
}

/** The exit code for an error thrown by a command (contract/exit-codes.ts ERROR_EXIT_CODES). */
export function exitCodeOf(error: unknown): ExitCode {
  return exitCodeForErrorName(error instanceof Error ? error.name : '');
}
