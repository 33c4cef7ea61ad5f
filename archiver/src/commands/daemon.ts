/** `archiver daemon`: the background archiver in the foreground (the pod's `archiver` sidecar runs this). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARCHIVER_ENV, DATA_DIRECTORY_MARKER } from '../../../contract';
import { readAddress } from '../daemon/address';
import { runDaemon } from '../daemon/server';
import { readConfig } from '../config';
import { ConfigError, UsageError } from '../errors';
import { Logger } from '../logger';
import { Spool } from '../spool';

export async function run(args: readonly string[]): Promise<void> {
  if (args.length !== 0) throw new UsageError(`daemon takes no arguments; got ${args.join(' ')}`);
  const config = readConfig();
  const log = new Logger(config.logLevel);
  const spool = config.spool;
  if (spool === undefined) {
    throw new ConfigError(ARCHIVER_ENV.spool, 'is not set, and neither the working directory nor $PGDATA is a data directory: the background archiver needs a spool on the filesystem of pg_wal');
  }
  // Started in a data directory (by a call): it stops when that PostgreSQL stops.
  const cwd = process.cwd();
  const dataDirectory = fs.existsSync(path.join(cwd, DATA_DIRECTORY_MARKER)) ? cwd : undefined;
  const handle = await runDaemon({ ...config, spool }, log, { dataDirectory });
  if (!handle) {
    const holder = readAddress(new Spool(spool, config.spoolOwner).portFile);
    log.info('another background archiver already serves this spool; exiting', { spool, pid: holder?.pid });
    return;
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void handle.stop());
  await handle.stopped;
}
