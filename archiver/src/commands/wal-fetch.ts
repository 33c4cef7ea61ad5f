/** `archiver wal-fetch <name> <destination>`: PostgreSQL's restore_command. The work is wal-call.ts `fetchWal`. */
import * as fs from 'node:fs';
import { readConfig, resolveDataDirectory } from '../config';
import { UsageError } from '../errors';
import { Logger } from '../logger';
import { recoveryFailure, recoveryMode } from '../recovery';
import { absolute, fetchWal } from '../wal-call';
import { walFileKind } from '../wal-names';

export async function run(args: readonly string[]): Promise<void> {
  // The mode first, from the data directory alone: in archive recovery even a bad command line or
  // configuration must stop recovery (recovery.ts), not read as "no more WAL" and promote.
  const mode = recoveryMode(resolveDataDirectory(process.env, process.cwd()));
  try {
    if (args.length !== 2) throw new UsageError(`wal-fetch takes two arguments, the WAL file name and the destination (restore_command = '... wal-fetch %f %p'); got ${args.length}`);
    const [name, target] = args;
    if (!walFileKind(name)) throw new UsageError(`wal-fetch: ${JSON.stringify(name)} is not a WAL file name; restore_command passes %f`);
    const config = readConfig();
    const destination = absolute(target);
    if (fs.statSync(destination, { throwIfNoEntry: false })?.isDirectory()) {
      throw new UsageError(`wal-fetch: the destination ${destination} is a directory: give the file's path (restore_command passes %p, e.g. pg_wal/RECOVERYXLOG)`);
    }
    await fetchWal(config, name, destination, mode, new Logger(config.logLevel));
  } catch (error) {
    throw recoveryFailure(mode, error);
  }
}
