/** `archiver stop`: stops the spool's background archiver after its pushes in flight, and says so. */
import { ARCHIVER_ENV } from '../../../contract';
import { readAddress } from '../daemon/address';
import { send } from '../daemon/client';
import { acquireSpoolLock } from '../daemon/lock';
import { readConfig } from '../config';
import { ConfigError, DaemonNotRunningError, UsageError } from '../errors';
import { Spool } from '../spool';

/** How long `stop` waits for the background archiver to finish its pushes and exit. */
const STOP_TIMEOUT_MS = 120_000;

export async function run(args: readonly string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<void> {
  if (args.length !== 0) throw new UsageError(`stop takes no arguments; got ${args.join(' ')}`);
  const config = readConfig();
  if (config.spool === undefined) throw new ConfigError(ARCHIVER_ENV.spool, 'is not set, and neither the working directory nor $PGDATA is a data directory: name the spool whose background archiver to stop');
  const spool = new Spool(config.spool, config.spoolOwner);
  const address = readAddress(spool.portFile);
  let answer;
  try {
    answer = address && (await send(address, config.spoolOwner, { op: 'stop' }, { silenceMs: config.daemonSilenceSeconds * 1000 }));
  } catch {
    answer = undefined;
  }
  if (!address || !answer || answer.kind !== 'ok') {
    const why = !address ? 'none has written its address' : answer?.kind === 'mismatch' ? 'the one running serves another archive location' : `pid ${address.pid} does not answer`;
    throw new DaemonNotRunningError(`no background archiver to stop for the spool ${config.spool} (${why})`);
  }
  // Stopped means gone: wait until its lock is free.
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  for (;;) {
    const lock = await acquireSpoolLock(config.spool);
    if (lock) {
      await lock.release();
      break;
    }
    if (Date.now() > deadline) throw new Error(`the background archiver (pid ${address.pid}) was asked to stop but still runs after ${STOP_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  out(`stopped the background archiver (pid ${address.pid}) of the spool ${config.spool}\n`);
}
