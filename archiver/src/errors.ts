/**
 * The archiver's named errors. Only the entry point (cli.ts) turns them into exit codes
 * (`exitCodeOf`); everything else throws.
 */
import { EXIT_CODES } from '../../contract';

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

/** `wal-push`: a different file is already archived under this name. Never overwritten. */
export class ArchiveConflictError extends Error {
  public override readonly name = 'ArchiveConflictError';
}

/** The archive was started by another database cluster (another system identifier). */
export class ForeignArchiveError extends Error {
  public override readonly name = 'ForeignArchiveError';
}

/** An archived object fails its checksum or cannot be decoded. */
export class CorruptObjectError extends Error {
  public override readonly name = 'CorruptObjectError';
}

const ERRORS: Record<string, new (message: string) => Error> = {
  ArchiveConflictError,
  CorruptObjectError,
  ForeignArchiveError,
  UsageError,
};

/**
 * Rebuilds a named error reported across a process or thread boundary (by the background
 * archiver, or a codec worker) as `{ name, message }`, so that exit codes and `instanceof` hold.
 */
export function reviveError(error: { name: string; message: string }): Error {
  if (error.name === 'WalNotFoundError') {
    const revived = new WalNotFoundError('', '');
    revived.message = error.message;
    return revived;
  }
  const Type = ERRORS[error.name];
  const revived = Type ? new Type(error.message) : new Error(error.message);
  if (!Type) revived.name = error.name;
  return revived;
}

/** The exit code for an error thrown by a command. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof WalNotFoundError) return EXIT_CODES.notFound;
  if (error instanceof UsageError || error instanceof ConfigError) return EXIT_CODES.usage;
  if (error instanceof Error && error.name === 'CompressionConfigError') return EXIT_CODES.usage;
  return EXIT_CODES.error;
}
