/**
 * What one call of archive_command or restore_command does, once the launcher could not answer
 * it from the spool alone (archiver/bin/archiver):
 *
 * 1. Done ahead already? Take the spool's marker (push) or prefetched file (fetch).
 * 2. Ask the spool's background archiver (ARCHIVER_DAEMON=on starts one when none answers;
 *    =external, in the pod, uses the sidecar's and never starts one; =off skips this step).
 * 3. It could not be asked, or went silent or away after taking the request: do the work here —
 *    for a push, with the other ready files in parallel, recording each in the spool. Not with
 *    ARCHIVER_DAEMON=external: the pod's PostgreSQL container holds no storage credentials (so
 *    that no superuser session can read them), so the call fails (SidecarUnavailableError,
 *    exit 1) and PostgreSQL keeps the file and calls again; the sidecar is back within seconds.
 *    In archive recovery a fetch first waits for it (ARCHIVER_RECOVERY_DEADLINE_SECONDS): a
 *    failure there stops the recovery, and PostgreSQL with it.
 *
 * Never a false success: step 1 trusts only what the spool records for this location and file,
 * step 2 only an `ok` answer, and step 3 is the work itself.
 */
import * as path from 'node:path';
import { RECOVERY_MODES } from '../../contract';
import { ArchiverConfig } from './config';
import { requestDaemon } from './daemon/client';
import { DaemonLostError, DaemonUnavailableError, SidecarUnavailableError } from './errors';
import { Logger } from './logger';
import { Pusher } from './pusher';
import { RecoveryMode, restoreWal } from './recovery';
import { openRepository } from './repository';
import { Spool } from './spool';

type WithSpool = ArchiverConfig & { spool: string };

function hasSpool(config: ArchiverConfig): config is WithSpool {
  return config.spool !== undefined;
}

/**
 * Asks the background archiver; false when the caller must work alone. With
 * ARCHIVER_DAEMON=external, a sidecar that does not answer is asked again for `patienceMs`
 * (archive recovery: a restarting sidecar must not stop the recovery), then the call fails.
 */
async function asked(config: WithSpool, log: Logger, request: Parameters<typeof requestDaemon>[1], patienceMs = 0): Promise<boolean> {
  if (config.daemon === 'off') return false;
  const deadline = Date.now() + patienceMs;
  try {
    for (;;) {
      try {
        await requestDaemon(config, request);
        return true;
      } catch (error) {
        if (!(error instanceof DaemonUnavailableError) || config.daemon !== 'external' || Date.now() >= deadline) throw error;
        await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
      }
    }
  } catch (error) {
    if ((error instanceof DaemonUnavailableError || error instanceof DaemonLostError) && config.daemon === 'external') {
      throw new SidecarUnavailableError(
        `the archiver sidecar did not answer (${error.message}): this container has no storage credentials and does not work alone; PostgreSQL keeps the WAL file and calls again. Check the pod's archiver container (kubectl logs -c archiver)`,
      );
    }
    if (error instanceof DaemonUnavailableError || error instanceof DaemonLostError) {
      log.warn(`background archiver ${error instanceof DaemonLostError ? 'lost' : 'unavailable'}; working in this process`, { error: error.message });
      return false;
    }
    throw error;
  }
}

/** Archives the WAL file at `file` (absolute). Resolves only once it is durably stored. */
export async function pushWal(config: ArchiverConfig, file: string, log: Logger): Promise<void> {
  if (hasSpool(config)) {
    const spool = new Spool(config.spool, config.spoolOwner);
    if (await spool.takePushed(file)) return;
    if (await asked(config, log, { op: 'push', file })) return;
    const archive = await openRepository(config, { log });
    try {
      await spool.claim();
      const pusher = new Pusher(archive, spool, config.pushConcurrency, log);
      await pusher.push(file);
      // The files pushed ahead are recorded as they finish; wait for them so that their work counts.
      await pusher.drain();
    } finally {
      await archive.close();
    }
    return;
  }
  // No spool (a command run by hand outside a data directory): this file only.
  const archive = await openRepository(config, { log });
  try {
    await archive.push(file);
  } finally {
    await archive.close();
  }
}

/**
 * Restores WAL file `name` to `destination` (absolute), verified, as `mode` requires
 * (recovery.ts): the background archiver is told the mode and answers by it; working alone, the
 * call applies it itself.
 */
export async function fetchWal(config: ArchiverConfig, name: string, destination: string, mode: RecoveryMode, log: Logger): Promise<void> {
  if (hasSpool(config)) {
    if (await new Spool(config.spool, config.spoolOwner).takePrefetched(name, destination)) return;
    const patienceMs = mode === RECOVERY_MODES.archiveRecovery ? config.recoveryDeadlineSeconds * 1000 : 0;
    if (await asked(config, log, { op: 'fetch', name, destination, mode }, patienceMs)) return;
  }
  const archive = await openRepository(config, { log });
  try {
    await restoreWal(archive, name, destination, { mode, deadlineMs: config.recoveryDeadlineSeconds * 1000, log });
  } finally {
    await archive.close();
  }
}

/** `target` resolved against the working directory, as PostgreSQL's relative %p is meant. */
export function absolute(target: string): string {
  return path.resolve(target);
}
