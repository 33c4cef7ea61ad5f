/**
 * The base-backup commands: `backup-push`, `backup-list`, `backup-fetch`. One module, bundled on
 * its own (lib/backups.cjs): the WAL commands, which start once per segment, never load it or the
 * PostgreSQL client and tar library it needs.
 */
import * as path from 'node:path';
import { readConfig } from '../config';
import { ARCHIVER_ENV, BOOTSTRAP_MODES, BootstrapMode } from '../../../contract';
import { ConfigError, UsageError } from '../errors';
import { bootstrap, parseBootstrapTarget } from '../backup/bootstrap';
import { Logger } from '../logger';
import { openRepository } from '../repository';
import { backupFetch } from '../backup/backup-fetch';
import { backupPush } from '../backup/backup-push';
import { listBackups } from '../backup/catalog';
import { BackupManifest } from '../backup/manifest';
import { parseRecoveryTarget } from '../backup/recovery-target';
import { parseArgs } from './args';

type Out = (text: string) => void;
const stdout: Out = (text) => process.stdout.write(text);

function positiveInteger(command: string, flags: Map<string, string | true>, name: string): number | undefined {
  const raw = flags.get(name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${command}: --${name} takes a whole number of at least 1, got ${JSON.stringify(raw)}`);
  return value;
}

function terminalOf(flags: Map<string, string | true>): boolean | undefined {
  return flags.has('no-progress') ? false : undefined;
}

export async function runBackupPush(args: readonly string[], out: Out = stdout): Promise<void> {
  const { positional, flags } = parseArgs('backup-push', args, { spread: 'flag', concurrency: 'value', 'part-size-mib': 'value', 'wal-timeout': 'value', json: 'flag', 'no-progress': 'flag', delta: 'flag', 'delta-max-steps': 'value' });
  if (flags.has('delta-max-steps') && !flags.has('delta')) throw new UsageError('backup-push: --delta-max-steps bounds the chain of --delta backups: add --delta');
  if (positional.length > 0) throw new UsageError(`backup-push takes no arguments (it reads the data directory of the server at PGHOST); got ${positional.join(' ')}`);
  const config = readConfig();
  const log = new Logger(config.logLevel);
  const archive = await openRepository(config, { log });
  try {
    const partMib = positiveInteger('backup-push', flags, 'part-size-mib');
    const manifest = await backupPush(config, archive, log, {
      fast: !flags.has('spread'),
      concurrency: positiveInteger('backup-push', flags, 'concurrency'),
      partBytes: partMib === undefined ? undefined : partMib * 1024 * 1024,
      walTimeoutSeconds: positiveInteger('backup-push', flags, 'wal-timeout'),
      terminal: terminalOf(flags),
      delta: flags.has('delta'),
      deltaMaxSteps: positiveInteger('backup-push', flags, 'delta-max-steps'),
    });
    out(flags.has('json') ? `${JSON.stringify(summary(manifest), null, 2)}\n` : `${manifest.name}\n`);
  } finally {
    await archive.close();
  }
}

export async function runBackupList(args: readonly string[], out: Out = stdout): Promise<void> {
  const { positional, flags } = parseArgs('backup-list', args, { json: 'flag' });
  if (positional.length > 0) throw new UsageError(`backup-list takes no arguments; got ${positional.join(' ')}`);
  const config = readConfig();
  const archive = await openRepository(config, { log: new Logger(config.logLevel) });
  try {
    const backups = await listBackups(archive.storage);
    if (flags.has('json')) out(`${JSON.stringify(backups.map(summary), null, 2)}\n`);
    else out(backupTable(backups));
  } finally {
    await archive.close();
  }
}

export async function runBackupFetch(args: readonly string[], out: Out = stdout): Promise<void> {
  const { positional, flags } = parseArgs('backup-fetch', args, {
    'target-time': 'value',
    'target-lsn': 'value',
    'target-xid': 'value',
    'target-name': 'value',
    'target-immediate': 'flag',
    'target-exclusive': 'flag',
    'target-timeline': 'value',
    'target-action': 'value',
    recovery: 'flag',
    'restore-command': 'value',
    concurrency: 'value',
    'no-sync': 'flag',
    'no-progress': 'flag',
  });
  if (positional.length !== 2) throw new UsageError(`backup-fetch takes a backup name (or LATEST) and an empty directory; got ${positional.length} argument(s)`);
  const [backup, directory] = positional;
  const value = (name: string) => {
    const raw = flags.get(name);
    return typeof raw === 'string' ? raw : undefined;
  };
  const target = parseRecoveryTarget({ time: value('target-time'), lsn: value('target-lsn'), xid: value('target-xid'), name: value('target-name'), immediate: flags.has('target-immediate') });
  const action = value('target-action') ?? 'promote';
  if (!['promote', 'pause', 'shutdown'].includes(action)) throw new UsageError(`backup-fetch: --target-action takes promote, pause or shutdown; got ${JSON.stringify(action)}`);
  const timeline = value('target-timeline') ?? 'latest';
  if (!/^(latest|current|\d+)$/.test(timeline)) throw new UsageError(`backup-fetch: --target-timeline takes latest, current or a timeline number; got ${JSON.stringify(timeline)}`);
  const recoveryOptionGiven = ['target-exclusive', 'target-timeline', 'target-action', 'restore-command'].filter((name) => flags.has(name));
  if (!flags.has('recovery') && recoveryOptionGiven.length > 0) {
    throw new UsageError(`backup-fetch: --${recoveryOptionGiven[0]} shapes the recovery settings, which only --recovery writes: add --recovery`);
  }
  const config = readConfig();
  const log = new Logger(config.logLevel);
  const archive = await openRepository(config, { log });
  try {
    const manifest = await backupFetch(config, archive.storage, log, {
      backup,
      directory,
      target,
      recovery: flags.has('recovery')
        ? {
            restoreCommand: value('restore-command') ?? defaultRestoreCommand(),
            inclusive: flags.has('target-exclusive') ? false : undefined,
            timeline,
            action: action as 'promote' | 'pause' | 'shutdown',
          }
        : undefined,
      concurrency: positiveInteger('backup-fetch', flags, 'concurrency'),
      sync: !flags.has('no-sync'),
      terminal: terminalOf(flags),
    });
    out(`${manifest.name}\n`);
  } finally {
    await archive.close();
  }
}

/** This archiver's launcher, as PostgreSQL would run it: `<tree>/bin/archiver wal-fetch %f %p`. */
function defaultRestoreCommand(): string {
  return `${launcherPath('backup-fetch: --recovery needs --restore-command')} wal-fetch %f %p`;
}

/** `<tree>/bin/archiver`, the launcher of the tree this bundle belongs to. */
function launcherPath(what: string): string {
  if (!__filename.endsWith('.cjs')) throw new UsageError(`${what} when the archiver runs from its sources (e.g. --restore-command '/opt/archiver/bin/archiver wal-fetch %f %p')`);
  return path.resolve(__dirname, '..', 'bin', 'archiver');
}

/**
 * `archiver bootstrap <data directory>`: pod 0's start script runs it on an empty volume; prints
 * what to do next (contract BOOTSTRAP_OUTCOMES): initdb, restored or present.
 */
export async function runBootstrap(args: readonly string[], out: Out = stdout): Promise<void> {
  const { positional, flags } = parseArgs('bootstrap', args, { 'no-progress': 'flag' });
  if (positional.length !== 1) throw new UsageError(`bootstrap takes the data directory (PGDATA); got ${positional.length} argument(s)`);
  const env = process.env;
  const modeText = env[ARCHIVER_ENV.bootstrapMode] ?? 'restore';
  if (!(BOOTSTRAP_MODES as readonly string[]).includes(modeText)) throw new ConfigError(ARCHIVER_ENV.bootstrapMode, `${JSON.stringify(modeText)}: expected ${BOOTSTRAP_MODES.join(' or ')}`);
  const config = readConfig();
  const log = new Logger(config.logLevel);
  const sourceRepository = env[ARCHIVER_ENV.bootstrapSource]?.trim() || undefined;
  const sourceConfig = sourceRepository === undefined ? undefined : readConfig({ ...env, [ARCHIVER_ENV.repository]: sourceRepository });
  if (sourceRepository !== undefined && sourceRepository.replace(/\/+$/, '') === (env[ARCHIVER_ENV.repository] ?? '').replace(/\/+$/, '')) {
    throw new ConfigError(ARCHIVER_ENV.bootstrapSource, `names this database's own archive (${sourceRepository}): a source is another database's archive`);
  }
  const inclusiveText = env[ARCHIVER_ENV.bootstrapTargetInclusive];
  if (inclusiveText !== undefined && !['true', 'false'].includes(inclusiveText)) throw new ConfigError(ARCHIVER_ENV.bootstrapTargetInclusive, `${JSON.stringify(inclusiveText)}: expected true or false`);
  const timeline = env[ARCHIVER_ENV.bootstrapTargetTimeline];
  if (timeline !== undefined && !/^(latest|current|\d+)$/.test(timeline)) throw new ConfigError(ARCHIVER_ENV.bootstrapTargetTimeline, `${JSON.stringify(timeline)}: expected latest, current or a timeline number`);
  const target = parseBootstrapTarget(env[ARCHIVER_ENV.bootstrapTarget]);
  const own = await openRepository(config, { log });
  const source = sourceConfig ? await openRepository(sourceConfig, { log }) : undefined;
  try {
    const outcome = await bootstrap(config, log, {
      dataDirectory: positional[0],
      mode: modeText as BootstrapMode,
      own: own.storage,
      source: source && sourceConfig ? { repository: sourceRepository!, target, inclusive: inclusiveText === undefined ? undefined : inclusiveText === 'true', timeline, config: sourceConfig, storage: source.storage } : undefined,
      launcher: launcherPath('bootstrap: the restore_command needs the installed launcher'),
      terminal: terminalOf(flags),
    });
    out(`${outcome}\n`);
  } finally {
    await own.close();
    await source?.close();
  }
}

/** What backup-list --json and backup-push --json print of a backup. */
export function summary(backup: BackupManifest): Record<string, unknown> {
  return {
    name: backup.name,
    startTime: backup.startTime,
    stopTime: backup.stopTime,
    startLsn: backup.startLsn,
    stopLsn: backup.stopLsn,
    startWal: backup.startWal,
    stopWal: backup.stopWal,
    timeline: backup.timeline,
    size: backup.size,
    storedSize: backup.storedSize,
    seconds: (Date.parse(backup.stopTime) - Date.parse(backup.startTime)) / 1000,
    from: backup.fromStandby ? 'standby' : 'primary',
    systemIdentifier: backup.systemIdentifier,
    pgVersion: backup.pgVersion,
    compression: backup.compression,
    base: backup.base ?? null,
    ...(backup.deltas
      ? {
          // What share of the relation files' pages the delta stored.
          deltaPages: backup.deltas.reduce((sum, d) => sum + d.pages, 0),
          deltaFilePages: backup.deltas.reduce((sum, d) => sum + Math.ceil(d.size / (backup.pageSize ?? 8192)), 0),
        }
      : {}),
  };
}

const MiB = 1024 * 1024;

/** backup-list's table: one backup per line, oldest first; times in UTC with their zone. */
export function backupTable(backups: readonly BackupManifest[]): string {
  if (backups.length === 0) return 'no complete backups\n';
  const header = ['name', 'started (UTC)', 'finished (UTC)', 'start LSN', 'stop LSN', 'timeline', 'size MiB', 'stored MiB', 'seconds', 'from', 'type'];
  const rows = backups.map((b) => {
    const s = summary(b);
    return [b.name, utc(b.startTime), utc(b.stopTime), b.startLsn, b.stopLsn, String(b.timeline), (b.size / MiB).toFixed(1), (b.storedSize / MiB).toFixed(1), (s.seconds as number).toFixed(1), s.from as string, b.base === undefined ? 'full' : `delta of ${b.base}`];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

function utc(iso: string): string {
  return `${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/Z$/, '')}+00`;
}
