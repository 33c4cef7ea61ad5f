/** `archiver daemon`: the background archiver in the foreground (the pod's `archiver` sidecar runs this). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARCHIVER_ENV, DATA_DIRECTORY_MARKER } from '../../../contract';
import { openWhenPossible } from '../daemon/archive-opener';
import { readAddress } from '../daemon/address';
import { runDaemon } from '../daemon/server';
import { ArchiverConfig, readConfig, readMetricsPort } from '../config';
import { ConfigError, UsageError } from '../errors';
import { Logger } from '../logger';
import { Spool } from '../spool';

/**
 * The pod's sidecar, told by the raw environment (its configuration may be what is wrong):
 * ARCHIVER_DAEMON_IDLE_SECONDS=0, and not started by a call in a data directory.
 */
function isSidecar(env: NodeJS.ProcessEnv, dataDirectory: string | undefined): boolean {
  return env[ARCHIVER_ENV.daemonIdleSeconds]?.trim() === '0' && dataDirectory === undefined;
}

/**
 * A long-lived process must not end on an error no duty handled (a rejected promise nobody
 * awaited, a throw in a timer): for the sidecar that would cost the pod its readiness. Each is
 * logged, and the WAL work goes on.
 */
function keepRunningOnStrayErrors(log: Logger): void {
  const report = (kind: string) => (error: unknown) => {
    const e = error instanceof Error ? error : new Error(String(error));
    log.error(`${kind} in the background archiver; it keeps running`, { error: e.name, detail: e.message, stack: e.stack?.split('\n').slice(1, 4).join(' | ') });
  };
  process.on('unhandledRejection', report('an unhandled rejection'));
  process.on('uncaughtException', report('an uncaught exception'));
}

export async function run(args: readonly string[]): Promise<void> {
  if (args.length !== 0) throw new UsageError(`daemon takes no arguments; got ${args.join(' ')}`);
  // Started in a data directory (by a call): it stops when that PostgreSQL stops.
  const cwd = process.cwd();
  const dataDirectory = fs.existsSync(path.join(cwd, DATA_DIRECTORY_MARKER)) ? cwd : undefined;
  const sidecar = isSidecar(process.env, dataDirectory);
  const stopping = new AbortController();
  const onSignal = () => stopping.abort();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, onSignal);

  let config: ArchiverConfig & { spool: string };
  if (sidecar) {
    // The sidecar stays up with a configuration it cannot use (archive-opener.ts); the
    // environment changes only with a restart, so it waits for that, answering calls meanwhile.
    const bootstrapLog = new Logger();
    keepRunningOnStrayErrors(bootstrapLog);
    let metricsPort: number | undefined;
    try {
      metricsPort = readMetricsPort(process.env);
    } catch (error) {
      bootstrapLog.error('metrics are off', { error: (error as Error).message, error_name: (error as Error).name });
    }
    const read = await openWhenPossible('reading the configuration', async () => withSpool(readConfig()), {
      log: bootstrapLog,
      spool: process.env[ARCHIVER_ENV.spool]?.trim() || undefined,
      metrics: metricsPort === undefined ? undefined : { port: metricsPort },
      maxBackoffMs: 300_000,
      signal: stopping.signal,
    });
    if (!read) return;
    config = read;
  } else {
    config = withSpool(readConfig());
  }
  const log = new Logger(config.logLevel);
  if (!sidecar) keepRunningOnStrayErrors(log);
  const handle = await runDaemon(config, log, { dataDirectory, signal: stopping.signal });
  if (!handle) {
    if (stopping.signal.aborted) return;
    const holder = readAddress(new Spool(config.spool, config.spoolOwner).portFile);
    log.info('another background archiver already serves this spool; exiting', { spool: config.spool, pid: holder?.pid });
    return;
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.removeListener(signal, onSignal);
  if (stopping.signal.aborted) await handle.stop();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void handle.stop());
  await handle.stopped;
}

function withSpool(config: ArchiverConfig): ArchiverConfig & { spool: string } {
  const spool = config.spool;
  if (spool === undefined) {
    throw new ConfigError(ARCHIVER_ENV.spool, 'is not set, and neither the working directory nor $PGDATA is a data directory: the background archiver needs a spool on the filesystem of pg_wal');
  }
  return { ...config, spool };
}
