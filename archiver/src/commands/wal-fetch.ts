/**
 * `archiver wal-fetch <name> <destination>`: PostgreSQL's restore_command. Exits 0 with the
 * verified file at `destination`; exits 74 (EXIT_CODES.notFound) when the archive does not have
 * it, which PostgreSQL takes as "no more WAL here"; any other failure exits 1.
 */
import * as path from 'node:path';
import { readConfig } from '../config';
import { requestDaemon, DaemonUnavailableError } from '../client';
import { Logger } from '../logger';
import { Spool } from '../spool';
import { UsageError } from '../errors';
import { walFileKind } from '../wal-names';

const REQUEST_TIMEOUT_MS = 10 * 60 * 1000;

export async function walFetch(args: readonly string[]): Promise<void> {
  if (args.length !== 2) throw new UsageError(`wal-fetch takes two arguments, the WAL file name and the destination (restore_command = '... wal-fetch %f %p'); got ${args.length}`);
  const [name, target] = args;
  if (!walFileKind(name)) throw new UsageError(`wal-fetch: ${JSON.stringify(name)} is not a WAL file name; restore_command passes %f`);
  const destination = path.resolve(target);
  const config = readConfig();
  const log = new Logger(config.logLevel);
  if (await new Spool(config.spool, config.spoolOwner).takePrefetched(name, destination)) return;
  if (config.daemon !== 'off') {
    try {
      await requestDaemon(config, { op: 'fetch', name, destination }, REQUEST_TIMEOUT_MS);
      return;
    } catch (error) {
      if (!(error instanceof DaemonUnavailableError)) throw error;
      log.warn('background archiver unavailable; fetching in this process', { error: error.message });
    }
  }
  const { openArchive } = await import('../daemon');
  const archive = await openArchive(config);
  try {
    await archive.fetch(name, destination);
  } finally {
    await archive.close();
  }
}
