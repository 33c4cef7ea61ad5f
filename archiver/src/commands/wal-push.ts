/** `archiver wal-push <path>`: PostgreSQL's archive_command. The work is wal-call.ts `pushWal`. */
import { readConfig } from '../config';
import { UsageError } from '../errors';
import { Logger } from '../logger';
import { absolute, pushWal } from '../wal-call';
import { requireWalFileName } from '../wal-names';
import * as path from 'node:path';

export async function run(args: readonly string[]): Promise<void> {
  if (args.length !== 1) throw new UsageError(`wal-push takes one argument, the WAL file's path (archive_command = '... wal-push %p'); got ${args.length}`);
  const file = absolute(args[0]);
  requireWalFileName(path.basename(file));
  const config = readConfig();
  await pushWal(config, file, new Logger(config.logLevel));
}
