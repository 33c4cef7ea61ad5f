/**
 * `archiver wal-push <path>`: PostgreSQL's archive_command. Exits 0 only once the file is durably
 * archived (or was already, with identical contents).
 *
 * 1. Pushed ahead already? The launcher answers that without Node; checked again here.
 * 2. Ask the background archiver to push it and the other ready files (ARCHIVER_DAEMON=on starts
 *    it when none answers; =external, in the pod, uses the sidecar's and never starts one).
 * 3. Background archiver unreachable: push it here, with the other ready files in parallel,
 *    and wait for all of them.
 */
import * as path from 'node:path';
import { readConfig } from '../config';
import { requestDaemon, DaemonUnavailableError } from '../client';
import { Logger } from '../logger';
import { Spool } from '../spool';
import { UsageError } from '../errors';
import { requireWalFileName } from '../wal-names';

/** How long a call waits for the background archiver: storage retries fit well within it. */
const REQUEST_TIMEOUT_MS = 10 * 60 * 1000;

export async function walPush(args: readonly string[]): Promise<void> {
  if (args.length !== 1) throw new UsageError(`wal-push takes one argument, the WAL file's path (archive_command = '... wal-push %p'); got ${args.length}`);
  const file = path.resolve(args[0]);
  requireWalFileName(path.basename(file));
  const config = readConfig();
  const log = new Logger(config.logLevel);
  if (await new Spool(config.spool, config.spoolOwner).takePushed(path.basename(file))) return;
  if (config.daemon !== 'off') {
    try {
      await requestDaemon(config, { op: 'push', file }, REQUEST_TIMEOUT_MS);
      return;
    } catch (error) {
      if (!(error instanceof DaemonUnavailableError)) throw error;
      log.warn('background archiver unavailable; pushing in this process', { error: error.message });
    }
  }
  const { openArchive } = await import('../daemon');
  const { Pusher } = await import('../pusher');
  const archive = await openArchive(config);
  const spool = new Spool(config.spool, config.spoolOwner);
  await spool.claim();
  const pusher = new Pusher(archive, spool, config.pushConcurrency, log);
  try {
    await pusher.push(file);
    // The files pushed ahead are recorded as they finish; wait for them so that their work counts.
    await pusher.drain();
  } finally {
    await archive.close();
  }
}
