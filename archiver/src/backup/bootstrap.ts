/**
 * `archiver bootstrap <data directory>`: what pod 0 does with an empty volume, decided by what its
 * archive holds, so that syncing the same YAML after a lost volume, namespace or cluster brings
 * the data back with no human step, and so that a new cluster never runs initdb over an archive
 * that holds a database:
 *
 *   own archive                     ARCHIVER_BOOTSTRAP=restore (default)   =initdb
 *   a complete backup               restore the newest, replay all WAL     refuse
 *   objects, no complete backup     refuse                                  refuse
 *   empty, a source configured      restore the source to its target       same
 *   empty                           initdb                                  initdb
 *
 * A restore is written into `<data directory>.restore`, then renamed into place: a restore cut
 * short (the pod deleted) is never mistaken for a data directory. The restored directory recovers
 * from the archive and promotes (recovery settings and recovery.signal by backup-fetch); from
 * then on it archives to its own location. The source (KubeDB's init.postgresWAL, CloudNativePG's
 * bootstrap.recovery) is used only while the own archive is empty: once the database has its own
 * backup, a lost volume restores from its own archive, never from the source (a recovery spec left
 * in Git must not roll a live database back to an old point).
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ARCHIVE_LAYOUT, ARCHIVER_ENV, BootstrapMode, BootstrapOutcome } from '../../../contract';
import type { ArchiverConfig } from '../config';
import { BootstrapRefusedError, RecoveryTargetError } from '../errors';
import { fsyncDirectory } from '../fsync-directory';
import { Logger } from '../logger';
import type { Storage } from '../storage/storage';
import { backupFetch } from './backup-fetch';
import { listBackups } from './catalog';
import type { BackupManifest } from './manifest';
import { RecoveryTarget, describeTarget, parseRecoveryTarget } from './recovery-target';

/** What an archive holds, as far as a bootstrap is concerned. */
export interface ArchiveState {
  readonly location: string;
  /** Complete backups, oldest first. */
  readonly backups: readonly BackupManifest[];
  /** Any object at all (WAL, unfinished backups, archive.json); counted only when there is no backup. */
  readonly objects: number;
}

export interface BootstrapSource {
  /** The source's repository URL. */
  readonly repository: string;
  readonly target: RecoveryTarget;
  readonly inclusive?: boolean;
  readonly timeline?: string;
}

export type BootstrapDecision =
  | { readonly action: 'initdb'; readonly reason: string }
  | { readonly action: 'restore-own'; readonly backup: BackupManifest; readonly reason: string }
  | { readonly action: 'restore-source'; readonly reason: string }
  | { readonly action: 'refuse'; readonly reason: string };

/** The decision, from the mode, the own archive's state and the source: pure. */
export function decideBootstrap(mode: BootstrapMode, own: ArchiveState, source: BootstrapSource | undefined): BootstrapDecision {
  const newest = own.backups[own.backups.length - 1];
  if (newest) {
    if (mode === 'initdb') {
      return {
        action: 'refuse',
        reason: `the archive at ${own.location} holds ${own.backups.length} complete backup(s) of a database (the newest ${newest.name}); ${ARCHIVER_ENV.bootstrapMode}=initdb never initialises a new database over it: restore it (${ARCHIVER_ENV.bootstrapMode}=restore, the default) or, to start afresh, delete it first (archiver delete everything --confirm)`,
      };
    }
    return { action: 'restore-own', backup: newest, reason: `the archive at ${own.location} holds a complete backup: restoring the newest, ${newest.name}, and replaying every archived WAL segment` };
  }
  if (own.objects > 0) {
    return {
      action: 'refuse',
      reason: `the archive at ${own.location} holds ${own.objects} object(s) (WAL) but no complete backup: nothing can be restored from it, and a new database initialised over it would be refused by it (another system). Nothing was done. Restore the data another way, or delete the archive (archiver delete everything --confirm) to start a new database`,
    };
  }
  if (source) return { action: 'restore-source', reason: `the archive at ${own.location} is empty: initialising from ${source.repository} (${describeTarget(source.target)})` };
  return { action: 'initdb', reason: `the archive at ${own.location} is empty: a new database` };
}

/** ARCHIVER_BOOTSTRAP_TARGET: `latest`, `immediate`, `time:<ISO>`, `lsn:<X/Y>`, `xid:<n>`, `name:<point>`. */
export function parseBootstrapTarget(text: string | undefined): RecoveryTarget {
  const value = (text ?? 'latest').trim();
  if (value === 'latest' || value === '') return { kind: 'latest' };
  if (value === 'immediate') return { kind: 'immediate' };
  const colon = value.indexOf(':');
  const kind = colon < 0 ? value : value.slice(0, colon);
  const rest = colon < 0 ? '' : value.slice(colon + 1);
  const by: Record<string, () => RecoveryTarget> = {
    time: () => parseRecoveryTarget({ time: rest }),
    lsn: () => parseRecoveryTarget({ lsn: rest }),
    xid: () => parseRecoveryTarget({ xid: rest }),
    name: () => parseRecoveryTarget({ name: rest }),
  };
  const parse = by[kind];
  if (!parse) throw new RecoveryTargetError(`${ARCHIVER_ENV.bootstrapTarget}=${JSON.stringify(value)}: expected latest, immediate, time:<ISO 8601 with a zone>, lsn:<X/Y>, xid:<n> or name:<restore point>`);
  return parse();
}

/** The archive's backups and, only when it has none, whether it holds anything at all. */
async function archiveState(storage: Storage): Promise<ArchiveState> {
  const backups = await listBackups(storage);
  // With a backup, nothing else matters: no listing of every WAL segment of a large archive.
  if (backups.length > 0) return { location: storage.location, backups, objects: backups.length };
  const [identity, wal, basebackups] = await Promise.all([storage.stat(ARCHIVE_LAYOUT.identity), storage.list(ARCHIVE_LAYOUT.wal), storage.list(ARCHIVE_LAYOUT.basebackups)]);
  return { location: storage.location, backups, objects: (identity ? 1 : 0) + wal.length + basebackups.length };
}

export interface BootstrapOptions {
  readonly dataDirectory: string;
  readonly mode: BootstrapMode;
  /** The own archive's storage. */
  readonly own: Storage;
  /** The source, and its configuration (storage options, for backup-fetch's threads). */
  readonly source?: BootstrapSource & { readonly config: ArchiverConfig; readonly storage: Storage };
  /** restore_command for the own archive: `<launcher> wal-fetch %f %p`. */
  readonly launcher: string;
  readonly terminal?: boolean;
}

/** Runs the bootstrap; resolves with what the start script is to do next. */
export async function bootstrap(config: ArchiverConfig, log: Logger, options: BootstrapOptions): Promise<BootstrapOutcome> {
  const target = path.resolve(options.dataDirectory);
  const blog = log.child({ data_directory: target });
  if (await exists(path.join(target, 'PG_VERSION'))) {
    blog.info('bootstrap: the data directory holds a database; nothing to do');
    return 'present';
  }
  const entries = await fs.readdir(target).catch(() => [] as string[]);
  if (entries.length > 0) {
    throw new BootstrapRefusedError(`bootstrap: ${target} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}) but holds no database (no PG_VERSION): nothing was done; move its contents away`);
  }
  const decision = decideBootstrap(options.mode, await archiveState(options.own), options.source);
  if (decision.action === 'refuse') throw new BootstrapRefusedError(`bootstrap refused: ${decision.reason}`);
  blog.info(`bootstrap: ${decision.reason}`, { decision: decision.action });
  if (decision.action === 'initdb') return 'initdb';

  const staging = `${target}.restore`;
  await fs.rm(staging, { recursive: true, force: true });
  const ownRestore = decision.action === 'restore-own';
  const source = options.source;
  await backupFetch(ownRestore ? config : source!.config, ownRestore ? options.own : source!.storage, log, {
    backup: ownRestore ? decision.backup.name : 'LATEST',
    directory: staging,
    target: ownRestore ? { kind: 'latest' } : source!.target,
    recovery: {
      // From the source: its WAL, fetched by calls of their own (the sidecar serves the own archive).
      restoreCommand: ownRestore
        ? `${options.launcher} wal-fetch %f %p`
        : `${ARCHIVER_ENV.repository}=${shellQuote(source!.repository)} ${ARCHIVER_ENV.daemon}=off ${options.launcher} wal-fetch %f %p`,
      inclusive: ownRestore ? undefined : source!.inclusive,
      timeline: ownRestore ? 'latest' : (source!.timeline ?? 'latest'),
      action: 'promote',
    },
    terminal: options.terminal,
  });
  // The volume's directory may exist, empty (checked above): the restore takes its place.
  await fs.rmdir(target).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  await fs.rename(staging, target);
  await fsyncDirectory(path.dirname(target));
  blog.info('bootstrap: restored; the server recovers, promotes and archives from here on', { decision: decision.action });
  return 'restored';
}

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

/** A value for a POSIX shell (restore_command is run by one). */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}
