/**
 * The end of a recovery, seen from the sidecar. A restored data directory recovers with the
 * settings backup-fetch appended to its postgresql.auto.conf (recovery-settings.ts): the
 * restore_command of the archive it was restored from, which may be another database's, and a
 * recovery target. PostgreSQL removes recovery.signal when it promotes but leaves those settings
 * where they are, so they would outlive the recovery: in every later base backup, in every
 * standby cloned from pod 0 (a standby with a recovery target promotes itself at the first commit
 * after it: a second primary), and in the next recovery of this database from its own archive.
 *
 * So once the local server is out of recovery, the watcher resets them with ALTER SYSTEM (which
 * rewrites postgresql.auto.conf without them) and reloads the configuration: the rendered
 * restore_command, this database's own archive, applies again. The start script of a standby
 * clones or rewinds from pod 0 only once pod 0's postgresql.auto.conf holds none of them.
 */
import { Logger } from '../logger';
import { ConnectionSettings, PostgresSession } from './postgres-session';
import { PeriodicLook } from '../daemon/periodic-look';

/** The parameters of a recovery that must not outlive it (as pg_file_settings names them). */
export const RECOVERY_SETTINGS_PATTERN = /^(restore_command|recovery_target[a-z_]*)$/;

/** The SQL: which of those parameters postgresql.auto.conf sets now. */
const PENDING_SQL = `SELECT DISTINCT name FROM pg_file_settings
  WHERE sourcefile = current_setting('data_directory') || '/postgresql.auto.conf'
    AND (name = 'restore_command' OR name LIKE 'recovery\\_target%')
  ORDER BY name`;

export interface RecoveryEndWatcherProps {
  readonly log: Logger;
  /** @default - libpq's environment (PGHOST: the socket directory the sidecar shares) */
  readonly connection?: ConnectionSettings;
  /** How often the server is looked at until its recovery is over. @default 5000 */
  readonly intervalMs?: number;
}

/** What one look found and did. */
export type RecoveryEndOutcome =
  | { readonly kind: 'unreachable'; readonly error: string }
  /** `pending`: recovery settings in postgresql.auto.conf now (reset once the recovery is over). */
  | { readonly kind: 'in-recovery'; readonly pending: number }
  | { readonly kind: 'reset'; readonly settings: readonly string[] }
  | { readonly kind: 'clean' };

/** One look, on a session of its own (the watcher's): see resetEndedRecoverySettings. */
export async function clearEndedRecoverySettings(connection: ConnectionSettings | undefined, log: Logger): Promise<RecoveryEndOutcome> {
  let session: PostgresSession;
  try {
    session = await PostgresSession.open({ ...connection, applicationName: 'archiver recovery-end' });
  } catch (error) {
    return { kind: 'unreachable', error: (error as Error).message };
  }
  try {
    return await resetEndedRecoverySettings(session, log);
  } finally {
    await session.close();
  }
}

/**
 * On an open session (backup-push passes its own): out of recovery with recovery settings in
 * postgresql.auto.conf → reset and reload. In recovery, says whether any are there: a server in
 * recovery without them (a standby, a copy of a clean pod 0) never gets them in this pod's life.
 */
export async function resetEndedRecoverySettings(session: PostgresSession, log: Logger): Promise<RecoveryEndOutcome> {
  const names = (await session.rows<{ name: string }>(PENDING_SQL)).map((row) => row.name);
  if (session.facts.inRecovery) return { kind: 'in-recovery', pending: names.length };
  if (names.length === 0) return { kind: 'clean' };
  for (const name of names) {
    // Names from pg_file_settings, checked against the pattern: nothing else reaches the SQL.
    if (!RECOVERY_SETTINGS_PATTERN.test(name)) throw new Error(`unexpected parameter name ${JSON.stringify(name)}`);
    await session.rows(`ALTER SYSTEM RESET ${name}`);
  }
  await session.rows('SELECT pg_reload_conf()');
  log.info('the recovery is over: its settings are removed from postgresql.auto.conf and the configuration reloaded', { settings: names.join(',') });
  return { kind: 'reset', settings: names };
}

/**
 * Looks every `intervalMs` until the server has been seen with a clean postgresql.auto.conf (in
 * recovery or not) or the settings have been reset, then stops: settings are written only by the
 * bootstrap of an empty volume, before the server first starts, in a new pod with a new sidecar.
 * So a standby is looked at once, not every few seconds for its whole life. Never throws; a failed
 * look is logged and tried again.
 */
export class RecoveryEndWatcher {
  private readonly loop: PeriodicLook;

  constructor(private readonly props: RecoveryEndWatcherProps) {
    this.loop = new PeriodicLook(async () => ((await this.look()) ? 'done' : 'again'), props.intervalMs ?? 5000);
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** Whether the watch is over. */
  private async look(): Promise<boolean> {
    try {
      const outcome = await clearEndedRecoverySettings(this.props.connection, this.props.log);
      return outcome.kind === 'reset' || outcome.kind === 'clean' || (outcome.kind === 'in-recovery' && outcome.pending === 0);
    } catch (error) {
      this.props.log.warn('cannot remove the recovery settings from postgresql.auto.conf (trying again)', { error: (error as Error).message });
      return false;
    }
  }
}

/** The entry point the background archiver starts (from lib/scheduler.cjs). */
export function startRecoveryEndWatcher(props: RecoveryEndWatcherProps): RecoveryEndWatcher {
  const watcher = new RecoveryEndWatcher(props);
  watcher.start();
  return watcher;
}
