/**
 * `wal-fetch` as PostgreSQL's recovery needs it (contract/recovery.ts). In archive recovery
 * (recovery.signal without standby.signal) PostgreSQL takes any exit code from 1 to 125 for "no
 * more WAL": it ends recovery, promotes onto a new timeline and opens with the rest of the WAL
 * missing for good. So there, and only there:
 *
 * - a storage failure is retried until ARCHIVER_RECOVERY_DEADLINE_SECONDS, then stops recovery;
 * - a damaged object (or anything else unexpected) stops recovery at once;
 * - a missing segment is the end of the archive only when nothing later of its timeline is
 *   archived: otherwise it is a gap, and stops recovery;
 * - a missing history, .partial or .backup file is a plain miss (PostgreSQL probes for the next
 *   timeline's history at every end of recovery).
 *
 * Stopping is EXIT_CODES.stopRecovery (128): PostgreSQL logs FATAL and shuts down, still in
 * archive recovery; started again once the archive is repaired, it resumes where it stopped.
 * A standby (standby.signal) retries restore_command on its own and never promotes on a miss:
 * there a failure stays EXIT_CODES.error, so that a storage outage never crash-loops it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARCHIVER_ENV, EXIT_CODES, ExitCode, RECOVERY_MODES, RECOVERY_SIGNAL_FILES, RecoveryMode } from '../../contract';
import { RecoveryStopError, StorageError, WalGapError, WalNotFoundError, exitCodeOf } from './errors';
import { Logger } from './logger';
import { sleep } from './storage/resilient';
import { walFileKind } from './wal-names';

export type { RecoveryMode };

/**
 * How PostgreSQL runs restore_command in `dataDirectory` (undefined: no data directory, a command
 * run by hand). `exists` is the only I/O, so that the rule is tested without files.
 */
export function recoveryMode(dataDirectory: string | undefined, exists: (file: string) => boolean = fs.existsSync): RecoveryMode {
  if (dataDirectory === undefined) return RECOVERY_MODES.none;
  // Both files present: PostgreSQL runs as a standby (standby.signal wins).
  if (exists(path.join(dataDirectory, RECOVERY_SIGNAL_FILES.standby))) return RECOVERY_MODES.standby;
  if (exists(path.join(dataDirectory, RECOVERY_SIGNAL_FILES.recovery))) return RECOVERY_MODES.archiveRecovery;
  return RECOVERY_MODES.none;
}

/**
 * The error `wal-fetch` reports for `error` in `mode`. Outside archive recovery, `error` itself.
 * In archive recovery only "not in the archive" (checked for gaps before it gets here) and the
 * errors that already stop recovery pass; anything else becomes a RecoveryStopError, whose exit
 * code PostgreSQL cannot mistake for the end of the archive.
 */
export function recoveryFailure(mode: RecoveryMode, error: unknown): Error {
  const e = error instanceof Error ? error : new Error(String(error));
  if (mode !== RECOVERY_MODES.archiveRecovery) return e;
  if (e instanceof WalNotFoundError || exitCodeOf(e) === EXIT_CODES.stopRecovery) return e;
  return new RecoveryStopError(`${e.name}: ${e.message}; recovery stops here rather than end early`, { cause: e });
}

/** The exit code of `wal-fetch` failing with `error` in `mode` (by the one table, contract/exit-codes.ts). */
export function exitForFetchFailure(mode: RecoveryMode, error: unknown): ExitCode {
  return exitCodeOf(recoveryFailure(mode, error));
}

/** What the archive holds of a segment's timeline, from the segment on (one listing). */
export interface TimelineSurvey {
  /** The segment itself is listed: it was archived after the read that missed it. */
  readonly listed: boolean;
  /** The first WAL file of the timeline after the segment, if the archive has one. */
  readonly later: string | undefined;
}

/** Where WAL is restored from: the archive itself, or the background archiver's prefetcher. */
export interface WalSource<T> {
  /** For messages. */
  readonly location: string;
  /** Restores `name` to `destination`; WalNotFoundError when the archive does not have it. */
  fetch(name: string, destination: string, options?: { readonly signal?: AbortSignal }): Promise<T>;
  surveyTimeline(name: string, options?: { readonly signal?: AbortSignal }): Promise<TimelineSurvey>;
}

export interface RestoreOptions {
  readonly mode: RecoveryMode;
  /**
   * Archive recovery: how long storage failures are retried, from the start of the call; every
   * storage request in flight is cut off then. 0: one try (with the storage's own attempts).
   */
  readonly deadlineMs: number;
  readonly log: Logger;
  /** The first pause between retries; each later one doubles, up to MAX_BACKOFF_MS. @default 250 */
  readonly backoffMs?: number;
}

const MAX_BACKOFF_MS = 5000;

/**
 * Restores WAL file `name` to `destination` from `source` as `options.mode` requires. Outside
 * archive recovery: one fetch, its failure as it is. In archive recovery:
 *
 * 1. Fetch. Restored: done.
 * 2. Not in the archive: for a history, .partial or .backup file, the plain miss. For a segment,
 *    list its timeline: listed after all (archived meanwhile) → retry; a later file of the
 *    timeline archived → WalGapError; nothing later → the true end of the archive, the miss.
 * 3. A storage failure in 1 or 2: retry after a backoff until the deadline, then
 *    RecoveryStopError. Never "not in the archive": an unreadable archive is not an empty one.
 * 4. Anything else (a damaged object above all): RecoveryStopError at once.
 */
export async function restoreWal<T>(source: WalSource<T>, name: string, destination: string, options: RestoreOptions): Promise<T> {
  if (options.mode !== RECOVERY_MODES.archiveRecovery) return source.fetch(name, destination);
  const started = Date.now();
  const signal = options.deadlineMs > 0 ? AbortSignal.timeout(options.deadlineMs) : undefined;
  let lastFailure: unknown;
  for (let failures = 1; ; failures++) {
    try {
      const outcome = await restoreOnce(source, name, destination, signal);
      if (outcome.restored) return outcome.value;
      lastFailure = new Error(`${name} is listed in the archive at ${source.location} but could not be read`);
    } catch (error) {
      const cutOff = signal?.aborted === true;
      if (!cutOff && !(error instanceof StorageError)) throw recoveryFailure(options.mode, error);
      // What the deadline cut off fails with the abort itself: the failure before it says more.
      lastFailure = error instanceof StorageError || lastFailure === undefined ? error : lastFailure;
    }
    const left = started + options.deadlineMs - Date.now();
    if (left <= 0 || signal?.aborted) throw deadlinePassed(name, options.deadlineMs, lastFailure);
    options.log.warn('the archive cannot be read during archive recovery; retrying until the deadline', {
      wal: name,
      attempt: failures,
      seconds_left: Math.ceil(left / 1000),
      error: lastFailure instanceof Error ? lastFailure.message : String(lastFailure),
    });
    await sleep(Math.min(left, (options.backoffMs ?? 250) * 2 ** Math.min(failures - 1, 10), MAX_BACKOFF_MS), signal).catch(() => undefined);
  }
}

type Outcome<T> = { readonly restored: true; readonly value: T } | { readonly restored: false };

/** Steps 1 and 2 of restoreWal, once. */
async function restoreOnce<T>(source: WalSource<T>, name: string, destination: string, signal: AbortSignal | undefined): Promise<Outcome<T>> {
  let miss: WalNotFoundError;
  try {
    return { restored: true, value: await source.fetch(name, destination, { signal }) };
  } catch (error) {
    // PostgreSQL probes for history files that do not exist yet; .partial and .backup files are
    // asked for by name, never as the next WAL: none of them is a hole in the timeline's WAL.
    if (!(error instanceof WalNotFoundError) || walFileKind(name) !== 'segment') throw error;
    miss = error;
  }
  const survey = await source.surveyTimeline(name, { signal });
  if (survey.listed) return { restored: false };
  if (survey.later !== undefined) throw new WalGapError(name, survey.later, source.location);
  throw miss;
}

function deadlinePassed(name: string, deadlineMs: number, failure: unknown): RecoveryStopError {
  const reason = failure instanceof Error ? failure.message : String(failure);
  return new RecoveryStopError(
    `${name} could not be read from the archive within ${Math.round(deadlineMs / 1000)} s (${ARCHIVER_ENV.recoveryDeadlineSeconds}): ${reason}; ` +
      'recovery stops here rather than end early (start PostgreSQL again once the archive answers: recovery resumes where it stopped)',
    { cause: failure },
  );
}
