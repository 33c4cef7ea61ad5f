/** `archiver daemon`: runs the background archiver in the foreground; `archiver stop` stops it. */
import { readConfig } from '../config';
import { DaemonUnavailableError, send } from '../client';
import { Logger } from '../logger';
import { Spool } from '../spool';

export async function daemon(): Promise<void> {
  const config = readConfig();
  const log = new Logger(config.logLevel);
  const { runDaemon } = await import('../daemon');
  const handle = await runDaemon(config, log);
  if (!handle) {
    log.info('another background archiver already serves this configuration; exiting', { spool: config.spool });
    return;
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void handle.stop());
  await handle.stopped;
}

export async function stop(): Promise<void> {
  const config = readConfig();
  try {
    await send(new Spool(config.spool, config.spoolOwner).socketPath(config.fingerprint), { op: 'stop' }, 60_000);
  } catch (error) {
    if (!(error instanceof DaemonUnavailableError)) throw error;
  }
}
